"""A patient's dose history (library and `fluoro-audit patient history`): the procedures and
cumulative figures, every read audited as PHI access by pseudonym, rso and admin only."""

from __future__ import annotations

import csv
import io
import json

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from audit.auth import Actor, add_user, cli_actor
from audit.cli import main
from audit.documents import patient_dose_history
from audit.errors import NotFound, PermissionDenied, ValidationFailed
from audit.storage.models import AuditEvent, Patient
from audit.vocab import Role

RSO = Actor("rso1", Role.RSO)


def events(engine: Engine, entity: str) -> list[AuditEvent]:
    with Session(engine) as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.entity == entity)
                                    .order_by(AuditEvent.id)))


def test_history_lists_every_procedure_with_its_dose(engine: Engine, patient: str) -> None:
    history = patient_dose_history(engine, RSO, patient)
    rows = history.procedures
    assert rows["procedure"].tolist() == ["TFESI", "TFESI", "ILESI"]
    assert rows["levels"].tolist() == ["L4, L5", "C6", "L4-L5"]
    assert rows["fluoro_time_s"].tolist() == [32, 41, 20]
    assert rows["dap_gycm2"].tolist() == pytest.approx([0.71, 0.4, 0.5])
    assert rows["air_kerma_mgy"].tolist() == pytest.approx([5.2, 5.2, 5.2])
    assert rows["effective_dose_msv"].notna().all()
    every = history.totals.set_index("period").loc["all time"]
    assert every["procedures"] == 3
    assert every["dap_gycm2"] == pytest.approx(1.61)
    assert every["effective_dose_msv"] == pytest.approx(rows["effective_dose_msv"].sum())
    assert every["background_days"] == pytest.approx(
        round(every["effective_dose_msv"] * 365 / 3.1, 1))


def test_every_view_is_audited_by_pseudonym_never_the_mrn(engine: Engine, patient: str) -> None:
    history = patient_dose_history(engine, RSO, patient)
    patient_dose_history(engine, RSO, patient, access="json")
    found = events(engine, "patient_history")
    assert [e.after["access"] for e in found] == ["view", "json"]
    assert {e.actor for e in found} == {"rso1"}
    assert {e.entity_id for e in found} == {history.pseudonym}
    assert all(patient not in json.dumps(e.after) for e in found)
    assert found[0].id == history.event_id


@pytest.mark.parametrize("role", [Role.TECHNOLOGIST, Role.PHYSICIAN, Role.QUALITY_OFFICER])
def test_only_rso_and_admin_may_read_a_history(engine: Engine, patient: str,
                                               role: Role) -> None:
    with pytest.raises(PermissionDenied):
        patient_dose_history(engine, Actor("someone", role), patient)
    assert events(engine, "patient_history") == []
    patient_dose_history(engine, Actor("boss", Role.ADMIN), patient)


def test_an_unknown_or_empty_mrn_is_refused(engine: Engine, patient: str) -> None:
    with pytest.raises(NotFound):
        patient_dose_history(engine, RSO, "MRN9999")
    with pytest.raises(ValidationFailed, match="mrn"):
        patient_dose_history(engine, RSO, "  ")
    assert events(engine, "patient_history") == []


def test_cli_prints_json_csv_and_a_table(db_url: str, engine: Engine, patient: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--db", db_url, "patient", "history", patient, "--format", "json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["patient_id"] == patient
    assert [p["procedure"] for p in payload["procedures"]] == ["TFESI", "TFESI", "ILESI"]
    assert payload["totals"][1]["procedures"] == 3
    assert main(["--db", db_url, "patient", "history", patient, "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["levels"] for r in rows] == ["L4, L5", "C6", "L4-L5"]
    assert main(["--db", db_url, "patient", "history", patient]) == 0
    table = capsys.readouterr().out
    assert table.startswith(f"patient {patient} (P")
    assert "cumulative:" in table and "last 12 months" in table and "L4, L5" in table
    assert [e.after["access"] for e in events(engine, "patient_history")] == [
        "json", "csv", "table"]


def test_cli_as_a_technologist_is_refused(db_url: str, engine: Engine, patient: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    add_user(engine, cli_actor(), "tech9", Role.TECHNOLOGIST, "correct horse battery")
    assert main(["--db", db_url, "patient", "history", patient, "--as", "tech9"]) == 1
    assert "may not patient history" in capsys.readouterr().err
    with Session(engine) as session:
        assert session.scalar(select(Patient.id).where(Patient.mrn == patient)) is not None
    assert events(engine, "patient_history") == []
