"""Migration 0019: the rule packs seeded (every one on, with its source and default
parameters), the follow-up table and the ILESI test dose column; the downgrade removes them
again."""

from __future__ import annotations

import json

from sqlalchemy import inspect, text

from audit.rules.packs import PACKS
from audit.storage.engine import downgrade, make_engine, migrate
from tests.conftest import Databases


def test_0019_seeds_the_packs_on_and_downgrades_cleanly(databases: Databases,
                                                        backend: str) -> None:
    url = databases.empty(backend)
    migrate(url, "0018")
    engine = make_engine(url)
    try:
        migrate(url)
        with engine.connect() as conn:
            rows = {r.key: r for r in conn.execute(text(
                "SELECT key, enabled, source, parameters FROM rule_pack"))}
        assert sorted(rows) == sorted(p.key for p in PACKS)
        assert all(r.enabled for r in rows.values())
        assert "L39240" in rows["lcd_esi"].source and "A58745" in rows["lcd_esi"].source
        params = rows["lcd_esi"].parameters
        params = json.loads(params) if isinstance(params, str) else params
        assert params["max_sessions_per_region"] == 4
        tables = set(inspect(engine).get_table_names())
        assert {"rule_pack", "follow_up"} <= tables
        columns = {c["name"] for c in inspect(engine).get_columns("procedure")}
        assert "contrast_test_dose" in columns
        downgrade(url, "0018")
        engine.dispose()
        tables = set(inspect(engine).get_table_names())
        assert not {"rule_pack", "follow_up"} & tables
        columns = {c["name"] for c in inspect(engine).get_columns("procedure")}
        assert "contrast_test_dose" not in columns
    finally:
        engine.dispose()
