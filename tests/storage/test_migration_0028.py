"""Migration 0028: the daily summary's month rows. Upgraded from 0027 it sums them from the day
rows it finds; where the summary was never built it builds it, days and months, at the version
it reads; the downgrade removes the month rows and the column and gives the old primary key
back, the day rows untouched; on both databases."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Engine, inspect, text

from audit.analytics.daily_summary import refresh_summary
from audit.demo import generate
from audit.storage.engine import downgrade, make_engine, migrate
from tests.conftest import Databases

KEYS = "site_id, room_id, procedure_type_id, physician_id"


def rows(engine: Engine, where: str = "") -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(
            f"SELECT day, {KEYS}, procedures, eligible, compliant, excepted, kap_n "
            f"FROM daily_summary {where} ORDER BY day, {KEYS}"))]


def primary_key(engine: Engine) -> list[str]:
    return list(inspect(engine).get_pk_constraint("daily_summary")["constrained_columns"])


def test_0028_adds_the_month_rows_and_downgrades_cleanly(databases: Databases,
                                                         backend: str) -> None:
    url = databases.empty(backend)
    migrate(url)
    engine = make_engine(url)
    try:
        generate(engine, procedures=400, seed=3, until=date(2026, 5, 31))
        version = refresh_summary(engine)
        days, months = rows(engine, "WHERE NOT whole_month"), rows(engine, "WHERE whole_month")
        assert len(days) > len(months) > 0

        downgrade(url, "0027")
        engine.dispose()
        assert "whole_month" not in {c["name"] for c in inspect(engine).get_columns(
            "daily_summary")}
        assert primary_key(engine) == ["day", *KEYS.split(", ")]
        assert rows(engine) == days  # the day rows untouched

        migrate(url)  # the summary was built: its month rows from its day rows
        engine.dispose()
        assert primary_key(engine) == ["whole_month", "day", *KEYS.split(", ")]
        assert rows(engine, "WHERE NOT whole_month") == days
        assert rows(engine, "WHERE whole_month") == months
        assert refresh_summary(engine) == version  # the same version: nothing to redo

        downgrade(url, "0027")  # as if never built (migration 0018 no longer fills it)
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM daily_summary"))
            conn.execute(text("DELETE FROM daily_summary_state"))
        migrate(url)
        engine.dispose()
        assert rows(engine, "WHERE NOT whole_month") == days
        assert rows(engine, "WHERE whole_month") == months
        assert refresh_summary(engine) == version
    finally:
        engine.dispose()
