"""A small hand-built data set whose every figure is worked out by hand in the tests.

Ten procedures (one voided) in three rooms of one site, two physicians, January-March 2026.
Dose values are round numbers so medians and percentiles can be checked on paper:

 #  code   room  physician  contrast                         time  KAP  Ka,r  levels
 1  TFESI  R1    Dr. A      compliant                         30   1.0   10    2
 2  TFESI  R1    Dr. A      not confirmed                     40   2.0   20    2
 3  TFESI  R2    Dr. B      confirmed, no real-time contrast  50   3.0   30    2
 4  TFESI  R2    Dr. B      contraindicated (allergy)         20   4.0    -    2
 5  TFESI  R3    Dr. A      confirmed, AP view only           60   5.0    -    2
 6  ILESI  R3    Dr. B      compliant (AP+CLO, no real-time)  10   0.5    -    1
 7  ILESI  R1    Dr. B      confirmed, no saved image         15   0.7    -    1
 8  MBB    R2    Dr. A      not confirmed (policy: recommended, not eligible) 100 2.5 - 2
 9  TFESI  R1    Dr. A      compliant, then VOIDED            99  100    -    2
10  TFESI  R3    Dr. B      compliant                         35   6.0    -    2
"""

from __future__ import annotations

from typing import Any

from audit.auth import Actor
from audit.log.service import ProcedureLog
from tests.conftest import valid_record

SITE = "Riverside"


def _record(n: int, code: str, room: str, physician: str, day: str, time_s: float, kap: float,
            kerma: float | None, **contrast: Any) -> dict[str, Any]:
    base = valid_record(
        performed_at=f"2026-{day}T12:00:00+00:00", site=SITE, room=room,
        physician=physician, patient_id=f"HB{n:03d}", procedure_code=code,
        fluoro_time_s=time_s, dap_value=kap, dap_unit="Gy·cm²", air_kerma_mgy=kerma,
        accession_number=f"ACC{n:03d}",
    )
    if code == "ILESI":
        base.update(levels=["L4-L5"], laterality="midline")
    if code == "MBB":
        base.update(levels=["L3-L4", "L4-L5"], injectate="local_anesthetic_only")
    for key, value in contrast.items():
        if value is None:
            base.pop(key, None)
        else:
            base[key] = value
    return base


NO_CONTRAST = {"contrast_confirmation": "not_confirmed", "contrast_agent": None,
               "contrast_volume_ml": None, "confirmation_views": None,
               "realtime_contrast": None}

RECORDS = [
    _record(1, "TFESI", "R1", "Dr. A", "01-10", 30, 1.0, 10, pulsed_fluoro=True),
    _record(2, "TFESI", "R1", "Dr. A", "01-20", 40, 2.0, 20, pulsed_fluoro=False, **NO_CONTRAST),
    _record(3, "TFESI", "R2", "Dr. B", "02-05", 50, 3.0, 30, pulsed_fluoro=True,
            realtime_contrast=False),
    _record(4, "TFESI", "R2", "Dr. B", "02-10", 20, 4.0, None,
            **{**NO_CONTRAST, "contrast_confirmation": "contraindicated",
               "contrast_exception_reason": "allergy"}),
    _record(5, "TFESI", "R3", "Dr. A", "02-15", 60, 5.0, None, confirmation_views=["AP"]),
    _record(6, "ILESI", "R3", "Dr. B", "03-01", 10, 0.5, None, confirmation_views=["AP", "CLO"],
            realtime_contrast=False, patient_sex="F", pregnancy_status="pregnant"),
    _record(7, "ILESI", "R1", "Dr. B", "03-02", 15, 0.7, None, saved_images=0),
    _record(8, "MBB", "R2", "Dr. A", "03-03", 100, 2.5, None, **NO_CONTRAST),
    _record(9, "TFESI", "R1", "Dr. A", "03-05", 99, 100.0, None),
    _record(10, "TFESI", "R3", "Dr. B", "03-10", 35, 6.0, None),
]


def load(service: ProcedureLog, actor: Actor) -> dict[int, int]:
    """Log the records (and void #9); returns table number -> record id."""
    ids = {}
    for number, record in enumerate(RECORDS, start=1):
        ids[number] = service.log(record, actor, confirm_warnings=True,
                                  create_missing=True).record_id
    service.void(ids[9], actor, version=1, reason="entered on the wrong patient")
    return ids
