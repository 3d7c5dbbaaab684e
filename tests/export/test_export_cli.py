"""`fluoro-audit export` and `verify-export` as a script runs them (subprocess, both databases)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from audit.auth import Actor
from audit.dictionary import FIELD_NAMES
from audit.log.service import ProcedureLog
from tests.conftest import valid_record


def cli(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "audit.cli", "--db", db_url, *args],
                          capture_output=True, text=True, check=False, timeout=120)


@pytest.fixture
def two_records(service: ProcedureLog, admin: Actor) -> None:
    service.log_many([valid_record(),
                      valid_record(performed_at="2026-04-02T10:00:00Z", patient_id="MRN0002",
                                   site="Northgate", room="Suite A")],
                     admin, create_missing=True)


def test_export_log_then_verify(db_url: str, two_records: None, tmp_path: Path) -> None:
    out = tmp_path / "q1"
    done = cli(db_url, "export", "log", "--out", str(out), "--from", "2026-03-01", "--to",
               "2026-03-31", "--site", "Riverside", "--include-phi", "--zip")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["include_phi"] is True and summary["zip"] == str(out) + ".zip"
    assert {f["name"]: f.get("rows") for f in summary["files"]} == {
        "procedures.csv": 1, "data_dictionary.csv": len(FIELD_NAMES), "README.txt": None,
        "signing_public_key.txt": None}
    assert "MRN0001" in (out / "procedures.csv").read_text("utf-8-sig")

    checked = cli(db_url, "verify-export", str(out))
    assert checked.returncode == 0 and checked.stdout.startswith("export intact: 6 files")
    assert cli(db_url, "verify-export", str(out) + ".zip").returncode == 0

    path = out / "procedures.csv"
    path.write_bytes(path.read_bytes().replace(b"Riverside", b"Riversidf"))
    failed = cli(db_url, "verify-export", str(out))
    assert failed.returncode == 1
    assert "procedures.csv: SHA-256 differs from SHA256SUMS" in failed.stderr


def test_audit_trail_without_phi(db_url: str, two_records: None, tmp_path: Path) -> None:
    out = tmp_path / "trail"
    done = cli(db_url, "export", "log", "--out", str(out), "--with", "audit_trail")
    assert done.returncode == 0, done.stderr
    assert [f["name"] for f in json.loads(done.stdout)["files"]] == [
        "procedures.csv", "audit_trail.csv", "data_dictionary.csv", "README.txt",
        "signing_public_key.txt"]
    text = (out / "audit_trail.csv").read_text("utf-8-sig")
    assert "patient_ref" in text and "MRN0001" not in text and "MRN0002" not in text
    only = cli(db_url, "export", "audit-trail", "--out", str(tmp_path / "only"))
    assert only.returncode == 0 and (tmp_path / "only" / "audit_trail.csv").exists()


def test_refusals_name_what_is_wrong(db_url: str, two_records: None, tmp_path: Path) -> None:
    unknown = cli(db_url, "export", "log", "--out", str(tmp_path / "a"), "--site", "Nowhere")
    assert unknown.returncode == 1
    assert "error: site: no site named 'Nowhere'; known: 'Northgate', 'Riverside'" in \
        unknown.stderr
    bad_date = cli(db_url, "export", "log", "--out", str(tmp_path / "b"), "--from", "14/03/2026")
    assert bad_date.returncode == 1 and "error: from: '14/03/2026' is not a date" in \
        bad_date.stderr
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "x").write_text("keep")
    exists = cli(db_url, "export", "log", "--out", str(tmp_path / "c"))
    assert exists.returncode == 1 and "exists and is not an empty folder" in exists.stderr
    assert cli(db_url, "export", "log").returncode == 2  # --out is required
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]
