"""Realistic synthetic data for trying the app, kept out of real data.

`fluoro-audit demo` and `fluoro-audit serve --demo` load it; `generate(engine, ...)` is the
library call. The package's parts:

- cast.py: sites, rooms, physicians and technologist accounts, every name saying "demo"
  ("Demo Riverside Spine Center", "Dr. Demo Chen", "demo-tech1"); patients are DEMO... MRNs;
- distributions.py: the dose model: per procedure type, log-normal fluoroscopy time and KAP
  around the published medians (docs/reference.md §4, §5), correlated, Ka,r following KAP
  through the field area; every regular record below a cap at the 99.9th percentile of the
  published spread (a TFESI never exceeds 159 s, 14.9 Gy·cm² or 270 mGy);
- records.py: the rest of each record (levels, contrast, physicians' habits, safety patterns);
- pathways.py: patients' courses of treatment (blocks before an RFA, ESI and facet series), so
  the practice rules are mostly but not always followed;
- loading.py: bulk writes, one bulk_create audit event per chunk, created_by "demo";
- guard.py: which database (its own, var/fluoro-audit-demo.sqlite3, unless --db or
  FLUORO_AUDIT_DB names one) and the refusal to write into a database holding records the
  loader did not write (unless --force).

Planted outliers, on purpose and documented, so tests and reviewers know what should be
found: n // 500 spine records (0.2%) at 3-8x their type's median time and KAP, and n // 2000
non-spine (OTHER) records above every substantial radiation dose level; each has the note
"demo: planted outlier (...)" and they are the only records past the caps. Besides them the
data shows a high-dose physician (Dr. Demo Holloway, about 3x KAP on 5% of the cases), a
physician who often omits contrast confirmation (Dr. Demo Weiss), rooms with different dose
levels, contraindications, vascular uptake and repositioning, particulate steroid in a few
cervical TFESI, sessions over the level limit and repeat patients in courses that mostly
follow the LCDs. Deterministic for a given seed and end date.
"""

from __future__ import annotations

from audit.demo.cast import DEMO_ACTOR, HIGH_DOSE_PHYSICIAN, OMITS_CONTRAST, demo_names
from audit.demo.distributions import MODELS, PLANTED_NOTE, caps
from audit.demo.guard import DEMO_SQLITE_PATH, Census, census, demo_url
from audit.demo.loading import CHUNK, generate

__all__ = ["CHUNK", "DEMO_ACTOR", "DEMO_SQLITE_PATH", "HIGH_DOSE_PHYSICIAN", "MODELS",
           "OMITS_CONTRAST", "PLANTED_NOTE", "Census", "caps", "census", "demo_names",
           "demo_url", "generate"]
