"""Entry-time compliance (issue 11): before saving, a record that will count as non-compliant in
contrast-confirmation compliance is a warning to confirm, with each reason; the verdict is the
compliance analytics' own function (audit.contrast_rule), so the two always agree.

Every database test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from audit.analytics.compliance import compliance_arrays, why_non_compliant
from audit.analytics.snapshot import load_snapshot
from audit.auth import Actor
from audit.contrast_rule import contrast_compliance
from audit.errors import WarningsNotConfirmed
from audit.log.compliance_check import CONSEQUENCE
from audit.log.service import ProcedureLog
from tests.conftest import valid_record

NO_CONTRAST = {"contrast_agent": None, "contrast_volume_ml": None, "confirmation_views": None,
               "realtime_contrast": None}


def warned(service: ProcedureLog, admin: Actor, **overrides: Any) -> list[str]:
    """The warnings logging valid_record(**overrides) asks to confirm ([] if it saved)."""
    try:
        service.log(valid_record(**overrides), admin, create_missing=True)
    except WarningsNotConfirmed as exc:
        return [str(w) for w in exc.warnings]
    return []


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"confirmation_views": ["AP"]},
     "confirmation_views: TFESI needs 2 confirmation views; 1 given"),
    ({"saved_images": 0},
     "saved_images: no saved image; TFESI needs at least 1 saved image of the contrast "
     "confirmation"),
    ({"realtime_contrast": False},
     "realtime_contrast: real-time contrast required for TFESI (contrast injected under live "
     "fluoroscopy or DSA)"),
    ({"contrast_confirmation": "not_confirmed", "contrast_agent": None,
      "contrast_volume_ml": None, "confirmation_views": None, "realtime_contrast": None},
     "contrast_confirmation: contrast confirmation 'not_confirmed' for a procedure whose policy "
     "is required (TFESI); allowed without this warning: confirmed, or contraindicated with a "
     "reason"),
])
def test_each_reason_a_record_will_be_non_compliant_is_a_warning(
    service: ProcedureLog, admin: Actor, overrides: dict[str, Any], expected: str
) -> None:
    assert warned(service, admin, **overrides) == [f"{expected}: {CONSEQUENCE}"]
    assert service.list(admin)[1] == 0


def test_every_reason_is_given_at_once_and_kept_on_the_record_when_confirmed(
    service: ProcedureLog, admin: Actor
) -> None:
    bad = valid_record(confirmation_views=["AP"], saved_images=0, realtime_contrast=False)
    with pytest.raises(WarningsNotConfirmed) as info:
        service.log(bad, admin, create_missing=True)
    assert [w.field for w in info.value.warnings] == [
        "saved_images", "confirmation_views", "realtime_contrast"]
    result = service.log(bad, admin, create_missing=True, confirm_warnings=True)
    assert [w["field"] for w in service.get(result.record_id, admin)["warnings"]] == [
        "saved_images", "confirmation_views", "realtime_contrast"]


def test_compliant_excepted_and_not_eligible_records_are_not_warned(
    service: ProcedureLog, admin: Actor
) -> None:
    assert warned(service, admin) == []
    assert warned(service, admin, patient_id="MRN0002", contrast_confirmation="contraindicated",
                  contrast_exception_reason="allergy", **NO_CONTRAST) == []
    # MBB's policy is "recommended": not eligible, whatever its views
    assert warned(service, admin, patient_id="MRN0003", procedure_code="MBB",
                  confirmation_views=["AP"], saved_images=0) == []
    # ILESI does not require real-time contrast
    assert warned(service, admin, patient_id="MRN0004", procedure_code="ILESI",
                  levels=["L5-S1"], laterality=None, realtime_contrast=False) == []


def test_an_amend_that_makes_a_record_non_compliant_is_warned(
    service: ProcedureLog, admin: Actor, logged: int
) -> None:
    with pytest.raises(WarningsNotConfirmed, match="TFESI needs 2 confirmation views; 1 given"):
        service.amend(logged, {"confirmation_views": ["AP"]}, admin, version=1,
                      reason="only the AP view was saved")


#: Records covering every verdict and reason, logged with their warnings confirmed.
CASES: list[dict[str, Any]] = [
    {},
    {"confirmation_views": ["AP"]},
    {"saved_images": 0},
    {"realtime_contrast": False},
    {"confirmation_views": ["LAT"], "saved_images": 0, "realtime_contrast": False},
    {"contrast_confirmation": "not_confirmed", **NO_CONTRAST},
    {"contrast_confirmation": "not_confirmed", "saved_images": 0, **NO_CONTRAST},
    {"contrast_confirmation": "contraindicated", "contrast_exception_reason": "renal_impairment",
     **NO_CONTRAST},
    {"procedure_code": "MBB", "confirmation_views": ["AP"]},
    {"procedure_code": "ILESI", "levels": ["L5-S1"], "laterality": None,
     "realtime_contrast": False},
    {"procedure_code": "CAUDAL", "levels": None, "laterality": None, "saved_images": 0},
    {"procedure_code": "RFA", "contrast_confirmation": "not_required", **NO_CONTRAST},
]


def test_the_analytics_and_the_entry_warning_agree_on_every_record(
    service: ProcedureLog, admin: Actor
) -> None:
    ids = [service.log(valid_record(patient_id=f"MRN{n:04d}", **case), admin,
                       create_missing=True, confirm_warnings=True).record_id
           for n, case in enumerate(CASES)]
    snap = load_snapshot(service.engine)
    parts = compliance_arrays(snap)
    position = {int(i): p for p, i in enumerate(snap.records["id"].to_numpy())}
    why = why_non_compliant(parts)
    for record_id in ids:
        stored = service.get(record_id, admin)["warnings"]
        entry = [w for w in stored if w["message"].endswith(CONSEQUENCE)]
        at = position[record_id]
        assert bool(entry) == bool(parts["non_compliant"][at]), (record_id, stored)
        reasons = why[at].split("; ") if parts["non_compliant"][at] else []
        assert len(entry) == len(reasons), (record_id, entry, reasons)
    flagged = [n for n, i in enumerate(ids) if parts["non_compliant"][position[i]]]
    assert flagged == [1, 2, 3, 4, 5, 6, 10] and parts["excepted"].sum() == 1


def test_the_rule_gives_the_same_verdict_on_one_record_and_on_arrays() -> None:
    """audit.contrast_rule is written once for Python values and numpy arrays alike."""
    combos = list(itertools.product([False, True], [False, True], [False, True],
                                    [False, True], [0, 1], [0, 1, 2], [False, True],
                                    [False, True]))
    names = ["policy_required", "confirmed", "contraindicated", "exception_reason",
             "saved_images", "views", "realtime_required", "realtime_contrast"]
    columns = {name: np.array([c[i] for c in combos]) for i, name in enumerate(names)}
    arrays = contrast_compliance(min_views=np.full(len(combos), 2), **columns)
    for row, combo in enumerate(combos):
        one = contrast_compliance(min_views=2, **dict(zip(names, combo, strict=True)))
        for key in ("eligible", "compliant", "excepted", "non_compliant"):
            assert bool(one[key]) == bool(arrays[key][row]), (combo, key)
            assert isinstance(one[key], bool), key
