"""A dashboard page after a write, with figures from SQL on PostgreSQL (audit.analytics.sql.
stale): it shows at once the figures of the version before, with a notice saying as of when
and how many changes since, while the newest are computed in the background; after that, a
rerun (its Refresh button) shows the current figures and no notice. PostgreSQL only: asked for
directly, so the test never skips where the suite's PostgreSQL is configured."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
import streamlit as st
from sqlalchemy import Engine, select
from streamlit.testing.v1 import AppTest

from audit.analytics.sql.source import SqlSource
from audit.analytics.sql.warm import background_held, wait_for_warmer
from audit.auth import Actor, cli_actor
from audit.demo import generate
from audit.filters import Filters
from audit.log.service import ProcedureLog
from audit.storage.engine import make_engine
from audit.storage.models import Procedure
from audit.vocab import Role
from dashboard.analytics import percent
from tests.conftest import Databases

VIEWS = Path(__file__).resolve().parents[2] / "dashboard" / "views"
RSO = Actor("rso1", Role.RSO)
NOTICE = "Figures as of "


@pytest.fixture
def pg_demo(databases: Databases, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    url = databases.postgresql()
    engine = make_engine(url)
    generate(engine, procedures=600, seed=5, until=date(2026, 6, 30))
    monkeypatch.setenv("FLUORO_AUDIT_DB", url)
    monkeypatch.setenv("FLUORO_AUDIT_FIGURES", "sql")
    st.cache_resource.clear()
    yield engine
    wait_for_warmer(300)
    st.cache_resource.clear()
    engine.dispose()


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def expected(engine: Engine) -> dict[str, str]:
    """The Compliance page's metrics, computed exactly (a fresh source of this process)."""
    overall = SqlSource(engine, shared=False).compliance_rates(Filters()).iloc[0]
    return {"Compliance": percent(overall["rate"]), "Eligible": f"{overall['eligible']:,}",
            "Non-compliant": f"{overall['non_compliant']:,}"}


def void_an_eligible_record(engine: Engine) -> None:
    """A write that changes the page's figures: a non-compliant record voided."""
    listed = SqlSource(engine, shared=False).compliance_records(Filters(), limit=1)
    record_id = int(listed["record_id"].iloc[0])
    with engine.connect() as conn:
        version = conn.scalar(select(Procedure.version).where(Procedure.id == record_id))
    ProcedureLog(engine).void(record_id, cli_actor(), version=int(version or 1),
                              reason="entered twice")


def notices(at: AppTest) -> list[str]:
    return [i.value for i in at.info if i.value.startswith(NOTICE)]


def test_after_a_write_the_page_shows_the_older_figures_as_of_then_the_newest(
        pg_demo: Engine) -> None:
    at = AppTest.from_file(str(VIEWS / "compliance.py"), default_timeout=120)
    at.session_state["actor"] = RSO
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    before = metrics(at)
    assert not notices(at) and before == before | expected(pg_demo)
    assert "600 final records" in at.caption[0].value
    wait_for_warmer(120)
    void_an_eligible_record(pg_demo)
    now = expected(pg_demo)
    assert now["Eligible"] != before["Eligible"]
    with background_held():  # the page as it is before the worker has caught up
        at.run()
        assert not at.exception, [e.message for e in at.exception]
        shown = metrics(at)
        assert shown == before  # the older figures, at once
        [notice] = notices(at)
        assert "600 final records" in at.caption[0].value  # the record count before, too
        assert "1 later change not included yet" in notice
        assert "computed in the background" in notice
        assert at.button(key="as_of_refresh")
    wait_for_warmer(300)
    at.button(key="as_of_refresh").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert not notices(at)
    assert metrics(at) == metrics(at) | now
    assert "599 final records" in at.caption[0].value


@pytest.mark.parametrize("name", ["dose", "data_quality", "complications"])
def test_every_as_of_page_runs_on_older_figures(pg_demo: Engine, name: str) -> None:
    """The other pages after a write, the worker held: no error and the notice; after the
    worker and a Refresh, no notice."""
    at = AppTest.from_file(str(VIEWS / f"{name}.py"), default_timeout=120)
    at.session_state["actor"] = RSO
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    wait_for_warmer(120)
    void_an_eligible_record(pg_demo)
    with background_held():
        at.run()
        assert not at.exception, [e.message for e in at.exception]
        assert len(notices(at)) == 1
    wait_for_warmer(300)
    at.button(key="as_of_refresh").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert not notices(at)
