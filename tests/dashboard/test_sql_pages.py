"""On PostgreSQL the Compliance, Dose, Data quality, Complications and Coverage pages and the
Committee report take their figures from SQL and never read the analysis frame (issue 16):
under AppTest with every way of reading the frame made to fail, each page runs without an error,
its filters work, and the figures it shows are the frame's (read afterwards, outside the pages;
the committee report's table by table: tests/documents/test_committee_sql.py). PostgreSQL
only: the database is asked for directly, so the test never skips where the suite's PostgreSQL
is configured."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest
import streamlit as st
from sqlalchemy import Connection, Engine, select, text
from sqlalchemy.orm import Session
from streamlit.testing.v1 import AppTest

from audit.analytics import figures_version, snapshot
from audit.analytics.snapshot import FrameCache
from audit.analytics.source import FrameSource
from audit.analytics.sql.warm import wait_for_warmer
from audit.auth import Actor, cli_actor
from audit.demo import generate
from audit.filters import Filters
from audit.rules import findings_store, rule_report
from audit.settings import update_setting
from audit.storage.engine import make_engine
from audit.storage.models import FigureResult, Setting
from audit.vocab import Role
from dashboard.analytics import percent
from tests.conftest import Databases
from tests.dashboard.conftest import open_tab
from tests.rules.helpers import packs_on

VIEWS = Path(__file__).resolve().parents[2] / "dashboard" / "views"
RSO = Actor("rso1", Role.RSO)
#: The frame's readers as imported, to put back after `no_frame` refused them.
_frame_readers = SimpleNamespace(
    _read_records=snapshot._read_records, read_snapshot=snapshot.read_snapshot,
    load_snapshot=snapshot.load_snapshot, FrameCache=SimpleNamespace(get=FrameCache.get))
PAGES = ("compliance", "dose", "data_quality", "complications")


@pytest.fixture(scope="module")
def pg_demo(databases: Databases) -> Iterator[tuple[str, Engine]]:
    url = databases.postgresql()
    engine = make_engine(url)
    generate(engine, procedures=1500, seed=11, until=date(2026, 6, 30))
    yield url, engine
    engine.dispose()


@pytest.fixture
def no_frame(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every way to the analysis frame fails (and is recorded)."""
    tried: list[str] = []

    def refuse(name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            tried.append(name)
            raise AssertionError(f"the analysis frame was read ({name}) on PostgreSQL")
        return call

    for name in ("_read_records", "read_snapshot", "load_snapshot"):
        monkeypatch.setattr(snapshot, name, refuse(name))
    monkeypatch.setattr(snapshot.FrameCache, "get", refuse("FrameCache.get"))
    st.cache_resource.clear()
    yield tried
    st.cache_resource.clear()


def run(url: str, name: str, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("FLUORO_AUDIT_DB", url)
    monkeypatch.setenv("FLUORO_AUDIT_FIGURES", "sql")
    at = AppTest.from_file(str(VIEWS / f"{name}.py"), default_timeout=120)
    at.session_state["actor"] = RSO
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


@pytest.mark.parametrize("name", PAGES)
def test_pages_never_read_the_frame_on_postgresql(pg_demo: tuple[str, Engine], name: str,
                                                   no_frame: list[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    url, _ = pg_demo
    at = run(url, name, monkeypatch)
    assert at.get("vega_lite_chart") or at.dataframe
    at.sidebar.multiselect(key="f_procedures").select("TFESI").run()  # a filter change
    assert not at.exception, [e.message for e in at.exception]
    for tab in [t.label for t in at.tabs][1:]:  # the Dose page's other tabs, each lazy
        open_tab(at, "d_tab", tab)
        assert not at.exception, (tab, [e.message for e in at.exception])
        assert at.get("vega_lite_chart") or at.dataframe or at.info, tab
    assert no_frame == []


def test_the_compliance_page_shows_the_frames_figures(pg_demo: tuple[str, Engine],
                                                      no_frame: list[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    url, engine = pg_demo
    at = run(url, "compliance", monkeypatch)
    shown = {m.label: m.value for m in at.metric}
    at.sidebar.multiselect(key="f_rooms").select(at.sidebar.multiselect(key="f_rooms")
                                                 .options[0]).run()
    room = at.sidebar.multiselect(key="f_rooms").value
    narrowed = {m.label: m.value for m in at.metric}
    assert no_frame == []
    monkeypatch.undo()  # the frame, read here outside the page, to compare with
    frame = FrameSource(snapshot.load_snapshot(engine), engine)
    for filters, metrics in ((Filters(), shown), (Filters(rooms=tuple(room)), narrowed)):
        overall = frame.compliance_rates(filters).iloc[0]
        assert metrics["Compliance"] == percent(overall["rate"])
        assert metrics["Eligible"] == f"{overall['eligible']:,}"
        assert metrics["Non-compliant"] == f"{overall['non_compliant']:,}"


def test_a_page_shares_its_figures_and_a_write_starts_the_warmer(
        pg_demo: tuple[str, Engine], no_frame: list[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The Dose page's figures go to the table every app process shares, each with the call
    that asked for it; after a write, the next rerun of any page (here Compliance, in a new
    process) starts the warmer in the background, which computes the Dose page's figures on the
    new version before anyone opens it."""
    url, engine = pg_demo
    run(url, "dose", monkeypatch)
    wait_for_warmer(120)
    with Session(engine) as session:
        window = session.get(Setting, "duplicate_window_minutes").value  # type: ignore[union-attr]
    update_setting(engine, cli_actor(), "duplicate_window_minutes", window)  # a write
    with engine.connect() as conn:
        version = figures_version(conn)
        assert not dose_rows(conn, version)
    st.cache_resource.clear()  # a new app process
    run(url, "compliance", monkeypatch)
    wait_for_warmer(300)
    with engine.connect() as conn:
        warmed = dose_rows(conn, version)
    assert warmed and all(asked is None for asked in warmed)  # the warmer's, not a person's
    assert not no_frame


def test_the_coverage_page_reads_no_frame(pg_demo: tuple[str, Engine], no_frame: list[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Its filters, caption and cache key come from the figure source; the rule report reads
    the period's records from the database, as before."""
    url, engine = pg_demo
    packs_on(engine)
    with engine.connect() as other:  # another process is building the stored findings
        other.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": findings_store._LOCK})
        at = run(url, "coverage", monkeypatch)  # answered batch-wise, not waiting for it
        other.rollback()
    assert any("being built" in c.value for c in at.caption), [c.value for c in at.caption]
    shown = {m.label: m.value for m in at.metric}
    assert "final records in the log" in at.caption[0].value
    assert findings_store.wait_for_build(300)
    assert not findings_store.findings_ready(engine)  # this process's thread left it
    findings_store.build_in_background(engine)  # as the next visit does
    assert findings_store.wait_for_build(300) and findings_store.findings_ready(engine)
    st.cache_resource.clear()  # a new app process: the stored findings now
    again = run(url, "coverage", monkeypatch)
    assert not any("being built" in c.value for c in again.caption)
    assert {m.label: m.value for m in again.metric} == shown
    at.sidebar.multiselect(key="f_procedures").select("TFESI").run()
    assert not at.exception, [e.message for e in at.exception]
    narrowed = {m.label: m.value for m in at.metric}
    assert no_frame == []
    for metrics, filters in ((shown, Filters()), (narrowed, Filters(procedures=("TFESI",)))):
        rules = rule_report(engine, RSO, filters)["rules"]
        assert metrics["Rules checked"] == f"{len(rules):,}"
        assert metrics["Exceptions"] == f"{int(rules['exceptions'].sum()):,}"


def test_the_committee_report_page_reads_no_frame(pg_demo: tuple[str, Engine],
                                                  no_frame: list[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    url, _ = pg_demo
    at = run(url, "committee_report", monkeypatch)
    at.date_input[0].set_value(date(2026, 1, 1))
    at.date_input[1].set_value(date(2026, 6, 30))
    at.button[0].click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert any("records, 2026-01-01 to 2026-06-30" in c.value for c in at.caption)
    assert no_frame == []


def dose_rows(conn: Connection, version: int) -> list[Any]:
    """The asked-at times of the rows at `version` that the Dose page's distribution asked
    for."""
    r = FigureResult
    return list(conn.scalars(select(r.asked_at).where(
        r.figures_version == version, r.recipe.like('%"dose_distribution"%'))))


def shown_figures(at: AppTest) -> tuple[dict[str, str], list[pd.DataFrame]]:
    """The Alerts page's metrics and tables (rates, physicians, patients, alerts, levels)."""
    return ({m.label: m.value for m in at.metric},
            [d.value.reset_index(drop=True) for d in at.dataframe])


def test_the_alerts_page_never_reads_the_frame_and_shows_the_frames_counts(
        pg_demo: tuple[str, Engine], no_frame: list[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 16: the alert refresh, the rates per 100 procedures, the physicians' procedures,
    the filters and the investigation levels come from SQL; the same page in frame mode (read
    afterwards) shows the same."""
    url, _ = pg_demo
    at = run(url, "alerts", monkeypatch)
    in_sql = shown_figures(at)
    assert int(in_sql[0]["Open"].replace(",", "")) > 0
    at.sidebar.multiselect(key="f_procedures").select("TFESI").run()
    assert not at.exception, [e.message for e in at.exception]
    narrowed_sql = shown_figures(at)
    assert no_frame == []
    monkeypatch.setenv("FLUORO_AUDIT_FIGURES", "frame")
    for name in ("_read_records", "read_snapshot", "load_snapshot"):  # the frame again
        monkeypatch.setattr(snapshot, name, getattr(_frame_readers, name))
    monkeypatch.setattr(snapshot.FrameCache, "get", _frame_readers.FrameCache.get)
    st.cache_resource.clear()
    at = AppTest.from_file(str(VIEWS / "alerts.py"), default_timeout=120)
    at.session_state["actor"] = RSO
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    in_frame = shown_figures(at)
    at.sidebar.multiselect(key="f_procedures").select("TFESI").run()
    for sql, frame in ((in_sql, in_frame), (narrowed_sql, shown_figures(at))):
        assert sql[0] == frame[0]
        assert len(sql[1]) == len(frame[1])
        for left, right in zip(sql[1], frame[1], strict=True):
            pd.testing.assert_frame_equal(left, right)


def test_the_dose_page_says_when_its_figures_sort_every_record(
        pg_demo: tuple[str, Engine], monkeypatch: pytest.MonkeyPatch) -> None:
    """The dose buckets hold rooms and physicians apart: a room with a physician sorts every
    selected record, and the page says so (one of them alone: no note); the Physicians tab's
    scorecards have buckets per room and physician: no note there. (On the frame, nothing:
    tests/dashboard/test_pages_analytics.py.)"""
    url, _ = pg_demo

    def notes(at: AppTest) -> list[str]:
        return [c.value for c in at.caption if "every selected record" in c.value]

    at = run(url, "dose", monkeypatch)
    assert notes(at) == []
    at.sidebar.multiselect(key="f_physicians").select(
        at.sidebar.multiselect(key="f_physicians").options[0]).run()
    assert notes(at) == []
    at.sidebar.multiselect(key="f_rooms").select(
        at.sidebar.multiselect(key="f_rooms").options[0]).run()
    assert not at.exception
    [note] = notes(at)
    assert note.startswith("A room or site together with a physician")
    open_tab(at, "d_tab", "Physicians")
    assert not at.exception
    assert notes(at) == []
    open_tab(at, "d_tab", "Case mix")
    assert len(notes(at)) == 1
    at.sidebar.multiselect(key="f_physicians").unselect(
        at.sidebar.multiselect(key="f_physicians").value[0]).run()
    assert notes(at) == []
