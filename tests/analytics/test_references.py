"""Reference levels: seeded published values with sources, SRDLs from settings, adopting local
DRLs (admin only, audited, then in force), retiring; the 0004 migration has no drift."""

from __future__ import annotations

from datetime import date

import pytest
from alembic import command
from sqlalchemy import Engine, select

from audit.analytics.reference_levels import (
    add_reference_level,
    adopt_local_drls,
    levels_in_force,
    reference_table,
    retire_reference_level,
    share_above_reference,
)
from audit.analytics.snapshot import FrameCache, load_snapshot
from audit.auth import Actor, cli_actor
from audit.errors import PermissionDenied, ValidationFailed
from audit.filters import Filters
from audit.log.service import ProcedureLog
from audit.settings import update_setting
from audit.storage.engine import alembic_config, downgrade, make_engine, migrate, read_session
from audit.storage.models import AuditEvent, ReferenceLevel
from audit.vocab import Role
from tests.analytics import analytics_data
from tests.conftest import Databases

ALL = Filters()


def test_published_values_are_seeded_with_their_sources(engine: Engine) -> None:
    table = reference_table(load_snapshot(engine), "TFESI")
    kim = table[(table["source"] == "Kim SJ, J Spinal Disord Tech 2014")
                & (table["quantity"] == "dap_gycm2")].iloc[0]
    assert (kim["kind"], kim["statistic"], kim["value"], kim["sample_size"]) == \
        ("published", "median", 0.68, 181)
    srdl = table[table["kind"] == "srdl"].set_index("quantity")
    assert srdl.loc["air_kerma_mgy", "value"] == 5000
    assert srdl.loc["dap_gycm2", "value"] == 500
    assert srdl.loc["fluoro_time_s", "value"] == 3600
    assert "NCRP Report 168" in srdl.loc["dap_gycm2", "source"]
    assert table["source"].str.len().min() > 0  # nothing without a source


def test_adopted_drl_is_in_force_and_audited(engine: Engine) -> None:
    analytics_data.load(ProcedureLog(engine), cli_actor())
    # a site that sets lower thresholds than ICRP 135's (3 rooms of 1 record) gets a TFESI DRL
    update_setting(engine, cli_actor(), "drl_min_rooms", 3)
    update_setting(engine, cli_actor(), "drl_min_room_records", 1)
    cache = FrameCache(engine)
    computed = levels_in_force(cache.get(), ALL).set_index("procedure")
    assert computed.loc["TFESI", "value"] == 4.5 and computed.loc["TFESI", "kind"] == "drl"
    ids = adopt_local_drls(engine, cli_actor(), cache.get(), ALL, date(2026, 4, 1),
                           quantities=("dap_gycm2",))
    assert len(ids) == 4  # TFESI: DRL + achievable; ILESI, MBB: typical values
    level = add_reference_level(engine, cli_actor(), procedure="TFESI", quantity="dap_gycm2",
                                kind="drl", value=2.0, source="regional audit 2026",
                                effective_from=date(2026, 1, 1), statistic="p75")
    in_force = levels_in_force(cache.get(), Filters.days(last=date(2026, 3, 31))).set_index(
        "procedure")
    # by the end of March only the regional DRL (effective January) is in force
    assert in_force.loc["TFESI", "value"] == 2.0
    assert in_force.loc["TFESI", "kind"] == "adopted drl"
    assert "regional audit 2026" in in_force.loc["TFESI", "source"]
    later = levels_in_force(cache.get(), ALL).set_index("procedure")
    assert later.loc["TFESI", "value"] == 4.5  # the local DRL adopted in April is newer
    above = share_above_reference(cache.get(), Filters.days(last=date(2026, 3, 31)))
    assert above.iloc[0]["above"] == 5  # TFESI > 2.0: #3 #4 #5 #10; ILESI > 0.6: #7
    retire_reference_level(engine, cli_actor(), level, "superseded")
    with read_session(engine) as session:
        retired = session.get(ReferenceLevel, level)
        assert (retired.active, retired.retired_reason) == (False, "superseded")
        actions = session.scalars(select(AuditEvent.action)
                                  .where(AuditEvent.entity == "reference_level")).all()
    assert actions.count("create") == 5 and actions.count("deactivate") == 1
    assert levels_in_force(cache.get(), Filters.days(last=date(2026, 3, 31))).set_index(
        "procedure").loc["TFESI", "kind"] == "drl"


def test_reference_levels_need_an_admin_and_a_source(engine: Engine) -> None:
    with pytest.raises(PermissionDenied):
        add_reference_level(engine, Actor("rso1", Role.RSO), procedure="TFESI",
                            quantity="dap_gycm2", kind="drl", value=1.0, source="x",
                            effective_from=date(2026, 1, 1))
    with pytest.raises(ValidationFailed) as info:
        add_reference_level(engine, cli_actor(), procedure="TFESI", quantity="kap",
                            kind="srdl", value=-1, source=" ", effective_from=date(2026, 1, 1))
    fields = {e.field for e in info.value.errors}
    assert fields == {"quantity", "kind", "value", "source"}
    with pytest.raises(ValidationFailed) as info:
        add_reference_level(engine, cli_actor(), procedure="NOPE", quantity="dap_gycm2",
                            kind="drl", value=1.0, source="x", effective_from=date(2026, 1, 1))
    assert info.value.errors[0].field == "procedure" and "TFESI" in info.value.errors[0].message


def test_migrations_0004_and_0010_round_trip_without_drift(databases: Databases,
                                                           backend: str) -> None:
    url = databases.empty(backend)
    migrate(url)
    downgrade(url, "0002")
    migrate(url)
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            config = alembic_config(url)
            config.attributes["connection"] = connection
            command.check(config)  # raises if the models and the migrations disagree
        with read_session(engine) as session:
            seeded = session.scalars(select(ReferenceLevel)).all()
        assert len(seeded) == 25  # 23 by 0004, Bakır 2024's two MBB times by 0010
        assert all(level.source and level.procedure_type_id for level in seeded)
    finally:
        engine.dispose()
