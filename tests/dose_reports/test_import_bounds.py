"""A dose report's numbers must be finite and within the data dictionary's bounds (issue 10).

A crafted or broken RDSR once reached the log as infinity: a DAP total of 1.5e308 Gy·cm² was
stored, filled a logged procedure and exported as "Inf"; Ka,r 1e303 mGy and 1e15 s of fluoro
time too; on PostgreSQL the JSON of the audit event refused Infinity and aborted the import.
Every test runs on SQLite and PostgreSQL (the ``engine`` fixture).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from audit import units
from audit.auth import Actor
from audit.dictionary import BY_NAME
from audit.dose_reports.reader import read_dose_report
from audit.dose_reports.store import DoseImporter
from audit.log.service import ProcedureLog
from audit.storage.models import DoseDiscrepancy, DoseReport

from .dose_helpers import REAL_FILES, counts, log_procedure, make_report, procedure, reports
from .rdsr_builder import (
    PLANE_A,
    PLANE_B,
    EventSpec,
    PlaneSpec,
    build_rdsr,
    fluoro_totals,
    write,
)

ALL_PLANES = "113890"


@pytest.fixture
def importer(engine: Engine, admin: Actor) -> DoseImporter:
    return DoseImporter(engine, admin)


def maximum(field: str) -> float:
    """The upper bound manual entry holds ``field`` to: the dictionary's, else the parser's."""
    stated = BY_NAME[field].maximum
    if stated is not None:
        return stated
    return {"fluoro_time_s": units.MAX_FLUORO_TIME_S,
            "air_kerma_mgy": units.MAX_AIR_KERMA_MGY}[field]


def report_with(tmp_path: Path, concept: str, value: float | str, unit: str,
                name: str = "crafted.dcm") -> Path:
    """A single-plane report, accession ACC-1, whose ``concept`` total is ``value`` ``unit``."""
    totals = fluoro_totals()
    totals[concept] = (value, unit)
    ds = build_rdsr(planes=[PlaneSpec(totals=totals)], events=[EventSpec()])
    return write(ds, tmp_path / name)


def logged_without_dose(service: ProcedureLog, admin: Actor) -> int:
    """A procedure the report would match by accession and fill (no Ka,r logged)."""
    return log_procedure(service, admin, patient_id="MRN-1", accession_number="ACC-1",
                         performed_at="2024-03-15T09:00:00+00:00", air_kerma_mgy=None)


def finite_everywhere(engine: Engine) -> None:
    """No stored float, nor any number in a JSON column, is NaN or infinite."""
    with Session(engine) as session:
        for row in session.query(DoseReport):
            for name in ("dap_total_gycm2", "fluoro_time_s", "air_kerma_total_mgy",
                         "pulsed_fluoro_share", "max_pulse_rate_pps"):
                value = getattr(row, name)
                assert value is None or math.isfinite(value), (name, value)
            for plane in row.planes:
                assert all(math.isfinite(v) for v in plane.values()
                           if isinstance(v, float)), plane
        for found in session.query(DoseDiscrepancy):
            for value in (found.manual_value, found.report_value, found.relative_difference):
                assert value is None or math.isfinite(value), found


# (concept, value, unit, attribute named in the reason, dictionary field bounding it)
CASES = [
    ("113722", "1.5e308", "Gy.cm2", "dap_total_gycm2", "dap_gycm2"),
    ("113722", 1.5e308, "Gy.m2", "Dose Area Product Total (113722)", "dap_gycm2"),
    ("113722", 30.0, "Gy.m2", "dap_total_gycm2", "dap_gycm2"),
    ("113725", 1e303, "mGy", "air_kerma_total_mgy", "air_kerma_mgy"),
    ("113729", 2e5, "mGy", "acquisition_air_kerma_mgy", "air_kerma_mgy"),
    ("113730", 1e15, "s", "fluoro_time_s", "fluoro_time_s"),
    ("113730", 7.0, "h", "fluoro_time_s", "fluoro_time_s"),
    ("113855", 1e9, "s", "acquisition_time_s", "fluoro_time_s"),
    ("113731", 1e12, "1", "frames", "saved_images"),
]


@pytest.mark.filterwarnings("ignore:The value length")
@pytest.mark.parametrize(("concept", "value", "unit", "named", "field"), CASES,
                         ids=[f"{c[0]}={c[1]}{c[2]}" for c in CASES])
def test_a_number_outside_the_dictionary_bounds_rejects_the_report_naming_it(
    engine: Engine, importer: DoseImporter, service: ProcedureLog, admin: Actor,
    tmp_path: Path, concept: str, value: float | str, unit: str, named: str, field: str,
) -> None:
    record_id = logged_without_dose(service, admin)
    before = counts(engine)
    result = importer.import_path(report_with(tmp_path, concept, value, unit))
    assert result.status == "rejected", result
    reason = result.reason or ""
    assert named in reason
    assert f"{maximum(field):g}" in reason and field in reason  # the allowed range
    assert counts(engine) == before
    assert procedure(engine, record_id).air_kerma_mgy is None  # nothing filled


@pytest.mark.parametrize("value", [1.5e308, math.inf, -math.inf, math.nan])
def test_a_floating_point_value_that_is_not_a_dose_rejects_the_report(
    engine: Engine, importer: DoseImporter, tmp_path: Path, value: float
) -> None:
    """Float Point Value (FD) is read in preference to the DS text: it can hold inf and NaN."""
    ds = build_rdsr(planes=[PlaneSpec(totals=fluoro_totals())], events=[EventSpec()])
    dap_total = ds.ContentSequence[5].ContentSequence[1]
    assert dap_total.ConceptNameCodeSequence[0].CodeValue == "113722"
    dap_total.MeasuredValueSequence[0].FloatingPointValue = value
    before = counts(engine)
    result = importer.import_path(write(ds, tmp_path / "fd.dcm"))
    reason = result.reason or ""
    assert result.status == "rejected" and ("113722" in reason or "dap_total_gycm2" in reason)
    assert f"{maximum('dap_gycm2'):g} Gy·cm²" in reason
    assert counts(engine) == before


def test_an_all_planes_container_beside_planes_a_and_b_is_checked_too(
    engine: Engine, importer: DoseImporter, tmp_path: Path
) -> None:
    """Its totals are not summed (they would count A and B twice) but are stored with the
    planes' JSON: a huge value there must not be stored either."""
    huge = fluoro_totals(dap="1e308")
    ds = build_rdsr(planes=[PlaneSpec(PLANE_A, fluoro_totals()),
                            PlaneSpec(PLANE_B, fluoro_totals()),
                            PlaneSpec(ALL_PLANES, huge)],
                    events=[EventSpec(plane=PLANE_A)])
    result = importer.import_path(write(ds, tmp_path / "biplane.dcm"))
    assert result.status == "rejected"
    assert "plane all: DAP total (dap_total_gycm2) 1e+308" in (result.reason or "")
    assert counts(engine)["dose_report"] == 0


def test_a_pulse_rate_outside_the_dictionary_bounds_rejects_the_report(
    engine: Engine, importer: DoseImporter, tmp_path: Path
) -> None:
    ds = build_rdsr(planes=[PlaneSpec(totals=fluoro_totals())],
                    events=[EventSpec(pulse_rate=1e300)])
    result = importer.import_path(write(ds, tmp_path / "pulse.dcm"))
    assert result.status == "rejected"
    reason = result.reason or ""
    assert "max_pulse_rate_pps" in reason and "1e+300" in reason
    assert f"{BY_NAME['pulse_rate_pps'].maximum:g} pulses/s" in reason
    assert counts(engine)["dose_report"] == 0


def test_the_bounds_are_inclusive_and_a_real_report_passes(
    engine: Engine, importer: DoseImporter, tmp_path: Path
) -> None:
    top = maximum("dap_gycm2")
    path = make_report(tmp_path, dap=top, fluoro_time=maximum("fluoro_time_s"),
                       dose=maximum("air_kerma_mgy"))
    assert importer.import_path(path).status == "ok"
    assert [importer.import_path(p).status for p in REAL_FILES] == ["ok"] * 3


def test_store_checks_a_report_it_did_not_read_itself(
    engine: Engine, importer: DoseImporter
) -> None:
    """store() is public (the reader is not the only way to build a report): it checks too,
    so PostgreSQL never sees Infinity in the audit event's JSON."""
    parsed = read_dose_report(REAL_FILES[2])
    for name, value in (("dap_total_gycm2", math.inf), ("air_kerma_total_mgy", 1e303),
                        ("fluoro_time_s", math.nan), ("events", 2**40)):
        crafted = dataclasses.replace(parsed, **{name: value})
        result = importer.store(crafted, f"{name}.dcm", "0" * 64)
        assert result.status == "rejected" and name in (result.reason or ""), result
    assert counts(engine)["dose_report"] == 0


def test_a_report_value_near_zero_stores_no_infinite_relative_difference(
    engine: Engine, importer: DoseImporter, service: ProcedureLog, admin: Actor,
    tmp_path: Path,
) -> None:
    """1e-320 Gy·cm² is within bounds, but 1 Gy·cm² logged against it is 1e320 times it."""
    log_procedure(service, admin, patient_id="MRN-1", accession_number="ACC-1",
                  performed_at="2024-03-15T09:00:00+00:00", dap_value=1.0)
    result = importer.import_path(make_report(tmp_path, dap=1e-320))
    assert result.status == "ok"
    [found] = [d for d in result.discrepancies if d["field"] == "dap_gycm2"]
    assert found["relative_difference"] is None
    finite_everywhere(engine)


def test_reconcile_does_not_fill_a_procedure_from_an_out_of_bounds_stored_report(
    engine: Engine, importer: DoseImporter, service: ProcedureLog, admin: Actor,
    tmp_path: Path,
) -> None:
    """A row stored before the bounds existed stays unreconciled, with the reason."""
    stored = importer.import_path(make_report(tmp_path))
    assert stored.status == "ok" and stored.record_id is None
    with Session(engine) as session, session.begin():
        session.execute(text("UPDATE dose_report SET air_kerma_total_mgy = 1e303"))
    record_id = logged_without_dose(service, admin)
    [result] = importer.reconcile_unmatched()
    assert result.status == "rejected" and result.report_id == stored.report_id
    assert "air_kerma_total_mgy" in (result.reason or "") and "1e+303" in (result.reason or "")
    assert procedure(engine, record_id).air_kerma_mgy is None
    assert reports(engine)[0].procedure_id is None


def test_json_safe_replaces_every_non_finite_number() -> None:
    from audit.dose_reports.bounds import json_safe

    value: dict[str, Any] = {"a": math.inf, "b": [1.0, math.nan, {"c": -math.inf}],
                             "d": (2, "x"), "e": None, "f": 1e-320}
    assert json_safe(value) == {"a": None, "b": [1.0, None, {"c": None}], "d": [2, "x"],
                                "e": None, "f": 1e-320}



@pytest.mark.parametrize(("date", "offset"), [("99991231", "-1400"), ("00010101", "+1400"),
                                              ("99991231", None)])
def test_a_study_date_at_the_edge_of_the_calendar_is_read_as_no_date(
    engine: Engine, importer: DoseImporter, tmp_path: Path, date: str, offset: str | None
) -> None:
    """Found by the fuzz test: 9999-12-31 crashed matching (the next midnight overflows) and
    0001-01-01 +14:00 crashed the conversion to UTC. A date that cannot be compared with the
    log by day is malformed: the dose is still imported, without a study day."""
    path = make_report(tmp_path, study_date=date, timezone_offset=offset)
    result = importer.import_path(path)
    assert result.status == "ok", result
    [row] = reports(engine)
    assert row.study_datetime is None and row.study_day is None
