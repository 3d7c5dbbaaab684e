"""Demo follow-ups (issue 15, part B): outcomes recorded after demo procedures, so the repeat
rules of the Coverage and safeguards page have something to read and the demo is not flooded
with "repeat without documented relief" exceptions.

Distributions (docs/reference.md §19, demo data): after an epidural steroid injection, half of
the patients report >= 50% relief lasting three months or more (StatPearls, "Cervical Epidural
Injection", 2023: "50 percent of patients having significant pain relief"); a diagnostic medial
branch block gives >= 80% relief in 45% (estimate); RFA and therapeutic facet injections
30-90% relief for 2-12 months (estimate). Not every outcome is documented: 75% of ESIs, 90% of
blocks (a same-day pain diary), 60% of RFA and facet injections (estimates).

Except where the practice went on (audit.demo.pathways): a block followed by the patient's RFA
in the region gave >= 80% relief (that is why the RFA was done) and an ESI repeated after
>= 90 days gave >= 50% relief lasting until the repeat was asked for, each documented in
LEAD_ON of cases; an ESI repeated sooner gave relief that lasted less than the gap.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np

ESI = frozenset({"TFESI", "ILESI", "CAUDAL"})
#: code: share of procedures whose outcome is recorded (estimates).
RECORDED = {"TFESI": 0.75, "ILESI": 0.75, "CAUDAL": 0.75, "MBB": 0.90, "RFA": 0.60,
            "FACET": 0.60}
ESI_RESPONDERS = 0.50
BLOCK_RESPONDERS = 0.45
#: Share of the outcomes that led on to the next step (RFA, repeat ESI) documented as such.
LEAD_ON = 0.97


def _next_step(ids: np.ndarray, code: np.ndarray, performed: list[datetime],
               patient: np.ndarray | None, region: np.ndarray | None) -> dict[int, int]:
    """Record index -> days until the patient's next step in the region (an ESI's next ESI,
    a block's RFA), for the records that have one in the chunk."""
    if patient is None or region is None:
        return {}
    order = sorted(range(len(ids)), key=lambda i: (performed[i], int(ids[i])))
    later: dict[tuple[Any, Any, str], datetime] = {}
    found: dict[int, int] = {}
    for i in reversed(order):
        c = str(code[i])
        family = "ESI" if c in ESI else c
        wanted = "ESI" if c in ESI else "RFA" if c == "MBB" else None
        if wanted is not None and (patient[i], region[i], wanted) in later:
            found[i] = (later[(patient[i], region[i], wanted)] - performed[i]).days
        later[(patient[i], region[i], family)] = performed[i]
    return found


def follow_ups(ids: np.ndarray, code: np.ndarray, performed: list[datetime], now: datetime,
               actor: str, patient: np.ndarray | None = None,
               region: np.ndarray | None = None) -> dict[str, list[Any]]:
    """The chunk's follow-ups as columns of `follow_up` (with `patient` and `region`, the
    outcomes that led on to a next step are drawn as such)."""
    rng = np.random.default_rng([int(ids[0]) if len(ids) else 0, 19])
    n = len(ids)
    u = rng.random((5, n))
    step = _next_step(ids, code, performed, patient, region)
    rows: list[tuple[int, Any, int, int]] = []
    for i in range(n):
        c = str(code[i])
        gap = step.get(i)
        if gap is not None and c in ESI and gap > 365:
            gap = None  # a new course, not a repeat
        if gap is not None:
            if u[0, i] >= LEAD_ON:
                continue
            if c == "MBB":
                percent, days = int(80 + 20 * u[2, i]), 0
            elif gap >= 90:
                percent, days = int(50 + 40 * u[2, i]), int(90 + (gap - 90) * u[3, i])
            else:
                percent, days = int(30 + 50 * u[2, i]), int(gap * (0.3 + 0.6 * u[3, i]))
            day = performed[i] + timedelta(days=max(days, 0 if c == "MBB" else 14))
            rows.append((int(ids[i]), min(day, now).date(), percent, days))
            continue
        if u[0, i] >= RECORDED.get(c, 0.0):
            continue
        if c in ESI:
            good = u[1, i] < ESI_RESPONDERS
            percent = int(50 + 40 * u[2, i]) if good else int(49 * u[2, i])
            days = int(90 + 150 * u[3, i]) if good else int(80 * u[3, i])
        elif c == "MBB":
            percent = (int(80 + 20 * u[2, i]) if u[1, i] < BLOCK_RESPONDERS
                       else int(79 * u[2, i]))
            days = 0
        else:
            percent, days = int(30 + 60 * u[2, i]), int(60 + 305 * u[3, i])
        day = performed[i] + timedelta(days=max(days, 0 if c == "MBB" else 14))
        if day > now:  # asked so far: the relief has lasted until today
            day = now
            days = min(days, max(0, (now - performed[i]).days))
        rows.append((int(ids[i]), day.date(), percent, days))
    return {"procedure_id": [r[0] for r in rows], "followed_up_on": [r[1] for r in rows],
            "relief_percent": [r[2] for r in rows], "relief_days": [r[3] for r in rows],
            "note": [None] * len(rows), "created_at": [now] * len(rows),
            "created_by": [actor] * len(rows)}
