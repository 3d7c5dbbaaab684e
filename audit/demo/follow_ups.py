"""Demo follow-ups (issue 15, part B): outcomes recorded after demo procedures, so the repeat
rules of the Coverage and safeguards page have something to read and the demo is not flooded
with "repeat without documented relief" exceptions.

Distributions (docs/reference.md §19, demo data): after an epidural steroid injection, half of
the patients report >= 50% relief lasting three months or more (StatPearls, "Cervical Epidural
Injection", 2023: "50 percent of patients having significant pain relief"); a diagnostic medial
branch block gives >= 80% relief in 45% (estimate); RFA and therapeutic facet injections
30-90% relief for 2-12 months (estimate). Not every outcome is documented: 75% of ESIs, 90% of
blocks (a same-day pain diary), 60% of RFA and facet injections (estimates).
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


def follow_ups(ids: np.ndarray, code: np.ndarray, performed: list[datetime], now: datetime,
               actor: str) -> dict[str, list[Any]]:
    """The chunk's follow-ups as columns of `follow_up`."""
    rng = np.random.default_rng([int(ids[0]) if len(ids) else 0, 19])
    n = len(ids)
    u = rng.random((5, n))
    rows: list[tuple[int, Any, int, int]] = []
    for i in range(n):
        c = str(code[i])
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
