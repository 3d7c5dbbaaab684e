"""The surveyor's packet: named patients' histories as CSV and PDF in the signed export format,
checked by verify-export, audited by pseudonym, PHI and the rso's only."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from audit.auth import Actor
from audit.cli import main
from audit.documents import export_surveyor_packet
from audit.errors import NotFound, PermissionDenied
from audit.export.verify import verify_export
from audit.storage.models import AuditEvent
from audit.vocab import Role
from tests.documents.conftest import assert_not_blank, first_page_png, keep_screenshot, pdf_text

RSO = Actor("rso1", Role.RSO)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_packet_verifies_and_holds_each_patient(engine: Engine, patient: str,
                                                    tmp_path: Path) -> None:
    out = tmp_path / "packet"
    result = export_surveyor_packet(engine, RSO, [patient, "MRN0002"], out)
    names = {f.name for f in result.files}
    assert {"patient_histories.csv", "patient_totals.csv", "patient_alerts.csv",
            "patient_histories.pdf"} <= names
    report = verify_export(out, engine=engine)
    assert report.ok, report.message()
    assert "patient_histories.pdf" in report.checked
    rows = read_csv(out / "patient_histories.csv")
    assert [r["patient_id"] for r in rows] == [patient] * 3 + ["MRN0002"]
    assert rows[1]["levels"] == "C6" and rows[1]["contrast_exception_reason"] == "allergy"
    totals = read_csv(out / "patient_totals.csv")
    assert [(t["patient_id"], t["period"], t["procedures"]) for t in totals][1] == (
        patient, "all time", "3")
    text = " ".join(pdf_text(out / "patient_histories.pdf").split())
    assert f"Patient {patient}" in text and "Patient MRN0002" in text
    png = first_page_png(out / "patient_histories.pdf", tmp_path / "s.png")
    assert_not_blank(png)
    keep_screenshot(png, "surveyor")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["include_phi"] is True


def test_the_packet_is_audited_by_pseudonym(engine: Engine, patient: str,
                                            tmp_path: Path) -> None:
    result = export_surveyor_packet(engine, RSO, [patient], tmp_path / "packet")
    with Session(engine) as session:
        done = session.get(AuditEvent, result.audit_event_id)
        started = session.get(AuditEvent, result.started_event_id)
    assert done is not None and started is not None
    assert done.after["document"] == "surveyor_packet" and done.actor == "rso1"
    assert done.after["patients"][0].startswith("P") and patient not in json.dumps(
        done.after["patients"])
    pdf = next(f for f in done.after["files"] if f["name"] == "patient_histories.pdf")
    assert len(pdf["sha256"]) == 64


@pytest.mark.parametrize("role", [Role.ADMIN, Role.QUALITY_OFFICER, Role.TECHNOLOGIST])
def test_only_the_rso_makes_a_packet(engine: Engine, patient: str, tmp_path: Path,
                                     role: Role) -> None:
    with pytest.raises(PermissionDenied):
        export_surveyor_packet(engine, Actor("x", role), [patient], tmp_path / "packet")
    assert not (tmp_path / "packet").exists()


def test_an_unknown_mrn_writes_nothing(engine: Engine, patient: str, tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        export_surveyor_packet(engine, RSO, [patient, "NOBODY"], tmp_path / "packet")
    assert not (tmp_path / "packet").exists()
    with Session(engine) as session:
        assert session.scalar(select(AuditEvent.id).where(AuditEvent.entity == "export")) is None


def test_cli_export_surveyor_then_verify_export(db_url: str, patient: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "packet"
    assert main(["--db", db_url, "export", "surveyor", "--mrn", patient, "MRN0002",
                 "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["include_phi"] is True
    assert main(["--db", db_url, "verify-export", str(out)]) == 0
    assert "export intact" in capsys.readouterr().out
