"""Storing dose reports: real files, duplicates, supersession, rejections, atomicity.

Every test runs on SQLite and PostgreSQL (the ``engine`` fixture).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from pydicom.uid import generate_uid
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from audit.auth import Actor
from audit.dose_reports import matching as reconcile
from audit.dose_reports import store as doses
from audit.dose_reports.store import DoseImporter
from audit.errors import PermissionDenied
from audit.log.service import ProcedureLog
from audit.storage.models import DoseReport
from audit.trail import verify_chain
from audit.vocab import Role

from .dose_helpers import REAL_FILES, counts, events, log_procedure, make_report, reports
from .rdsr_builder import (
    ENHANCED_SR,
    PLANE_A,
    PLANE_B,
    EventSpec,
    PlaneSpec,
    build_ct_report,
    build_mammography_report,
    build_rdsr,
    fluoro_totals,
    num,
    write,
    write_bare,
)
from .test_rdsr_parse import REAL_EXPECTED, approx


@pytest.fixture
def importer(engine: Engine, admin: Actor) -> DoseImporter:
    return DoseImporter(engine, admin)


# --- real files -------------------------------------------------------------------------------

def test_real_files_store_their_totals_in_canonical_units(
    engine: Engine, importer: DoseImporter
) -> None:
    results = [importer.import_path(path) for path in REAL_FILES]
    assert [r.status for r in results] == ["ok"] * 3
    stored = {Path(r.source_file).name: r for r in reports(engine)}
    for result in results:
        expected = REAL_EXPECTED[Path(result.file).name]
        row = stored[Path(result.file).name]
        for name, value in expected.items():
            assert getattr(row, name) == approx(value), name
            assert result.as_json()[name] == approx(value), name
        assert row.status == "current" and row.procedure_id is None
        assert row.source_sha256 == doses.sha256_hex(Path(result.file).read_bytes())
    siemens = stored["siemens_axiom_example_procedure.dcm"]
    assert (siemens.manufacturer, siemens.model, siemens.serial) == ("Siemens", "AXIOM-Artis",
                                                                     "146936")
    assert (siemens.events, siemens.fluoro_events, siemens.acquisition_events) == (24, 17, 7)
    assert siemens.accession_number == "SERUME0006506591"
    assert siemens.patient_id == "PAT-0555" and siemens.patient_ref.startswith("P")
    biplane = stored["philips_allura_clarity_u104.dcm"]
    assert [p["plane"] for p in biplane.planes] == ["A", "B"]


def test_each_import_is_audited_and_the_chain_holds(
    engine: Engine, importer: DoseImporter
) -> None:
    for path in REAL_FILES:
        importer.import_path(path)
    imported = [e for e in events(engine, "dose_report") if e.action == "import"]
    assert len(imported) == 3
    assert {e.after["source_sha256"] for e in imported} == {
        doses.sha256_hex(p.read_bytes()) for p in REAL_FILES}
    assert all("patient_id" not in e.after for e in imported)  # PHI stays out of the trail
    with Session(engine) as session:
        assert verify_chain(session).ok


# --- duplicates -------------------------------------------------------------------------------

def test_the_same_sop_instance_twice_is_a_duplicate_and_writes_nothing(
    engine: Engine, importer: DoseImporter, tmp_path: Path
) -> None:
    first = [importer.import_path(p) for p in REAL_FILES]
    before = counts(engine)
    copy = tmp_path / "renamed-copy.dcm"
    copy.write_bytes(REAL_FILES[0].read_bytes())
    again = [importer.import_path(p) for p in (*REAL_FILES, copy)]
    assert [r.status for r in again] == ["duplicate"] * 4
    assert [r.report_id for r in again[:3]] == [r.report_id for r in first]
    assert "already imported as dose report" in (again[3].reason or "")
    assert counts(engine) == before


def test_bytes_imported_under_another_name_are_still_a_duplicate(
    engine: Engine, importer: DoseImporter
) -> None:
    data = REAL_FILES[2].read_bytes()
    assert importer.import_bytes(data, "upload-1.dcm").status == "ok"
    assert importer.import_bytes(data, "upload-2.dcm").status == "duplicate"
    assert len(reports(engine)) == 1


# --- quirks of real-world files through the import path ---------------------------------------

@pytest.mark.parametrize(
    ("unit", "stored", "expected_gycm2"),
    [("Gy.m2", 1.5e-4, 1.5), ("Gym2", 1.5e-4, 1.5), ("Gy·m²", 1.5e-4, 1.5),
     ("dGy.cm2", 15.0, 1.5), ("cGy.cm2", 150.0, 1.5), ("mGy.cm2", 1500.0, 1.5),
     ("µGy.m2", 150.0, 1.5), ("uGy.m2", 150.0, 1.5)],
)
def test_dap_unit_spellings_store_gycm2(
    engine: Engine, importer: DoseImporter, tmp_path: Path, unit: str, stored: float,
    expected_gycm2: float,
) -> None:
    path = make_report(tmp_path, dap=stored, dap_unit=unit)
    assert importer.import_path(path).status == "ok"
    assert reports(engine)[0].dap_total_gycm2 == pytest.approx(expected_gycm2)


def test_air_kerma_in_gy_is_stored_in_mgy(
    engine: Engine, importer: DoseImporter, tmp_path: Path
) -> None:
    path = write(build_rdsr(planes=[PlaneSpec(totals=fluoro_totals(dose=0.0125,
                                                                      dose_unit="Gy"))],
                            events=[EventSpec()]), tmp_path / "gy.dcm")
    assert importer.import_path(path).status == "ok"
    assert reports(engine)[-1].air_kerma_total_mgy == pytest.approx(12.5)


def test_misspelled_meanings_and_missing_template_import(
    engine: Engine, importer: DoseImporter, tmp_path: Path
) -> None:
    spec = PlaneSpec(totals=fluoro_totals(dap=2.0, dose=9.0),
                     meanings={"113728": "Fluoro Dose(RP) Total", "113722": "DAP totl"})
    path = write(build_rdsr(planes=[spec], events=[EventSpec()], template_id=None),
                 tmp_path / "quirky.dcm")
    result = importer.import_path(path)
    assert result.status == "ok"
    row = reports(engine)[0]
    assert row.dap_total_gycm2 == 2.0 and row.fluoro_air_kerma_mgy == 9.0


def test_biplane_report_stores_summed_and_per_plane_totals(
    engine: Engine, importer: DoseImporter, tmp_path: Path
) -> None:
    planes = [PlaneSpec(PLANE_A, fluoro_totals(dap=1.0, fluoro_time=30, dose=5)),
              PlaneSpec(PLANE_B, fluoro_totals(dap=0.5, fluoro_time=20, dose=3))]
    path = write(build_rdsr(planes=planes, events=[EventSpec(plane=PLANE_A),
                                                   EventSpec(plane=PLANE_B)]),
                 tmp_path / "biplane.dcm")
    assert importer.import_path(path).status == "ok"
    row = reports(engine)[0]
    assert (row.dap_total_gycm2, row.fluoro_time_s, row.air_kerma_total_mgy) == (1.5, 50.0, 8.0)
    assert [(p["plane"], p["dap_total_gycm2"]) for p in row.planes] == [("A", 1.0), ("B", 0.5)]


@pytest.mark.parametrize(
    ("kind", "expected_dap"),
    [("enhanced-sr", 1.5), ("nested-totals", 4.0), ("private-vendor-total", 3.0),
     ("all-planes", 2.5), ("big-endian", 1.5)],
)
def test_more_real_world_shapes_import(
    engine: Engine, importer: DoseImporter, tmp_path: Path, kind: str, expected_dap: float
) -> None:
    from pydicom.uid import ExplicitVRBigEndian

    events = [EventSpec()]
    path = tmp_path / f"{kind}.dcm"
    if kind == "enhanced-sr":
        write(build_rdsr(sop_class=ENHANCED_SR, planes=[PlaneSpec(totals=fluoro_totals())],
                         events=events), path)
    elif kind == "nested-totals":
        write(build_rdsr(planes=[PlaneSpec(totals=fluoro_totals(dap=4.0), nest_totals=True)],
                         events=events), path)
    elif kind == "private-vendor-total":
        private = num("113722", 999.0, "Gy.cm2", "Vendor total", scheme="99VENDOR")
        write(build_rdsr(planes=[PlaneSpec(totals=fluoro_totals(dap=3.0))], events=events,
                         extra_items=[private]), path)
    elif kind == "all-planes":
        planes = [PlaneSpec(PLANE_A, fluoro_totals(dap=2.0)),
                  PlaneSpec(PLANE_B, fluoro_totals(dap=0.5)),
                  PlaneSpec("113890", fluoro_totals(dap=2.5))]
        write(build_rdsr(planes=planes, events=events), path)
    else:
        write(build_rdsr(planes=[PlaneSpec(totals=fluoro_totals())], events=events), path,
              ExplicitVRBigEndian)
    result = importer.import_path(path)
    assert result.status == "ok", result.reason
    assert reports(engine)[0].dap_total_gycm2 == pytest.approx(expected_dap)


def test_data_set_without_preamble_imports(
    engine: Engine, importer: DoseImporter, tmp_path: Path
) -> None:
    path = write_bare(build_rdsr(planes=[PlaneSpec(totals=fluoro_totals())],
                                 events=[EventSpec()]), tmp_path / "bare")
    assert importer.import_path(path).status == "ok"


def _rejected_files(tmp_path: Path) -> dict[str, Path]:
    real = REAL_FILES[0].read_bytes()
    files = {
        "ct": write(build_ct_report(), tmp_path / "ct.dcm"),
        "mammography": write(build_mammography_report(), tmp_path / "mg.dcm"),
        "truncated": tmp_path / "cut.dcm",
        "text": tmp_path / "notes.txt",
        "empty": tmp_path / "empty.dcm",
        "unknown-unit": make_report(tmp_path, "unit.dcm", dap_unit="Gy.in2"),
        "long-uid": write(build_rdsr(planes=[PlaneSpec(totals=fluoro_totals())],
                                     events=[EventSpec()], sop_uid="1." + "2" * 80),
                          tmp_path / "uid.dcm"),
    }
    files["truncated"].write_bytes(real[: len(real) * 2 // 3])
    files["text"].write_text("Procedure log export\nnot a dose report\n")
    files["empty"].write_bytes(b"")
    return files


@pytest.mark.filterwarnings("ignore:The value length")
@pytest.mark.parametrize(
    ("kind", "says"),
    [("ct", "CT Radiation Dose"), ("mammography", "mammography"), ("truncated", "truncated"),
     ("text", "non-DICOM"), ("empty", "empty"), ("unknown-unit", "'Gy.in2'"),
     ("long-uid", "sop_instance_uid")],
)
def test_rejected_files_write_nothing(
    engine: Engine, importer: DoseImporter, tmp_path: Path, kind: str, says: str
) -> None:
    path = _rejected_files(tmp_path)[kind]
    before = counts(engine)
    result = importer.import_path(path)
    assert result.status == "rejected"
    assert says in (result.reason or "")
    assert counts(engine) == before


def test_unreadable_path_is_rejected_not_raised(
    engine: Engine, importer: DoseImporter, tmp_path: Path
) -> None:
    result = importer.import_path(tmp_path / "gone.dcm")
    assert result.status == "rejected" and "cannot read" in (result.reason or "")


def test_a_huge_file_is_rejected_without_reading_it(
    engine: Engine, importer: DoseImporter, tmp_path: Path
) -> None:
    video = tmp_path / "procedure.mp4"
    with video.open("wb") as handle:
        handle.truncate(200 * 1024 * 1024)  # sparse: costs no disk
    result = importer.import_path(video)
    assert result.status == "rejected" and "larger than any RDSR" in (result.reason or "")


def test_concurrent_reports_of_one_study_leave_exactly_one_current(
    engine: Engine, admin: Actor, tmp_path: Path
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    for attempt in range(3):
        study = generate_uid()
        files = [make_report(tmp_path, f"{attempt}-{n}.dcm", study_uid=study, events=n)
                 for n in (2, 5, 3)]
        with ThreadPoolExecutor(max_workers=3) as pool:
            results = list(pool.map(
                lambda path: DoseImporter(engine, admin).import_path(path), files))
        assert [r.status for r in results] == ["ok"] * 3
        with Session(engine) as session:
            current = session.execute(
                select(DoseReport.events).where(DoseReport.study_instance_uid == study,
                                                DoseReport.status == "current")).scalars().all()
        assert current == [5]


@pytest.mark.filterwarnings("ignore")
def test_corrupted_files_never_crash_or_leave_partial_rows(
    engine: Engine, importer: DoseImporter
) -> None:
    rng = random.Random(20240315)
    for attempt in range(40):
        data = bytearray(REAL_FILES[attempt % 3].read_bytes())
        for _ in range(rng.randint(1, 30)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if attempt % 4 == 0:
            data = data[: rng.randrange(len(data))]
        before = counts(engine)
        result = importer.import_bytes(bytes(data), f"fuzz-{attempt}.dcm")
        after = counts(engine)
        assert result.status in ("ok", "rejected", "duplicate")
        if result.status == "ok":
            assert after["dose_report"] == before["dose_report"] + 1
        else:
            assert after == before


def test_a_failure_inside_the_transaction_leaves_no_row(
    engine: Engine, importer: DoseImporter, service: ProcedureLog, admin: Actor,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    log_procedure(service, admin, patient_id="MRN-1", accession_number="ACC-1",
                  performed_at="2024-03-15T09:00:00+00:00")
    before = counts(engine)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(reconcile, "apply", broken)
    with pytest.raises(RuntimeError):
        importer.import_path(make_report(tmp_path))
    assert counts(engine) == before


# --- growing reports --------------------------------------------------------------------------

def test_a_fuller_report_of_the_same_study_supersedes_the_earlier(
    engine: Engine, importer: DoseImporter, tmp_path: Path
) -> None:
    study = generate_uid()
    first = importer.import_path(make_report(tmp_path, "a.dcm", study_uid=study, events=2,
                                             dap=1.0))
    second = importer.import_path(make_report(tmp_path, "b.dcm", study_uid=study, events=5,
                                              dap=2.5))
    assert second.status == "ok" and second.supersedes == [first.report_id]
    rows = {r.id: r for r in reports(engine)}
    assert rows[first.report_id].status == "superseded"
    assert rows[first.report_id].superseded_by_id == second.report_id
    assert rows[second.report_id].status == "current"
    amend = [e for e in events(engine, "dose_report", first.report_id) if e.action == "amend"]
    assert len(amend) == 1 and amend[0].after == {"status": "superseded",
                                                  "superseded_by": second.report_id}


def test_an_older_smaller_report_arriving_late_is_kept_superseded(
    engine: Engine, importer: DoseImporter, tmp_path: Path
) -> None:
    study = generate_uid()
    full = importer.import_path(make_report(tmp_path, "full.dcm", study_uid=study, events=4))
    late = importer.import_path(make_report(tmp_path, "late.dcm", study_uid=study, events=2))
    assert late.status == "ok" and late.superseded_by == full.report_id
    assert "stored as superseded" in (late.note or "")
    rows = {r.id: r.status for r in reports(engine)}
    assert rows == {full.report_id: "current", late.report_id: "superseded"}


# --- dry run, permissions ---------------------------------------------------------------------

def test_dry_run_reports_the_outcome_and_writes_nothing(
    engine: Engine, importer: DoseImporter, service: ProcedureLog, admin: Actor,
    tmp_path: Path,
) -> None:
    record_id = log_procedure(service, admin, patient_id="MRN-1", accession_number="ACC-1",
                              performed_at="2024-03-15T09:00:00+00:00", air_kerma_mgy=None)
    before = counts(engine)
    result = importer.import_path(make_report(tmp_path, dose=12.0), dry_run=True)
    assert result.status == "ok" and result.dry_run
    assert result.record_id == record_id and result.filled == ["air_kerma_mgy"]
    assert counts(engine) == before


def test_roles_without_import_permission_are_refused(engine: Engine) -> None:
    with pytest.raises(PermissionDenied):
        DoseImporter(engine, Actor("dr", Role.PHYSICIAN))


def test_a_technologist_may_import(engine: Engine, tmp_path: Path) -> None:
    result = DoseImporter(engine, Actor("tech1", Role.TECHNOLOGIST)).import_path(
        make_report(tmp_path))
    assert result.status == "ok"
    with Session(engine) as session:
        assert session.scalar(select(DoseReport.imported_by)) == "tech1"


def test_an_invalid_site_timezone_stops_the_run_with_its_name(
    engine: Engine, admin: Actor, tmp_path: Path
) -> None:
    from audit.settings import update_setting

    update_setting(engine, admin, "site_timezone", "Mars/Olympus")
    with pytest.raises(reconcile.SettingInvalid, match="site_timezone"):
        DoseImporter(engine, admin).import_path(make_report(tmp_path))
