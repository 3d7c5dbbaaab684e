"""The patient letter: plain words only (no field names, None or scientific notation), the
dose and its background equivalent with the NCRP 184 caution, contrast, images, the practice;
rendered, audited with its SHA-256, refused to roles without the patient history."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from audit.auth import Actor, add_user, cli_actor
from audit.cli import main
from audit.documents import patient_dose_history, write_letter
from audit.errors import PermissionDenied
from audit.settings import update_setting
from audit.storage.models import AuditEvent
from audit.vocab import Role
from tests.documents.conftest import (
    SCIENTIFIC,
    SNAKE,
    assert_not_blank,
    first_page_png,
    keep_screenshot,
    pdf_text,
)

RSO = Actor("rso1", Role.RSO)


@pytest.fixture
def practice(engine: Engine) -> None:
    for key, value in (("practice_name", "Riverside Spine & Pain"),
                       ("practice_contact", "12 River Road, Springfield; 555-0100"),
                       ("images_held_at", "Your images are kept in the Riverside imaging "
                                          "archive; ask the front desk for a copy on disc.")):
        update_setting(engine, cli_actor(), key, value)


def test_the_letter_is_in_plain_words(engine: Engine, patient: str, practice: None,
                                      tmp_path: Path) -> None:
    out = tmp_path / "letter.pdf"
    write_letter(engine, RSO, patient, out)
    text = pdf_text(out)
    flat = " ".join(text.split())
    assert SNAKE.findall(text) == []
    assert "None" not in text and "nan" not in text.split() and "NaT" not in text
    assert SCIENTIFIC.findall(text) == []
    for code in ("TFESI", "ILESI", "contraindicated", "dap_gycm2", "Gy·cm²"):
        assert code not in flat
    assert "Riverside Spine & Pain" in flat and "555-0100" in flat
    assert "ask the front desk for a copy on disc" in flat
    assert "not a measure of your personal risk (NCRP Report 184)" in flat
    assert "Contrast dye used: iohexol 240, 1.5 millilitres." in flat
    assert "Contrast dye was not used because of an allergy to contrast dye." in flat
    assert "in your neck, at the C6 level, on the right side" in flat
    history = patient_dose_history(engine, RSO, patient)
    for row in history.procedures.itertuples():
        assert f"{row.effective_dose_msv:.2f} millisieverts" in flat
        assert f"about {round(row.background_days):,} days" in flat
    png = first_page_png(out, tmp_path / "letter.png")
    assert_not_blank(png)
    keep_screenshot(png, "letter")


def test_the_letter_without_practice_settings_still_reads(engine: Engine, patient: str,
                                                           tmp_path: Path) -> None:
    out = tmp_path / "letter.pdf"
    write_letter(engine, RSO, patient, out, first=None, last=None)
    flat = " ".join(pdf_text(out).split())
    assert "Your images are kept in your medical record" in flat
    assert SNAKE.findall(flat) == [] and "None" not in flat


def test_the_letter_is_audited_with_its_sha256(engine: Engine, patient: str,
                                               tmp_path: Path) -> None:
    out = tmp_path / "letter.pdf"
    result = write_letter(engine, RSO, patient, out)
    with Session(engine) as session:
        event = session.get(AuditEvent, result["audit_event_id"])
    assert event is not None and event.entity == "patient_letter" and event.actor == "rso1"
    assert event.after["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert event.entity_id == result["patient_ref"] != patient


def test_a_quality_officer_gets_no_letter(engine: Engine, patient: str,
                                          tmp_path: Path) -> None:
    with pytest.raises(PermissionDenied):
        write_letter(engine, Actor("quality", Role.QUALITY_OFFICER), patient,
                     tmp_path / "letter.pdf")
    assert not (tmp_path / "letter.pdf").exists()
    with Session(engine) as session:
        assert session.scalar(select(AuditEvent.id).where(
            AuditEvent.entity == "patient_letter")) is None


def test_cli_writes_the_letter_for_a_period(db_url: str, engine: Engine, patient: str,
                                            tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "letter.pdf"
    assert main(["--db", db_url, "patient", "letter", patient, "--from", "2026-04-01",
                 "--to", "2026-04-30", "--out", str(out)]) == 0
    assert '"procedures": 1' in capsys.readouterr().out
    flat = " ".join(pdf_text(out).split())
    assert "2 April 2026" in flat and "14 March 2026" not in flat
    add_user(engine, cli_actor(), "tech9", Role.TECHNOLOGIST, "correct horse battery")
    refused = tmp_path / "refused.pdf"
    assert main(["--db", db_url, "patient", "letter", patient, "--out", str(refused),
                 "--as", "tech9"]) == 1
    assert not refused.exists()


def test_cli_sets_the_practice_settings_the_letter_prints(db_url: str, engine: Engine,
                                                          patient: str, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str],
                                                          ) -> None:
    assert main(["--db", db_url, "settings", "set", "practice_name", "12345"]) == 0
    assert main(["--db", db_url, "settings", "set", "practice_contact",
                 "Call 555-0100"]) == 0
    listed = capsys.readouterr().out
    assert '"value": "12345"' in listed
    out = tmp_path / "letter.pdf"
    write_letter(engine, RSO, patient, out)
    flat = " ".join(pdf_text(out).split())
    assert flat.startswith("12345") and "Call 555-0100" in flat
    with Session(engine) as session:
        changes = session.scalars(select(AuditEvent).where(AuditEvent.entity == "setting")
                                  .order_by(AuditEvent.id)).all()
    assert [c.entity_id for c in changes] == ["practice_name", "practice_contact"]


def test_an_ultrasound_guided_procedure_is_worded_without_x_rays(
        engine: Engine, patient: str, tmp_path: Path) -> None:
    from audit.log.service import ProcedureLog
    from tests.log.test_case_mix import ultrasound_sij

    ProcedureLog(engine).log(ultrasound_sij(performed_at="2026-06-01T10:00:00Z",
                                            patient_id=patient), cli_actor())
    out = tmp_path / "letter.pdf"
    write_letter(engine, RSO, patient, out)
    flat = " ".join(pdf_text(out).split())
    assert ("No X-rays were used: the needle was guided by ultrasound, so this procedure gave "
            "you no radiation dose.") in flat
    assert "X-ray time: 0 seconds" not in flat
    assert "No contrast dye was needed for this procedure." in flat
