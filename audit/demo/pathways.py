"""Demo care pathways (issue 15, part B follow-up): which demo records belong to one patient's
course of treatment and when, so the practice-rule report (audit.rules) shows a practice that
mostly follows the Medicare LCDs and the 2015 safeguards, with a minority of exceptions that
varies by physician (docs/reference.md §19, demo data).

Drawn per chunk, with its own generator (the dose draws stay what they were):

- RFA: a patient's course is two diagnostic medial branch blocks (7-28 days apart), the RFA
  14-42 days after the second, and sometimes a repeat RFA 150-270 days later, in one region,
  by one physician; in LAPSE["one_block"] of courses (times the physician's factor) only one
  block was done;
- ESI: a patient's series in one region, 1-3 injections 100-240 days apart (the relief of the
  previous one documented, audit.demo.follow_ups); an early repeat (30-80 days) in
  LAPSE["early_repeat"] of repeats; a few patients injected 5-6 times in 12 months and a few
  sessions treating two regions;
- therapeutic facet injections: series of 1-3, 90-180 days apart, a few of 5 in 12 months;
- the first lumbar TFESI of a patient uses a particulate steroid in LAPSE["particulate"] of
  cases (the later ones in a quarter, as before).

Which physician lapses more is the demo's estimate (PHYSICIAN_LAPSE); the shares are chosen so
every rule lands between 80% and 99% compliant on a demo of a few thousand records.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audit.demo.case_mix import HEAVY_CASELOAD

ESI = ("TFESI", "ILESI", "CAUDAL")
#: Base share of each kind of exception, multiplied by the physician's factor.
LAPSE = {"one_block": 0.05, "early_repeat": 0.03, "particulate": 0.07,
         "frequent_esi": 0.006, "frequent_facet": 0.04, "two_regions": 0.012}
#: How much more (or less) often a physician departs from the rules (estimate; 1 otherwise).
PHYSICIAN_LAPSE = {"Dr. Demo Weiss": 2.5, "Dr. Demo Holloway": 2.0, "Dr. Demo O'Connor": 1.5,
                   "Dr. Demo Chen": 0.4, "Dr. Demo Álvarez": 0.6}
#: Series lengths (1, 2, 3) of ESI and facet injection courses.
SERIES = (0.55, 0.30, 0.15)


@dataclass
class Pathways:
    """A chunk's courses: patient, physician, region and day per record (day -1: not set)."""

    patient: np.ndarray
    physician: np.ndarray
    region: np.ndarray
    day: np.ndarray


def arrange(first_id: int, code: np.ndarray, region: np.ndarray, patient: np.ndarray,
            physician: np.ndarray, names: list[str], weight: np.ndarray,
            n_days: int) -> Pathways:
    """Courses of treatment over a chunk's records (see the module docstring)."""
    rng = np.random.default_rng([first_id, 20])
    out = Pathways(patient.copy(), physician.copy(), region.copy(),
                   np.full(len(code), -1, dtype=np.int64))
    factor = np.array([PHYSICIAN_LAPSE.get(name, 1.0) for name in names])
    n_patients = len(weight)
    everyone = rng.permutation(max(1, n_patients)).tolist() * (len(code) // max(1, n_patients)
                                                               + 2)
    heavy_ones = np.flatnonzero(weight >= np.quantile(weight, 5 / 6)) if n_patients else weight
    heavier = rng.permutation(heavy_ones).tolist() * (len(code) // max(1, len(heavy_ones)) + 2)

    def course(members: list[int], gaps: list[int], owner: int | None = None) -> None:
        lead = members[0]
        owner = lead if owner is None else owner
        # distinct patients per course, but the heavy caseload keeps its heavier patients
        heavy = names[out.physician[owner]] == HEAVY_CASELOAD
        who = next(fresh_heavy) if heavy else next(fresh)
        for i in members:
            out.patient[i] = who
            out.physician[i] = out.physician[lead]
            out.region[i] = out.region[lead]
        span = sum(gaps)
        start = int(rng.integers(0, max(1, n_days - span)))
        days = np.clip(start + np.concatenate([[0], np.cumsum(gaps)]), 0, n_days - 1)
        out.day[members] = days.astype(np.int64)

    def lapse(i: int, kind: str) -> bool:
        return bool(rng.random() < LAPSE[kind] * factor[out.physician[i]])

    # each family of courses starts again: distinct patients within it
    fresh, fresh_heavy = iter(everyone), iter(heavier)
    # RFA: two blocks, the RFA, sometimes a repeat RFA.
    rfa = rng.permutation(np.flatnonzero(code == "RFA")).tolist()
    mbb = rng.permutation(np.flatnonzero(code == "MBB")).tolist()
    leads = rfa[:min(len(rfa), int(0.85 * len(mbb) / 2))]
    repeats: dict[int, list[int]] = {r: [] for r in leads}
    for r in rfa[len(leads):]:
        if leads:
            repeats[leads[int(rng.integers(0, len(leads)))]].append(r)
    for r in leads:
        blocks = [mbb.pop(), mbb.pop()]
        if lapse(r, "one_block"):
            mbb.insert(0, blocks.pop())
        gaps = [int(rng.integers(7, 29))] * (len(blocks) - 1) + [int(rng.integers(14, 43))]
        gaps += [int(rng.integers(150, 271)) for _ in repeats[r]]
        out.physician[blocks] = out.physician[r]
        course([*blocks, r, *repeats[r]], gaps, owner=r)

    # ESI series per region; a few sessions treating two regions.
    fresh, fresh_heavy = iter(everyone[::-1]), iter(heavier[::-1])
    singles: list[int] = []
    esi = np.flatnonzero(np.isin(code, ESI))
    for reg in sorted(set(region[esi].tolist())):
        todo = rng.permutation(esi[region[esi] == reg]).tolist()
        while todo:
            first = todo[0]
            size = 1 + int(np.searchsorted(np.cumsum(SERIES), rng.random()))
            early = lapse(first, "frequent_esi")
            if early:
                size = 5 + int(rng.integers(0, 2))
            members, todo = todo[:size], todo[size:]
            if len(members) == 1:
                singles.append(members[0])
            gaps = [int(rng.integers(45, 81)) if early or lapse(first, "early_repeat")
                    else int(rng.integers(100, 241)) for _ in members[1:]]
            course(members, gaps)
    pairs = int(LAPSE["two_regions"] * len(esi))
    for a in singles[:pairs]:
        other = next((b for b in singles[pairs:] if out.region[b] != out.region[a]
                      and out.patient[b] != out.patient[a]), None)
        if other is not None:
            singles.remove(other)
            out.patient[other], out.day[other] = out.patient[a], out.day[a]
            out.physician[other] = out.physician[a]

    # Therapeutic facet injections: series per region.
    fresh, fresh_heavy = iter(everyone), iter(heavier)
    facet = np.flatnonzero(code == "FACET")
    for reg in sorted(set(region[facet].tolist())):
        todo = rng.permutation(facet[region[facet] == reg]).tolist()
        while todo:
            first = todo[0]
            many = lapse(first, "frequent_facet")
            size = 5 if many else 1 + int(np.searchsorted(np.cumsum(SERIES), rng.random()))
            members, todo = todo[:size], todo[size:]
            course(members, [int(rng.integers(60, 81)) if many else int(rng.integers(90, 181))
                             for _ in members[1:]])
    return out


def particulate_first(code: np.ndarray, region: np.ndarray, patient: np.ndarray,
                      day: np.ndarray, physician: np.ndarray, names: list[str],
                      u: np.ndarray) -> np.ndarray:
    """Which lumbar TFESIs get a particulate steroid: a patient's first one in
    LAPSE["particulate"] x the physician's factor, later ones in a quarter."""
    lumbar = np.flatnonzero((code == "TFESI") & (region == "lumbar"))
    first = np.zeros(len(code), dtype=bool)
    seen: set[int] = set()
    for i in lumbar[np.argsort(day[lumbar], kind="stable")].tolist():
        if int(patient[i]) not in seen:
            seen.add(int(patient[i]))
            first[i] = True
    factor = np.array([PHYSICIAN_LAPSE.get(name, 1.0) for name in names])[physician]
    share = np.where(first, LAPSE["particulate"] * factor, 0.25)
    return (code == "TFESI") & (region == "lumbar") & (u < share)
