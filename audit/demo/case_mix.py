"""Demo case mix (issue 15): patients' heights, who drove the C-arm, trainees, ultrasound-guided
injections and complications, each drawn from a published distribution where one exists
(docs/reference.md §4 and §18), so every new chart has something true to find:

- heights by sex (NHANES 2015-2018 adult means), hence BMI with the demo weights;
- one physician ("Dr. Demo Mensah", a bariatric referral practice) sees heavier patients: high
  on the unadjusted scorecard, typical once adjusted for case mix;
- the C-arm driven by the physician, a technologist or a radiographer (Choi 2016: time and KAP
  far higher with a radiographer), a trainee in some rooms' cases (dose up);
- some SIJ, facet, MBB and caudal injections guided by ultrasound (no radiation);
- complications at published rates (vasovagal: Kennedy 2013; dural puncture in interlaminar
  injections: McGrath 2011; the others rare estimates).

Draws use their own generator (seeded from the chunk), so the records' other values stay what
they were before this module existed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np

from audit.vocab import CarmOperator, ComplicationKind, ComplicationSeverity

#: Adult height (cm) by sex: NHANES 2015-2018 means (Fryar 2021) and an SD from its percentiles.
HEIGHT_CM = {"M": (175.4, 7.4), "F": (161.7, 7.0)}
#: The physician whose patients are heavier (a bariatric referral practice).
HEAVY_CASELOAD = "Dr. Demo Mensah"
#: Who drives the C-arm (share) and what it does to time and KAP (Choi 2016: 6 s with the
#: physician against 72 s with a radiographer; smaller factors here, the demo's estimate).
OPERATORS = {CarmOperator.PHYSICIAN: (0.45, 1.0), CarmOperator.TECHNOLOGIST: (0.40, 1.3),
             CarmOperator.RADIOGRAPHER: (0.15, 2.0)}
TRAINEE_SHARE, TRAINEE_FACTOR = 0.15, 1.25
#: The factors' geometric mean over the mix: dividing by it keeps each type's median dose on
#: the published one (measured on a mix of operators), as records.LEVEL_NORM does for levels.
BOOST_NORM = float(np.exp(sum(share * np.log(f) for share, f in OPERATORS.values())
                          + TRAINEE_SHARE * np.log(TRAINEE_FACTOR)))
#: Share of each type's injections guided by ultrasound (estimate: a practice offering it).
ULTRASOUND_SHARE = {"SIJ": 0.25, "FACET": 0.10, "MBB": 0.08, "CAUDAL": 0.10}
#: Per-procedure probability of each complication kind (docs/reference.md §18).
VASOVAGAL = {"TFESI": 0.035, "MBB": 0.051, "RFA": 0.026, "ILESI": 0.026, "CAUDAL": 0.026,
             "FACET": 0.026, "SIJ": 0.026, "SYMPATHETIC": 0.026, "DISCOGRAPHY": 0.026,
             "OTHER": 0.026}
DURAL_PUNCTURE = {"ILESI": 0.004, "CAUDAL": 0.001}
RARE = {ComplicationKind.CONTRAST_REACTION: 0.001, ComplicationKind.HEMATOMA: 0.001,
        ComplicationKind.INFECTION: 0.0002, ComplicationKind.NERVE_INJURY: 0.0002}


def heights(seed: int, sex: np.ndarray) -> np.ndarray:
    """One height per patient (cm), by sex, rounded to 0.5 cm as a stadiometer is read."""
    rng = np.random.default_rng([seed, 15])
    male = sex == "M"
    mean = np.where(male, HEIGHT_CM["M"][0], HEIGHT_CM["F"][0])
    sd = np.where(male, HEIGHT_CM["M"][1], HEIGHT_CM["F"][1])
    return np.round(np.clip(rng.normal(mean, sd), 140, 205) * 2) / 2


@dataclass
class CaseMix:
    """One chunk's case-mix draws."""

    operator: np.ndarray  # object: CarmOperator values, None under ultrasound
    trainee: np.ndarray  # bool
    ultrasound: np.ndarray  # bool
    time_factor: np.ndarray
    kap_factor: np.ndarray


def heavier_patients(first_id: int, pat_i: np.ndarray, physician: np.ndarray,
                     weight: np.ndarray) -> np.ndarray:
    """Patient indexes with HEAVY_CASELOAD's patients swapped for heavier ones (the heaviest
    sixth of the demo patients)."""
    rng = np.random.default_rng([first_id, 16])
    heavy = np.flatnonzero(weight >= np.quantile(weight, 5 / 6)) if len(weight) else weight
    mine = physician == HEAVY_CASELOAD
    if len(heavy) and mine.any():
        pat_i = pat_i.copy()
        pat_i[mine] = heavy[rng.integers(0, len(heavy), int(mine.sum()))]
    return pat_i


def draw(first_id: int, code: np.ndarray, planted: np.ndarray) -> CaseMix:
    """Operator, trainee and ultrasound of each record of a chunk (planted outliers keep
    fluoroscopy: their notes say what they are)."""
    rng = np.random.default_rng([first_id, 17])
    n = len(code)
    names = list(OPERATORS)
    shares = np.array([OPERATORS[o][0] for o in names])
    pick = rng.choice(len(names), size=n, p=shares / shares.sum())
    factor = np.array([OPERATORS[o][1] for o in names])[pick]
    trainee = rng.random(n) < TRAINEE_SHARE
    share = np.array([ULTRASOUND_SHARE.get(str(c), 0.0) for c in code])
    ultrasound = (rng.random(n) < share) & ~planted
    operator = np.where(ultrasound, None, np.array([o.value for o in names], dtype=object)[pick])
    boost = factor * np.where(trainee, TRAINEE_FACTOR, 1.0) / BOOST_NORM
    return CaseMix(operator=operator, trainee=trainee, ultrasound=ultrasound,
                   time_factor=boost, kap_factor=boost)


#: Share of demo ILESIs with contrast whose test dose is recorded (an estimate: most
#: practices give one; the rest make the safeguards page's exceptions).
TEST_DOSE_SHARE = 0.98


def fill(columns: dict[str, list[Any]], mix: CaseMix, code: np.ndarray,
         height: np.ndarray) -> None:
    """The case-mix columns of a chunk, and an ultrasound record's dose and contrast fields
    emptied as validation would store them (audit.log.case_mix.radiation_free)."""
    weight = np.array(columns["patient_weight_kg"], dtype=np.float64)
    columns["patient_height_cm"] = height.tolist()
    columns["bmi_kg_m2"] = np.round(weight / (height / 100) ** 2, 1).tolist()
    columns["carm_operator"] = mix.operator.tolist()
    columns["trainee_present"] = mix.trainee.tolist()
    agent = np.array([a is not None for a in columns["contrast_agent"]])
    columns["contrast_class"] = np.where(agent, "iodinated", "none").tolist()
    # ILESI: a contrast test dose recorded in TEST_DOSE_SHARE of those with contrast
    ilesi = (code == "ILESI") & agent
    given = np.random.default_rng(int(height.sum()) % 2**32).random(len(code)) < TEST_DOSE_SHARE
    columns["contrast_test_dose"] = np.where(ilesi, given, None).tolist()
    us = mix.ultrasound
    if not us.any():
        return
    for name, value in (("fluoro_time_s", 0.0), ("fluoro_time_entered", None),
                        ("dap_gycm2", None), ("dap_value", None), ("dap_unit", None),
                        ("air_kerma_mgy", None), ("dsa_runs", None), ("pulsed_fluoro", None),
                        ("pulse_rate_pps", None), ("low_dose_mode", None),
                        ("effective_dose_msv", None), ("warnings", None),
                        ("contrast_agent", None), ("contrast_volume_ml", None),
                        ("confirmation_views", None), ("realtime_contrast", None),
                        ("vascular_uptake", None), ("needle_repositioned", None),
                        ("contrast_exception_reason", None),
                        ("contrast_exception_detail", None)):
        columns[name] = np.where(us, np.asarray([value], dtype=object),
                                 np.asarray(columns[name], dtype=object)).tolist()
    columns["guidance"] = np.where(us, "ultrasound",
                                   np.asarray(columns["guidance"], dtype=object)).tolist()
    columns["contrast_confirmation"] = np.where(
        us, "not_required", np.asarray(columns["contrast_confirmation"], dtype=object)).tolist()
    columns["contrast_class"] = np.where(us, "none",
                                         np.asarray(columns["contrast_class"])).tolist()


def complications(first_id: int, ids: np.ndarray, code: np.ndarray, contrast: np.ndarray,
                  performed: list[Any], now: Any, actor: str) -> dict[str, list[Any]]:
    """The chunk's complications as columns of `complication` (most noted at the procedure;
    a contrast reaction or infection at follow-up, as they show later)."""
    rng = np.random.default_rng([first_id, 18])
    n = len(code)
    rows: list[tuple[int, str, str, str | None, str]] = []
    chances = {ComplicationKind.VASOVAGAL: np.array([VASOVAGAL.get(str(c), 0.0) for c in code]),
               ComplicationKind.DURAL_PUNCTURE: np.array([DURAL_PUNCTURE.get(str(c), 0.0)
                                                          for c in code])}
    for kind, p in RARE.items():
        chances[kind] = np.full(n, p) * (contrast if kind is ComplicationKind.CONTRAST_REACTION
                                         else 1.0)
    grades = np.array([g.value for g in ComplicationSeverity], dtype=object)
    for kind, p in chances.items():
        hit = np.flatnonzero(rng.random(n) < p)
        severity = grades[np.searchsorted([0.8, 0.98], rng.random(len(hit)))]
        later = kind in (ComplicationKind.CONTRAST_REACTION, ComplicationKind.INFECTION)
        for i, grade in zip(hit.tolist(), severity.tolist(), strict=True):
            rows.append((int(ids[i]), kind.value, grade, None,
                         "follow_up" if later else "at_procedure"))
    rows.sort()
    position = {int(v): i for i, v in enumerate(ids.tolist())}
    return {
        "procedure_id": [r[0] for r in rows], "kind": [r[1] for r in rows],
        "severity": [r[2] for r in rows], "detail": [r[3] for r in rows],
        "timing": [r[4] for r in rows],
        "noticed_at": [min(performed[position[r[0]]] + timedelta(days=2), now)
                       if r[4] == "follow_up" else None for r in rows],
        "status": ["final"] * len(rows), "void_reason": [None] * len(rows),
        "created_at": [now] * len(rows), "created_by": [actor] * len(rows),
    }
