"""Export, then `fluoro-audit import csv` into a fresh database: the same records (both
databases, the real CLI in a subprocess). Hostile text survives; voided records stay out; an
export without PHI is refused by name; the formula guard is undone only for our exports.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from audit.auth import Actor
from audit.dictionary import FIELD_NAMES
from audit.keys import load_keys
from audit.log.csv_import import import_csv, recognise_export
from audit.log.pseudonym import ENV_PSEUDONYM_KEY, pseudonym
from audit.log.service import ProcedureLog
from audit.storage.engine import make_engine
from audit.storage.models import Procedure
from tests.conftest import Databases, valid_record
from tests.export.test_exports import records

#: Fields that may differ after a round trip (new rows in another database).
NOT_COMPARED = {"record_id", "version", "created_at", "created_by", "updated_at", "updated_by",
                "patient_ref"}
HOSTILE = ("=cmd|' /C calc'!A0", "+1", "-2+3", "@SUM(A1)")


def cli(url: str, *args: str, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "audit.cli", "--db", url, *args],
                          capture_output=True, text=True, check=False, timeout=180,
                          env={**os.environ, **(env or {})})


def hostile_records() -> list[dict[str, Any]]:
    """tests/export/test_exports.py's varied records (formula-like site, room, physician, accession,
    detail and DAP reason; quotes, CRLF and tabs in notes; Polish, Japanese and Greek text)
    plus formula-like contrast agents and notes, and text that starts with an apostrophe."""
    return [*records(), *[
        valid_record(performed_at=f"2026-03-{19 + i:02d}T08:00:00Z", patient_id=f"MRN01{i}",
                     contrast_agent=text, notes=f"{text} Ελένη 山田太郎 Łukasz Żółć",
                     physician="'t Hooft" if i == 0 else "Łukasz Żółć")
        for i, text in enumerate(HOSTILE)],
        valid_record(performed_at="2026-03-24T08:00:00Z", patient_id="MRN0200",
                     notes="'quoted' from the start\tand a tab", contrast_agent="'iohexol'"),
    ]


@pytest.fixture
def fresh(databases: Databases, backend: str) -> Iterator[str]:
    """A second, empty database of the same backend."""
    yield databases.sqlite() if backend == "sqlite" else databases.postgresql()


def secret(engine: Engine) -> str:
    return load_keys(engine).pseudonym_key


def count(engine: Engine) -> int:
    with Session(engine) as s:
        return int(s.scalar(select(func.count()).select_from(Procedure)) or 0)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def test_export_then_import_csv_gives_the_same_records(
    db_url: str, service: ProcedureLog, admin: Actor, fresh: str, tmp_path: Path
) -> None:
    ids = [r.record_id for r in service.log_many(hostile_records(), admin,
                                                 confirm_warnings=True, create_missing=True)]
    voided = ids[1]
    service.void(voided, admin, version=1, reason="=entered twice")
    kept = [i for i in ids if i != voided]

    plain = tmp_path / "plain"
    assert cli(db_url, "export", "log", "--out", str(plain), "--include-phi").returncode == 0
    assert [int(r["record_id"]) for r in read_csv(plain / "procedures.csv")] == kept
    out = tmp_path / "with-voided"
    done = cli(db_url, "export", "log", "--out", str(out), "--include-phi", "--include-voided")
    assert done.returncode == 0, done.stderr
    rows = read_csv(out / "procedures.csv")
    assert [(int(r["record_id"]), r["status"]) for r in rows if r["status"] == "void"] == [
        (voided, "void")]
    raw = (out / "procedures.csv").read_text("utf-8-sig")
    for text in HOSTILE:  # neutralised in the file ...
        assert f",'{text}," in raw

    imported = cli(fresh, "import", "csv", str(out / "procedures.csv"), "--create-missing",
                   "--confirm-warnings")
    assert imported.returncode == 0, imported.stderr
    assert "is a fluoro-audit export (its header is the fluoro-audit export header)" in \
        imported.stderr
    row_of_void = 2 + [int(r["record_id"]) for r in rows].index(voided)
    assert f"row {row_of_void}: void in the source: not imported as a live record" in \
        imported.stderr
    assert f"imported {len(kept)} of {len(rows)} rows" in imported.stderr
    assert "1 void rows skipped" in imported.stderr

    copy = ProcedureLog(make_engine(fresh))
    try:
        assert count(copy.engine) == len(kept)
        same_key = secret(copy.engine) == secret(service.engine)
        in_file_order = [int(r["record_id"]) for r in rows if r["status"] != "void"]
        for old_id, new_id in zip(in_file_order, _ids(copy.engine), strict=True):
            before, after = service.get(old_id, admin), copy.get(new_id, admin)
            for name in FIELD_NAMES:  # ... and restored on import
                if name not in NOT_COMPARED:
                    assert after[name] == before[name], (name, before[name], after[name])
            assert (after["patient_ref"] == before["patient_ref"]) is same_key
            assert after["patient_ref"] == pseudonym(secret(copy.engine), after["patient_id"])
        physicians = {copy.get(i, admin)["physician"] for i in _ids(copy.engine)}
        assert {"'t Hooft", "Łukasz Żółć", "Ελένη Παπαδοπούλου"} <= physicians
        agents = {copy.get(i, admin)["contrast_agent"] for i in _ids(copy.engine)}
        assert {*HOSTILE, "'iohexol'"} <= agents
    finally:
        copy.engine.dispose()


def _ids(engine: Engine) -> list[int]:
    with Session(engine) as s:
        return list(s.scalars(select(Procedure.id).order_by(Procedure.id)))


def test_patient_ref_differs_only_with_another_key(
    db_url: str, service: ProcedureLog, admin: Actor, fresh: str, tmp_path: Path
) -> None:
    service.log_many(hostile_records()[:3], admin, confirm_warnings=True, create_missing=True)
    out = tmp_path / "x"
    assert cli(db_url, "export", "log", "--out", str(out), "--include-phi").returncode == 0
    other_key = {ENV_PSEUDONYM_KEY: "another site's key"}
    done = cli(fresh, "import", "csv", str(out / "procedures.csv"), "--create-missing",
               "--confirm-warnings", env=other_key)
    assert done.returncode == 0, done.stderr
    again = tmp_path / "again"
    assert cli(fresh, "export", "log", "--out", str(again), "--include-phi",
               env=other_key).returncode == 0
    before, after = read_csv(out / "procedures.csv"), read_csv(again / "procedures.csv")
    assert [r["patient_id"] for r in after] == [r["patient_id"] for r in before]
    assert [r["patient_ref"] for r in after] == [
        pseudonym("another site's key", r["patient_id"]) for r in before]
    assert all(a["patient_ref"] != b["patient_ref"] for a, b in zip(after, before, strict=True))


def test_an_export_without_phi_is_refused_naming_patient_id(
    db_url: str, service: ProcedureLog, admin: Actor, fresh: str, tmp_path: Path
) -> None:
    service.log_many(hostile_records()[:2], admin, confirm_warnings=True, create_missing=True)
    out = tmp_path / "x"
    assert cli(db_url, "export", "log", "--out", str(out)).returncode == 0
    done = cli(fresh, "import", "csv", str(out / "procedures.csv"), "--create-missing")
    assert done.returncode == 1
    assert done.stderr.startswith("error: header: no patient_id column, only patient_ref")
    assert "--include-phi" in done.stderr and "Nothing was written" in done.stderr
    legacy = tmp_path / "legacy.csv"
    legacy.write_text("Date,Procedure,Physician\n2026-03-14T09:00:00Z,TFESI,Dr. Chen\n", "utf-8")
    done = cli(fresh, "import", "csv", str(legacy), "--dry-run")
    assert done.returncode == 1 and "error: header: no patient_id column (" in done.stderr
    engine = make_engine(fresh)
    try:
        assert count(engine) == 0
    finally:
        engine.dispose()


# --- which files get the formula guard undone ------------------------------------------------

def _legacy_copy(source: Path, target: Path, drop: str) -> Path:
    """The export's procedures.csv without one column: no longer the export's exact header."""
    rows = read_csv(source)
    names = [n for n in rows[0] if n != drop]
    with open(target, "w", encoding="utf-8-sig", newline="") as handle:
        out = csv.DictWriter(handle, names, extrasaction="ignore", lineterminator="\r\n")
        out.writeheader()
        out.writerows(rows)
    return target


def test_the_guard_is_undone_only_for_files_recognised_as_exports(
    db_url: str, service: ProcedureLog, admin: Actor, fresh: str, tmp_path: Path
) -> None:
    service.log(valid_record(notes="=1+1 checked", contrast_agent="@iohexol"), admin,
                create_missing=True)
    done = cli(db_url, "export", "log", "--out", str(tmp_path / "x"), "--include-phi")
    assert done.returncode == 0, done.stderr
    exported = tmp_path / "x" / "procedures.csv"
    assert recognise_export(next(csv.reader(exported.open(encoding="utf-8-sig"))))

    alone = tmp_path / "alone"  # copied out of its folder: the header still says what it is
    alone.mkdir()
    shutil.copy(exported, alone / "log.csv")
    legacy = _legacy_copy(exported, tmp_path / "legacy.csv", drop="region")
    beside = _legacy_copy(exported, tmp_path / "x" / "edited.csv", drop="region")
    manifest = json.loads((tmp_path / "x" / "manifest.json").read_text("utf-8"))
    manifest["files"].append({"name": "edited.csv"})  # as an older version's export lists it
    (tmp_path / "x" / "manifest.json").write_text(json.dumps(manifest), "utf-8")

    copy = ProcedureLog(make_engine(fresh))
    try:
        results = {}
        for path in (alone / "log.csv", legacy, beside):  # the 2nd and 3rd: possible duplicates
            result = import_csv(copy, admin, path, create_missing=True, confirm_warnings=True)
            assert result.committed, [r.problems() for r in result.rows]
            record = copy.get(result.rows[0].record_id, admin)  # type: ignore[arg-type]
            results[path.name] = (result.export_recognised, record["notes"],
                                  record["contrast_agent"])
    finally:
        copy.engine.dispose()
    assert results["log.csv"] == ("its header is the fluoro-audit export header",
                                  "=1+1 checked", "@iohexol")
    assert results["edited.csv"] == (
        "manifest.json beside it lists it as a fluoro-audit export file", "=1+1 checked",
        "@iohexol")
    # A legacy file: its cells are the user's text, a leading apostrophe included.
    assert results["legacy.csv"] == (None, "'=1+1 checked", "'@iohexol")
