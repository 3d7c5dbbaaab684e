"""Acknowledging several alerts at once: only the ids given, all or none, one audit event per
alert, the RSO only; unknown, acknowledged and withdrawn ids refused by name. And what the open
alerts add up to: rates per 100 procedures, per patient, per physician. On both databases."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import Engine, select

from audit.alerts.store import (
    acknowledge,
    acknowledge_many,
    acknowledgements,
    list_alerts,
    refresh_alerts,
)
from audit.alerts.summary import alert_rates, open_by_patient, open_by_physician
from audit.analytics.snapshot import FrameCache, load_snapshot
from audit.auth import Actor, cli_actor
from audit.errors import PermissionDenied, ValidationFailed
from audit.filters import Filters
from audit.log.service import ProcedureLog
from audit.storage.engine import read_session
from audit.storage.models import AuditEvent, Procedure
from audit.vocab import Role
from tests.alerts.test_alerts import QUALITY, RSO, log_all, tfesi
from tests.conftest import race

#: Five patients each with one SRDL KAP alert (600 >= 500 Gy·cm²), which is also a cumulative
#: KAP alert (600 >= 200 in 84 days): ten alerts. Two more ordinary records give procedures
#: without alerts. Dr. Park has two of the five; Dr. Chen three plus the two ordinary ones.
FIVE = [tfesi(f"S{k}", f"PAT-{k}", f"03-0{k}", 600.0,
              **({"physician": "Dr. Park"} if k <= 2 else {})) for k in range(1, 6)]
QUIET = [tfesi("Q1", "PAT-Q1", "03-10", 0.7), tfesi("Q2", "PAT-Q2", "03-11", 0.8)]


@pytest.fixture
def srdl_ids(engine: Engine) -> list[int]:
    """The five SRDL KAP alert ids, in patient order."""
    log_all(engine, FIVE + QUIET, refresh_each=False)
    alerts = list_alerts(engine, RSO, kind="srdl")
    kap = alerts[alerts["quantity"] == "dap_gycm2"].sort_values("patient")
    assert kap["patient"].tolist() == [f"PAT-{k}" for k in range(1, 6)]
    return [int(i) for i in kap["alert_id"]]


def statuses(engine: Engine) -> dict[int, str]:
    alerts = list_alerts(engine, RSO)
    return dict(zip(alerts["alert_id"].astype(int), alerts["status"], strict=True))


def acknowledge_events(engine: Engine) -> list[AuditEvent]:
    with read_session(engine) as session:
        return list(session.scalars(select(AuditEvent).where(
            AuditEvent.action == "acknowledge").order_by(AuditEvent.id)))


def test_exactly_the_ticked_alerts_are_acknowledged_each_audited(
        engine: Engine, srdl_ids: list[int]) -> None:
    before = statuses(engine)
    ticked = [srdl_ids[3], srdl_ids[1]]
    done = acknowledge_many(engine, RSO, ticked, "  patients informed by phone; skin checks "
                            "booked ", patient_informed=True, skin_check_date=date(2026, 4, 1))
    assert done == 2
    after = statuses(engine)
    assert {i for i, s in after.items() if s == "acknowledged"} == set(ticked)
    assert {i: s for i, s in after.items() if i not in ticked} == \
        {i: s for i, s in before.items() if i not in ticked}  # nothing else moved
    events = acknowledge_events(engine)
    assert sorted(int(e.entity_id) for e in events) == sorted(ticked)  # one per alert
    for event in events:
        assert (event.actor, event.entity) == ("rso1", "alert")
        assert event.reason == "patients informed by phone; skin checks booked"
        assert event.before == {"status": "open"}
        assert event.after["status"] == "acknowledged"
        assert event.after["skin_check_date"] == "2026-04-01"
        assert event.after["acknowledged_together"] == 2
    notes = acknowledgements(engine, RSO, ticked[0])
    assert notes[["acknowledged_by", "note", "patient_informed"]].values.tolist() == \
        [["rso1", "patients informed by phone; skin checks booked", True]]


def test_unknown_ids_refuse_the_whole_batch_and_are_named(engine: Engine,
                                                          srdl_ids: list[int]) -> None:
    before = statuses(engine)
    missing = max(before) + 1000
    with pytest.raises(ValidationFailed) as info:
        acknowledge_many(engine, RSO, [srdl_ids[0], missing, srdl_ids[1]], "informed")
    error = info.value.errors[0]
    assert error.field == "alert_ids"
    assert f"no such alert: #{missing}" in error.message
    assert "nothing was acknowledged" in error.message
    assert statuses(engine) == before  # all or nothing
    assert acknowledge_events(engine) == []


def test_already_acknowledged_ids_are_refused_by_name(engine: Engine,
                                                      srdl_ids: list[int]) -> None:
    acknowledge(engine, RSO, [srdl_ids[2]], "informed")
    before = statuses(engine)
    with pytest.raises(ValidationFailed) as info:
        acknowledge_many(engine, RSO, [srdl_ids[0], srdl_ids[2]], "informed again")
    assert f"already acknowledged: #{srdl_ids[2]}" in info.value.errors[0].message
    assert f"#{srdl_ids[0]}" not in info.value.errors[0].message
    assert statuses(engine) == before
    assert len(acknowledge_events(engine)) == 1  # the first acknowledgement only


def test_withdrawn_ids_are_refused_by_name(engine: Engine, srdl_ids: list[int]) -> None:
    with read_session(engine) as session:
        record = session.scalar(select(Procedure.id).where(Procedure.accession_number == "S5"))
    ProcedureLog(engine).void(record, cli_actor(), version=1, reason="wrong patient")
    refresh_alerts(engine, FrameCache(engine).get())
    with pytest.raises(ValidationFailed) as info:
        acknowledge_many(engine, RSO, [srdl_ids[0], srdl_ids[4]], "informed")
    assert f"withdrawn (no longer met): #{srdl_ids[4]}" in info.value.errors[0].message
    assert statuses(engine)[srdl_ids[0]] == "open"


def test_a_note_and_at_least_one_alert_are_required(engine: Engine,
                                                    srdl_ids: list[int]) -> None:
    with pytest.raises(ValidationFailed) as info:
        acknowledge_many(engine, RSO, [], "   ")
    assert [e.field for e in info.value.errors] == ["note", "alert_ids"]
    with pytest.raises(ValidationFailed) as info:
        acknowledge_many(engine, RSO, [True, "3"], "informed")  # type: ignore[list-item]
    assert info.value.errors[0].field == "alert_ids"
    assert set(statuses(engine).values()) == {"open"}


@pytest.mark.parametrize("actor", [QUALITY, Actor("admin1", Role.ADMIN),
                                   Actor("tech1", Role.TECHNOLOGIST)])
def test_only_the_rso_acknowledges_many(engine: Engine, srdl_ids: list[int],
                                        actor: Actor) -> None:
    with pytest.raises(PermissionDenied):
        acknowledge_many(engine, actor, srdl_ids[:2], "done")
    assert set(statuses(engine).values()) == {"open"}


def test_rates_per_100_procedures_and_the_groupings(engine: Engine,
                                                    srdl_ids: list[int]) -> None:
    acknowledge_many(engine, RSO, srdl_ids[:1], "informed")
    snap = load_snapshot(engine)
    rates = alert_rates(engine, RSO, snap).set_index("kind")
    # 7 procedures; 5 SRDL KAP alerts (one acknowledged), 5 cumulative KAP alerts
    assert rates.loc["srdl", ["procedures", "open", "acknowledged", "raised"]].tolist() == \
        [7, 4, 1, 5]
    assert rates.loc["srdl", "open_per_100"] == pytest.approx(400 / 7, abs=0.01)
    assert rates.loc["cumulative", "open_per_100"] == pytest.approx(500 / 7, abs=0.01)
    assert rates.loc["investigation", "open"] == 0
    assert rates.loc["all", "open"] == 9
    assert rates.loc["all", "raised_per_100"] == pytest.approx(1000 / 7, abs=0.01)
    park = alert_rates(engine, RSO, snap, Filters(physicians=("Dr. Park",))).set_index("kind")
    assert park.loc["all", ["procedures", "open"]].tolist() == [2, 3]

    patients = open_by_patient(engine, RSO)
    assert patients["patient"].tolist()[-1] == "PAT-1"  # the one whose SRDL alert is done
    assert patients.set_index("patient").loc["PAT-2", ["srdl", "cumulative", "open"]].tolist() \
        == [1, 1, 2]
    assert "PAT-Q1" not in set(patients["patient"])
    hidden = open_by_patient(engine, QUALITY)["patient"]
    assert all(p.startswith("P") and not p.startswith("PAT-") for p in hidden)  # pseudonyms

    doctors = open_by_physician(engine, RSO, snap).set_index("physician")
    assert doctors.loc["Dr. Park", ["procedures", "srdl", "cumulative", "open"]].tolist() == \
        [2, 1, 2, 3]
    assert doctors.loc["Dr. Park", "open_per_100"] == 150.0
    assert doctors.loc["Dr. Chen", ["procedures", "open"]].tolist() == [5, 6]
    assert doctors.loc["Dr. Chen", "open_per_100"] == 120.0
    assert doctors.index.tolist() == ["Dr. Park", "Dr. Chen"]  # highest rate first


def test_two_people_acknowledging_overlapping_batches_at_once(engine: Engine,
                                                             srdl_ids: list[int]) -> None:
    """Both transactions open at once: one batch wins whole, the other is refused whole and
    names the alert they shared; no alert has two first acknowledgements."""
    other = Actor("rso2", Role.RSO)
    outcomes = race([
        lambda: acknowledge_many(engine, RSO, srdl_ids[:3], "first"),
        lambda: acknowledge_many(engine, other, srdl_ids[2:], "second"),
    ])
    failed = [o for o in outcomes if o is not None]
    assert len(failed) == 1 and isinstance(failed[0], ValidationFailed), outcomes
    assert f"already acknowledged: #{srdl_ids[2]}" in failed[0].errors[0].message
    won = srdl_ids[:3] if outcomes[0] is None else srdl_ids[2:]
    after = statuses(engine)
    assert {i for i in srdl_ids if after[i] == "acknowledged"} == set(won)
    assert sorted(int(e.entity_id) for e in acknowledge_events(engine)) == sorted(won)
