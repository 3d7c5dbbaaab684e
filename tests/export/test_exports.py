"""Audit exports on both databases: round trip, hostile text, PHI, manifest, verify, streaming."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, select, update
from sqlalchemy.orm import Session

from audit.auth import Actor
from audit.dictionary import FIELD_NAMES, FIELDS, Io
from audit.errors import PermissionDenied, ValidationFailed
from audit.export import registry
from audit.export import types as export_types
from audit.export.cells import FORMULA_START, Kind, restore, restore_list
from audit.export.runner import ExportTargetExists, count_rows, export
from audit.export.sections import procedure_lines_query, procedure_log_query
from audit.export.types import Column, Section, SectionContext, SectionData
from audit.export.verify import verify_export
from audit.filters import Filters, parse_period
from audit.keys import load_keys
from audit.log.service import ProcedureLog
from audit.storage.engine import make_engine
from audit.storage.models import AuditEvent, Patient, Procedure, ProcedureLevel
from audit.trail import event_hash, verify_chain
from audit.vocab import AuditAction, Role
from tests.conftest import Databases, valid_record

RSO = Actor("rso1", Role.RSO)
QUALITY = Actor("qo1", Role.QUALITY_OFFICER)
TEXTUAL = {"text", "enum", "list"}
NOT_COMPARED = {"record_id", "created_at", "created_by", "updated_at", "updated_by"}
MRNS = ("MRN0001", "MRN0002", "山田太郎", "MRN0003", "MRN0004")


def records() -> list[dict[str, Any]]:
    """Varied, valid procedures, with hostile and non-Latin text where the record allows it."""
    return [
        valid_record(),
        valid_record(performed_at="2026-03-14T10:15:00-05:00", site="@SUM(A1)", room="+1",
                     physician="=cmd|' /C calc'!A0", patient_id="MRN0002",
                     accession_number="-2+3",
                     notes='He said "stop", then\r\nleft;\tok, fine'),
        valid_record(performed_at="2026-03-15T08:00:00+01:00", physician="Łukasz Żółć",
                     patient_id="山田太郎", patient_sex="F", patient_weight_kg=61.5,
                     procedure_code="ILESI", levels=["C6-C7"], laterality="midline",
                     confirmation_views=["AP", "CLO"], realtime_contrast=False,
                     injectate="triamcinolone", notes="Ελένη: line one\nline two"),
        valid_record(performed_at="2026-03-16T12:00:00Z", physician="Ελένη Παπαδοπούλου",
                     procedure_code="MBB", levels=["L3-L4", "L4-L5", "L5-S1"],
                     laterality="bilateral", dap_value=71, dap_unit="cGy·cm²",
                     guidance="fluoroscopy_dsa", dsa_runs=2, pulsed_fluoro=True,
                     pulse_rate_pps=8, low_dose_mode=False, air_kerma_mgy=4.25),
        valid_record(performed_at="2026-03-17T12:00:00Z", patient_id="MRN0003",
                     contrast_confirmation="contraindicated",
                     contrast_exception_reason="other",
                     contrast_exception_detail="+patient refused; see @notes",
                     contrast_agent=None, contrast_volume_ml=None, confirmation_views=None,
                     realtime_contrast=None, dap_value=None, dap_unit=None,
                     dap_missing_reason="=unit shows no DAP", injectate="dexamethasone"),
        valid_record(performed_at="2026-03-18T12:00:00Z", patient_id="MRN0004",
                     vascular_uptake=True, needle_repositioned=False, fluoro_time_s=7.5),
    ]


@pytest.fixture
def logged_all(service: ProcedureLog, admin: Actor) -> list[int]:
    results = service.log_many(records(), admin, confirm_warnings=True, create_missing=True)
    return [r.record_id for r in results]


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def header(path: Path) -> list[str]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return next(csv.reader(handle))


def as_input(row: dict[str, str]) -> dict[str, Any]:
    """A procedures.csv row as input to ProcedureLog: out-only columns dropped, text restored,
    lists split (what the CSV importer does with our own exports)."""
    data: dict[str, Any] = {}
    for f in FIELDS:
        value = row.get(f.name, "")
        if f.io is Io.OUT or value == "":
            continue
        data[f.name] = (restore_list(value) if f.type == "list" else
                        restore(value) if f.type in TEXTUAL else value)
    return data


def export_events(engine: Engine) -> list[AuditEvent]:
    with Session(engine) as s:
        return list(s.scalars(select(AuditEvent).where(
            AuditEvent.action == AuditAction.EXPORT.value).order_by(AuditEvent.id)))


# --- round trip ------------------------------------------------------------------------------

def test_export_then_import_into_a_fresh_database_gives_the_same_records(
    service: ProcedureLog, admin: Actor, logged_all: list[int], tmp_path: Path,
    databases: Databases, backend: str,
) -> None:
    first = export(service.engine, admin, tmp_path / "first", include_phi=True)
    rows = read_csv(first.path / "procedures.csv")
    assert [int(r["record_id"]) for r in rows] == logged_all  # performed_at order

    fresh_url = databases.sqlite() if backend == "sqlite" else databases.postgresql()
    fresh = ProcedureLog(make_engine(fresh_url))
    try:
        results = fresh.log_many([as_input(r) for r in rows], admin, confirm_warnings=True,
                                 create_missing=True)
        for old_id, new in zip(logged_all, results, strict=True):
            before, after = service.get(old_id, admin), fresh.get(new.record_id, admin)
            for name in FIELD_NAMES:
                if name not in NOT_COMPARED:
                    assert after[name] == before[name], name
        second = export(fresh.engine, admin, tmp_path / "second", include_phi=True)
        again = read_csv(second.path / "procedures.csv")
        keep = [n for n in FIELD_NAMES if n not in NOT_COMPARED]
        assert [[r[n] for n in keep] for r in again] == [[r[n] for n in keep] for r in rows]
    finally:
        fresh.engine.dispose()


def test_columns_follow_the_data_dictionary(
    engine: Engine, admin: Actor, logged_all: list[int], tmp_path: Path
) -> None:
    without = export(engine, admin, tmp_path / "a")
    assert header(without.path / "procedures.csv") == [
        n for n in FIELD_NAMES if n != "patient_id"]
    with_phi = export(engine, admin, tmp_path / "b", include_phi=True)
    assert header(with_phi.path / "procedures.csv") == list(FIELD_NAMES)
    dictionary = read_csv(with_phi.path / "data_dictionary.csv")
    assert [d["field"] for d in dictionary if d["file"] == "procedures.csv"] == \
        list(FIELD_NAMES)
    dap = next(d for d in dictionary if d["field"] == "dap_gycm2")
    assert (dap["type"], dap["unit"]) == ("number", "Gy·cm²")
    assert next(d for d in dictionary if d["field"] == "patient_sex")["allowed_values"] == \
        "F; M; O; U"


def test_cells_are_rendered_as_the_dictionary_says(
    engine: Engine, admin: Actor, logged_all: list[int], tmp_path: Path
) -> None:
    rows = read_csv(export(engine, admin, tmp_path / "x").path / "procedures.csv")
    first, mbb = rows[0], rows[3]
    assert first["performed_at"] == "2026-03-14T14:30:00Z"
    assert first["levels"] == "L4;L5" and first["confirmation_views"] == "AP;LAT"
    assert first["realtime_contrast"] == "true" and first["pulsed_fluoro"] == ""
    assert first["dap_gycm2"] == "0.71" and first["fluoro_time_s"] == "32"
    assert mbb["dap_gycm2"] == "0.71" and mbb["dap_value"] == "71"  # 71 cGy·cm², no float noise
    assert mbb["low_dose_mode"] == "false" and mbb["pulse_rate_pps"] == "8"
    assert mbb["levels"] == "L3-L4;L4-L5;L5-S1"
    assert first["background_days"] == "27.6"  # 0.71 x 0.33 mSv x 365 / 3.1
    warned = rows[5]["warnings"]
    assert warned.startswith("fluoro_time_s: 7.5 s is very short")
    assert "; needle_repositioned: vascular uptake recorded" in warned
    assert rows[4]["dap_gycm2"] == rows[4]["effective_dose_msv"] == ""  # no DAP recorded
    for row in rows:
        for name in ("fluoro_time_s", "saved_images", "air_kerma_mgy"):
            float(row[name])  # plain numbers, no separators


def test_levels_come_in_position_order(
    engine: Engine, admin: Actor, logged: int, tmp_path: Path
) -> None:
    with Session(engine) as s, s.begin():  # swap the two positions: L5 first, then L4
        where = ProcedureLevel.procedure_id == logged
        s.execute(update(ProcedureLevel).where(where, ProcedureLevel.position == 1)
                  .values(position=3))
        s.execute(update(ProcedureLevel).where(where, ProcedureLevel.position == 2)
                  .values(position=1))
        s.execute(update(ProcedureLevel).where(where, ProcedureLevel.position == 3)
                  .values(position=2))
    rows = read_csv(export(engine, admin, tmp_path / "x").path / "procedures.csv")
    assert rows[0]["levels"] == "L5;L4"


# --- hostile text ----------------------------------------------------------------------------

def test_hostile_text_survives_and_is_neutralised(
    engine: Engine, admin: Actor, logged_all: list[int], tmp_path: Path
) -> None:
    first = logged_all[0]
    with Session(engine) as s, s.begin():  # what validation never lets in, stored anyway
        s.execute(update(Procedure).where(Procedure.id == first).values(
            notes="\t=1+1",
            warnings=[{"message": '=HYPERLINK("http://x")'}, {"field": "levels", "message": "ok"}]))
        for position, level in ((1, "=1+1"), (2, "'q")):
            s.execute(update(ProcedureLevel).where(ProcedureLevel.procedure_id == first,
                                                   ProcedureLevel.position == position)
                      .values(level=level))
    result = export(engine, admin, tmp_path / "x")
    path = result.path / "procedures.csv"
    raw = path.read_bytes().decode("utf-8-sig")
    assert ",'=cmd|' /C calc'!A0," in raw
    assert ",'@SUM(A1),'+1," in raw and ",'-2+3," in raw
    assert '"\'He said ""stop"", then\r\nleft;\tok, fine"' not in raw  # not neutralised: 'H'
    assert '"He said ""stop"", then\r\nleft;\tok, fine"' in raw
    assert ",'\t=1+1," in raw
    assert ",'=unit shows no DAP," in raw and ",'+patient refused; see @notes," in raw
    rows = read_csv(path)
    assert len(rows) == 6 == result.rows["procedures.csv"]  # quoted newlines are not rows
    textual = [f.name for f in FIELDS if f.type in TEXTUAL and f.name != "patient_id"]
    for row in rows:
        for name in textual:
            assert not row[name].startswith(FORMULA_START), (name, row[name])
    assert [restore(r["physician"]) for r in rows] == [
        "Dr. Chen", "=cmd|' /C calc'!A0", "Łukasz Żółć", "Ελένη Παπαδοπούλου", "Dr. Chen",
        "Dr. Chen"]
    assert restore(rows[1]["notes"]) == 'He said "stop", then\r\nleft;\tok, fine'
    assert restore(rows[2]["notes"]) == "Ελένη: line one\nline two"
    assert restore(rows[0]["notes"]) == "\t=1+1"
    assert rows[0]["levels"] == "'=1+1;''q"  # each item neutralised, so the rule reverses
    assert restore_list(rows[0]["levels"]) == ["=1+1", "'q"]
    assert rows[0]["warnings"] == "'=HYPERLINK(\"http://x\"); levels: ok"


@pytest.mark.parametrize("backend", ["sqlite"])  # the SQL-built records are SQLite's path
def test_records_built_in_sqlite_equal_csv_writer_on_the_same_cells(
    engine: Engine, admin: Actor, logged_all: list[int]
) -> None:
    """SQLite writes the log as whole records (csvsafe.sql_csv_line): byte for byte what
    csv.writer writes for the cells of procedure_log_query, hostile text included."""
    assert engine.dialect.name == "sqlite"
    first = logged_all[0]
    with Session(engine) as s, s.begin():
        s.execute(update(Procedure).where(Procedure.id == first).values(
            notes='a,b "c"\rd\ne,\'f', accession_number='"q"',
            warnings=[{"field": "notes", "message": 'x, "y"'}, {"message": "=z\n"}]))
        for record_id, notes in zip(logged_all[2:], ("comma, only", "cr\ronly", "lf\nonly",
                                                      'quote"only'), strict=True):
            s.execute(update(Procedure).where(Procedure.id == record_id).values(notes=notes))
    filters = Filters(include_voided=True)
    for include_phi in (False, True):
        with engine.connect() as connection:
            cells = connection.execute(procedure_log_query(filters, include_phi)).all()
            lines = connection.scalars(procedure_lines_query(filters, include_phi)).all()
        buffer = io.StringIO()
        csv.writer(buffer, dialect="excel", quoting=csv.QUOTE_MINIMAL,
                   lineterminator="\r\n").writerows(cells)
        assert len(lines) == len(logged_all)
        assert "".join(line + "\r\n" for line in lines) == buffer.getvalue()


# --- patient identity ------------------------------------------------------------------------

def _all_text(folder: Path) -> str:
    return "".join(p.read_bytes().decode("utf-8", errors="replace") for p in folder.iterdir())


def test_no_phi_by_default(engine: Engine, logged_all: list[int], tmp_path: Path) -> None:
    result = export(engine, QUALITY, tmp_path / "x", sections=("procedures", "audit_trail"))
    text = _all_text(result.path)
    for mrn in MRNS:
        assert mrn not in text
    with Session(engine) as s:
        refs = dict(s.execute(select(Patient.mrn, Patient.pseudonym)).all())
    rows = read_csv(result.path / "procedures.csv")
    assert [r["patient_ref"] for r in rows] == [refs[m] for m in
                                                ("MRN0001", "MRN0002", "山田太郎", "MRN0001",
                                                 "MRN0003", "MRN0004")]
    trail = read_csv(result.path / "audit_trail.csv")
    created = [r for r in trail if r["action"] == "create" and r["entity"] == "procedure"]
    assert len(created) == 6 and all(r["redacted"] == "true" for r in created)
    assert json.loads(created[2]["after"])["patient_ref"] == refs["山田太郎"]
    assert result.manifest["include_phi"] is False
    readme = (result.path / "README.txt").read_text("utf-8")
    assert "patients appear only as patient_ref" in readme and "sha256sum -c" in readme


def test_phi_only_when_allowed(engine: Engine, logged_all: list[int], tmp_path: Path) -> None:
    with pytest.raises(PermissionDenied, match="export phi"):
        export(engine, QUALITY, tmp_path / "qo", include_phi=True)
    assert not (tmp_path / "qo").exists() and list(tmp_path.iterdir()) == []
    assert export_events(engine) == []
    with pytest.raises(PermissionDenied):
        export(engine, Actor("tech1", Role.TECHNOLOGIST), tmp_path / "tech")
    with pytest.raises(PermissionDenied):
        count_rows(engine, Actor("doc", Role.PHYSICIAN))

    result = export(engine, RSO, tmp_path / "rso", include_phi=True,
                    sections=("procedures", "audit_trail"))
    rows = read_csv(result.path / "procedures.csv")
    assert [r["patient_id"] for r in rows] == ["MRN0001", "MRN0002", "山田太郎", "MRN0001",
                                               "MRN0003", "MRN0004"]
    assert result.manifest["include_phi"] is True
    assert export_events(engine)[-1].after["include_phi"] is True
    assert "INCLUDES patient_id" in (result.path / "README.txt").read_text("utf-8")


def test_audit_trail_with_phi_can_be_rehashed_from_the_file(
    engine: Engine, logged_all: list[int], tmp_path: Path
) -> None:
    result = export(engine, RSO, tmp_path / "x", include_phi=True, sections=("audit_trail",))
    rows = read_csv(result.path / "audit_trail.csv")
    assert rows and all(r["redacted"] == "false" for r in rows)
    assert any("山田太郎" in r["after"] for r in rows)
    for row in rows:
        cells = {k: (restore(v) if v != "" else None) for k, v in row.items()}
        occurred = datetime.strptime(row["occurred_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=UTC)
        assert event_hash(
            cells["prev_hash"], occurred, cells["actor"], cells["action"], cells["entity"],
            cells["entity_id"], cells["reason"],
            json.loads(cells["before"]) if cells["before"] else None,
            json.loads(cells["after"]) if cells["after"] else None,
            key=load_keys(engine).trail_key,
        ) == row["hash"]


# --- the package: manifest, sums, audit event, verify ----------------------------------------

def test_manifest_sums_and_audit_event_agree(
    engine: Engine, logged_all: list[int], tmp_path: Path
) -> None:
    filters = Filters(*parse_period("2026-03-15", "2026-03-17"), procedures=("mbb",))
    result = export(engine, QUALITY, tmp_path / "x", filters=filters)
    assert sorted(p.name for p in result.path.iterdir()) == [
        "README.txt", "SHA256SUMS", "data_dictionary.csv", "manifest.json", "manifest.sig",
        "procedures.csv", "signing_public_key.txt"]
    manifest = json.loads((result.path / "manifest.json").read_text("utf-8"))
    assert manifest["generated_by"] == "qo1" and manifest["tool_version"]
    assert manifest["generated_at"].endswith("Z")
    assert manifest["filters"]["from"] == "2026-03-15T00:00:00Z"
    assert manifest["filters"]["before"] == "2026-03-18T00:00:00Z"
    assert manifest["filters"]["procedure_code"] == "MBB"
    files = {f["name"]: f for f in manifest["files"]}
    assert files["procedures.csv"]["rows"] == 1
    sums = (result.path / "SHA256SUMS").read_text("ascii").splitlines()
    assert len(sums) == 6 and f"{files['procedures.csv']['sha256']}  procedures.csv" in sums

    event = export_events(engine)[-1]
    assert event.entity_id == manifest["export_id"] == result.export_id
    assert event.actor == "qo1" and event.after["include_phi"] is False
    assert event.after["filters"] == manifest["filters"]
    assert manifest["audit_event"]["event_id"] == event.id == result.audit_event_id
    assert manifest["audit_event"]["mac"] == event.hash
    assert event.after["stage"] == "completed" and event.after["started_event_id"] is None
    by_name = {f["name"]: f["sha256"] for f in event.after["files"]}
    # Written after the event (the manifest records its id and MAC), signed instead.
    assert set(by_name) == {"procedures.csv", "data_dictionary.csv", "README.txt",
                            "signing_public_key.txt"}
    for line in sums:
        digest, name = line.split("  ")
        if name not in ("manifest.json", "manifest.sig"):
            assert by_name[name] == digest
    with Session(engine) as s:
        assert verify_chain(s).ok


def _sha256sum(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=folder, capture_output=True,
                          text=True, check=False)


def test_an_untouched_export_verifies(
    engine: Engine, logged_all: list[int], tmp_path: Path
) -> None:
    result = export(engine, RSO, tmp_path / "x", sections=("procedures", "audit_trail"))
    report = verify_export(result.path)
    assert report.ok, report.problems
    assert set(report.checked) == {"procedures.csv", "audit_trail.csv", "data_dictionary.csv",
                                   "README.txt", "manifest.json", "manifest.sig",
                                   "signing_public_key.txt"}
    checked = _sha256sum(result.path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "procedures.csv: OK" in checked.stdout


def test_a_changed_byte_fails_verify_and_sha256sum(
    engine: Engine, logged_all: list[int], tmp_path: Path
) -> None:
    result = export(engine, RSO, tmp_path / "x")
    path = result.path / "procedures.csv"
    data = bytearray(path.read_bytes())
    at = data.index(b"0.71")
    data[at + 3] = ord("2")  # 0.71 -> 0.72: same size, one byte
    path.write_bytes(bytes(data))
    report = verify_export(result.path)
    assert not report.ok
    assert any(p.startswith("procedures.csv: SHA-256 differs") for p in report.problems)
    checked = _sha256sum(result.path)
    assert checked.returncode != 0 and "procedures.csv: FAILED" in checked.stdout


def test_verify_reports_row_counts_missing_and_unlisted_files(
    engine: Engine, logged_all: list[int], tmp_path: Path
) -> None:
    result = export(engine, RSO, tmp_path / "x")
    folder = result.path
    manifest = json.loads((folder / "manifest.json").read_text("utf-8"))
    manifest["files"][0]["rows"] += 1  # a manifest that lies about the row count ...
    (folder / "manifest.json").write_text(json.dumps(manifest), "utf-8")
    sums = [line for line in (folder / "SHA256SUMS").read_text().splitlines()
            if not line.endswith("manifest.json")]
    import hashlib  # ... with its own hash updated so only the count is wrong

    digest = hashlib.sha256((folder / "manifest.json").read_bytes()).hexdigest()
    (folder / "SHA256SUMS").write_text("\n".join([*sums, f"{digest}  manifest.json"]) + "\n")
    (folder / "data_dictionary.csv").unlink()
    (folder / "notes.txt").write_text("added later")
    problems = verify_export(folder).problems
    assert "procedures.csv: 6 records, manifest.json says 7" in problems
    assert "data_dictionary.csv: listed but missing" in problems
    assert "notes.txt: present but not listed in SHA256SUMS" in problems


def test_zip_holds_the_folder_and_verifies(
    engine: Engine, logged_all: list[int], tmp_path: Path
) -> None:
    import zipfile

    result = export(engine, RSO, tmp_path / "x", make_zip=True)
    assert result.zip_path == tmp_path / "x.zip"
    with zipfile.ZipFile(result.zip_path) as archive:
        assert sorted(archive.namelist()) == ["x/README.txt", "x/SHA256SUMS",
                                              "x/data_dictionary.csv", "x/manifest.json",
                                              "x/manifest.sig", "x/procedures.csv",
                                              "x/signing_public_key.txt"]
    assert verify_export(result.zip_path).ok


def test_exports_never_overwrite(engine: Engine, logged_all: list[int], tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    with pytest.raises(ExportTargetExists):
        export(engine, RSO, tmp_path / "x")
    assert [p.name for p in (tmp_path / "x").iterdir()] == ["keep.txt"]
    assert export_events(engine) == []
    (tmp_path / "empty").mkdir()  # an empty folder may be used
    assert export(engine, RSO, tmp_path / "empty").rows["procedures.csv"] == 6


def test_a_failing_export_leaves_nothing(
    engine: Engine, logged_all: list[int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(ctx: SectionContext) -> SectionData:
        def chunks() -> Iterator[list[list[Any]]]:
            yield [["fine"]]
            raise RuntimeError("disk on fire")

        return SectionData([Column("x", Kind.TEXT)], chunks())

    monkeypatch.setitem(registry.SECTIONS, "broken", Section("broken", "broken.csv", "t", broken))
    with pytest.raises(RuntimeError, match="disk on fire"):
        export(engine, RSO, tmp_path / "x", sections=("procedures", "broken"))
    assert list(tmp_path.iterdir()) == []
    assert export_events(engine) == []


# --- filters ---------------------------------------------------------------------------------

def _exported(engine: Engine, tmp_path: Path, name: str, **filters: Any) -> list[str]:
    result = export(engine, RSO, tmp_path / name, filters=Filters(**filters))
    return [restore(r["physician"]) for r in read_csv(result.path / "procedures.csv")]


def test_filters(engine: Engine, logged_all: list[int], tmp_path: Path) -> None:
    start, stop = parse_period("2026-03-15", "2026-03-16")
    assert _exported(engine, tmp_path, "a", start=start, before=stop) == [
        "Łukasz Żółć", "Ελένη Παπαδοπούλου"]
    assert _exported(engine, tmp_path, "b", sites=("@SUM(A1)",)) == ["=cmd|' /C calc'!A0"]
    assert _exported(engine, tmp_path, "c", rooms=("+1",)) == ["=cmd|' /C calc'!A0"]
    assert _exported(engine, tmp_path, "d", physicians=("Łukasz Żółć",)) == ["Łukasz Żółć"]
    assert _exported(engine, tmp_path, "e", procedures=("ilesi",)) == ["Łukasz Żółć"]
    counted = count_rows(engine, QUALITY, Filters(start=start, before=stop))
    assert counted == {"procedures": 2}


def test_voided_records_only_on_request(
    service: ProcedureLog, admin: Actor, logged_all: list[int], tmp_path: Path
) -> None:
    service.void(logged_all[1], admin, version=1, reason="=wrong patient")
    plain = read_csv(export(service.engine, RSO, tmp_path / "a").path / "procedures.csv")
    assert [int(r["record_id"]) for r in plain] == logged_all[:1] + logged_all[2:]
    both = read_csv(export(service.engine, RSO, tmp_path / "b",
                           filters=Filters(include_voided=True)).path / "procedures.csv")
    voided = [r for r in both if r["status"] == "void"]
    assert [int(r["record_id"]) for r in voided] == [logged_all[1]]
    assert voided[0]["void_reason"] == "'=wrong patient" and voided[0]["version"] == "2"


def test_unknown_names_are_errors_naming_the_field(
    engine: Engine, logged_all: list[int], tmp_path: Path
) -> None:
    with pytest.raises(ValidationFailed) as info:
        export(engine, RSO, tmp_path / "x", filters=Filters(sites=("Nowhere",), rooms=("OR 9",)))
    fields = {e.field: e.message for e in info.value.errors}
    assert set(fields) == {"site", "room"}
    assert "no site named 'Nowhere'" in fields["site"] and "'Riverside'" in fields["site"]
    with pytest.raises(ValidationFailed, match="sections"):
        export(engine, RSO, tmp_path / "y", sections=("compliance-typo",))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("start", "stop", "field"), [
    ("2026-13-01", None, "from"), (None, "yesterday", "to"),
    ("2026-03-14T09:00:00", None, "from"), ("2026-03-20", "2026-03-10", "to"),
])
def test_bad_periods(start: str | None, stop: str | None, field: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        parse_period(start, stop)
    assert [e.field for e in info.value.errors] == [field]


def test_period_bounds() -> None:
    assert parse_period("2026-03-01", "2026-03-31") == (
        datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))
    assert parse_period("2026-03-01T00:00:00-05:00", None) == (
        datetime(2026, 3, 1, 5, tzinfo=UTC), None)


# --- sections that plug in -------------------------------------------------------------------

def test_a_python_section_is_rendered_by_column_kind(
    engine: Engine, logged_all: list[int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    columns = [Column("group", Kind.TEXT, description="physician"),
               Column("change", Kind.NUMBER, "%"), Column("ok", Kind.BOOLEAN),
               Column("since", Kind.DATETIME), Column("n", Kind.INTEGER),
               Column("levels", Kind.LIST)]

    def summary(ctx: SectionContext) -> SectionData:
        assert ctx.include_phi is False and ctx.filters.sites == ()
        return SectionData.from_rows(columns, [
            ("=HYPERLINK(\"x\")", -2.5, True, datetime(2026, 3, 14, 9, tzinfo=UTC), -3,
             ["L4", "L5"]),
            ("Żółć", None, False, None, 0, []),
        ])

    monkeypatch.setitem(registry.SECTIONS, "summary",
                        Section("summary", "summary.csv", "A summary", summary))
    monkeypatch.setitem(registry.SECTIONS, "frame", Section("frame", "frame.csv", "A frame",
                                                           frame_section))
    result = export(engine, QUALITY, tmp_path / "x", sections=("summary", "frame"))
    raw = (result.path / "summary.csv").read_bytes().decode("utf-8-sig")
    assert raw == ('group,change,ok,since,n,levels\r\n'
                   '"\'=HYPERLINK(""x"")",-2.5,true,2026-03-14T09:00:00Z,-3,L4;L5\r\n'
                   'Żółć,,false,,0,\r\n')
    framed = (result.path / "frame.csv").read_bytes().decode("utf-8-sig")
    assert framed == ("physician,rate,eligible,month\r\n"
                      "'-Dr. Dash,0.875,8,2026-03-01T00:00:00Z\r\n"
                      "Ελένη,,0,\r\n")
    dictionary = read_csv(result.path / "data_dictionary.csv")
    assert [(d["file"], d["field"], d["type"]) for d in dictionary][:2] == [
        ("summary.csv", "group", "text"), ("summary.csv", "change", "number")]
    assert verify_export(result.path).ok


def frame_section(ctx: SectionContext) -> SectionData:
    """A summary built as a pandas DataFrame (numpy scalars, NaN, NaT), columns reordered."""
    import pandas as pd

    frame = pd.DataFrame({
        "month": pd.to_datetime(["2026-03-01", None], utc=True),
        "physician": ["-Dr. Dash", "Ελένη"],
        "eligible": [8, 0],
        "rate": [7 / 8, float("nan")],
    })
    columns = [Column("physician", Kind.TEXT), Column("rate", Kind.NUMBER),
               Column("eligible", Kind.INTEGER), Column("month", Kind.DATETIME)]
    return SectionData.from_frame(columns, frame)


# --- streaming -------------------------------------------------------------------------------

@pytest.mark.slow  # 6000 demo procedures, exported twice under tracemalloc
def test_rows_stream_in_chunks_with_progress_and_bounded_memory(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import date

    from audit.demo import generate

    generate(engine, procedures=6000, seed=3, until=date(2026, 1, 1), months=12)
    monkeypatch.setattr(export_types, "CHUNK_ROWS", 500)
    quarter = Filters(*parse_period("2025-10-01", "2025-12-31"))
    cursors: list[str] = []

    def spy(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().startswith("SELECT procedure.id AS record_id"):
            cursors.append(type(cursor).__name__)

    event.listen(engine, "after_cursor_execute", spy)
    export(engine, RSO, tmp_path / "warm", filters=quarter)  # compile caches, imports
    event.remove(engine, "after_cursor_execute", spy)
    if engine.dialect.name == "postgresql":  # rows stay on the server until fetched
        assert cursors == ["ServerCursor"]

    def peak(name: str, filters: Filters) -> tuple[int, list[tuple[int, int]]]:
        calls: list[tuple[int, int]] = []
        tracemalloc.start()
        try:
            result = export(engine, RSO, tmp_path / name, filters=filters,
                            progress=lambda done, total: calls.append((done, total)))
            top = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert calls[-1] == (result.rows["procedures.csv"],) * 2
        return top, calls

    small, _ = peak("quarter", quarter)
    large, calls = peak("all", Filters())
    assert calls[0] == (0, 6000) and len(calls) >= 12
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)
    assert large < 2 * small, (small, large)  # 4x the rows, not 4x the memory
    shutil.rmtree(tmp_path)
