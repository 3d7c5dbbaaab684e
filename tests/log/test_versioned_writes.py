"""Two writers naming the same version of a record at once (issue 10): exactly one wins, the
other is told the record changed, and the record and its audit events agree.

Each round releases both writers together (tests.conftest.race), each on its own connection, so
both transactions are open at once. On PostgreSQL this used to let both amends commit; on
SQLite the writes serialise (BEGIN IMMEDIATE) and the same assertions must hold.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from audit.auth import Actor
from audit.errors import RecordVoided, StaleVersion
from audit.log.service import ProcedureLog
from audit.storage.models import AuditEvent, Procedure
from audit.trail import verify_chain
from tests.conftest import race, valid_record

ROUNDS = 50


def procedure_events(engine: Engine, record_id: int) -> list[AuditEvent]:
    with Session(engine) as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.entity == "procedure",
                                                       AuditEvent.entity_id == str(record_id))
                              .order_by(AuditEvent.id)))


def test_two_amends_of_one_version_exactly_one_wins(engine: Engine, service: ProcedureLog,
                                                    admin: Actor, logged: int) -> None:
    for round_ in range(ROUNDS):
        version = 1 + round_
        values = [10.0 + round_ + 0.25, 10.0 + round_ + 0.5]  # both differ from every earlier

        def amend(kerma: float, version: int = version) -> Any:
            return service.amend(logged, {"air_kerma_mgy": kerma}, admin, version=version,
                                 reason="race", confirm_warnings=True)

        outcomes = race([lambda k=k: amend(k) for k in values])
        winners = [i for i, o in enumerate(outcomes) if o is None]
        assert len(winners) == 1, f"round {round_}: {outcomes}"
        loser = outcomes[1 - winners[0]]
        assert isinstance(loser, StaleVersion), f"round {round_}: {loser!r}"
        assert f"you read version {version}, it is now version {version + 1}" in str(loser)
        record = service.get(logged, admin)
        assert record["version"] == version + 1
        assert record["air_kerma_mgy"] == values[winners[0]]

    amends = [e for e in procedure_events(engine, logged) if e.action == "amend"]
    assert [(e.before["version"], e.after["version"]) for e in amends] == [
        (v, v + 1) for v in range(1, ROUNDS + 1)]
    assert service.get(logged, admin)["air_kerma_mgy"] == amends[-1].after["air_kerma_mgy"]
    with Session(engine) as s:
        assert verify_chain(s).ok


def test_void_against_amend_exactly_one_wins(engine: Engine, service: ProcedureLog,
                                             admin: Actor) -> None:
    won = {"void": 0, "amend": 0}
    for round_ in range(ROUNDS):
        record_id = service.log(valid_record(patient_id=f"V{round_:03d}"), admin,
                                create_missing=True).record_id
        outcomes = race([
            lambda rid=record_id: service.void(rid, admin, version=1, reason="duplicate"),
            lambda rid=record_id: service.amend(rid, {"air_kerma_mgy": 7.5}, admin, version=1,
                                                reason="race", confirm_warnings=True),
        ])
        voided, amended = (o is None for o in outcomes)
        assert voided != amended, f"round {round_}: {outcomes}"
        loser = outcomes[1] if voided else outcomes[0]
        # An amend that loses to a void is told the record is void; a void that loses to an
        # amend is told the version it read is stale. Either way nothing of it was written.
        assert isinstance(loser, RecordVoided if voided else StaleVersion), repr(loser)
        won["void" if voided else "amend"] += 1
        record = service.get(record_id, admin)
        assert record["version"] == 2
        assert record["status"] == ("void" if voided else "final")
        events = procedure_events(engine, record_id)
        assert [e.action for e in events] == ["create", "void" if voided else "amend"]
        assert (events[1].before["version"], events[1].after["version"]) == (1, 2)
    assert sum(won.values()) == ROUNDS
    with Session(engine) as s:
        assert verify_chain(s).ok


def test_the_database_refuses_an_update_naming_a_stale_version(engine: Engine,
                                                               logged: int) -> None:
    """The mapping itself (version_id_col) puts the version read into the UPDATE's WHERE: a
    writer that bypassed the service's row lock still cannot overwrite a newer version."""
    with Session(engine, expire_on_commit=False) as stale:
        procedure = stale.get(Procedure, logged)
        assert procedure is not None and procedure.version == 1
        stale.commit()  # end the read (a SQLite snapshot could not be upgraded to a write)
        with Session(engine) as other, other.begin():
            other.execute(update(Procedure).where(Procedure.id == logged).values(version=2))
        procedure.version = 2
        procedure.void_reason = "lost update"
        with pytest.raises(StaleDataError):
            stale.flush()
        stale.rollback()
    with Session(engine) as s:
        assert s.get(Procedure, logged).void_reason is None
