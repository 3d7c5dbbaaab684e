"""Figure results shared by every app process (audit.analytics.sql.shared) and the warmer
(audit.analytics.sql.warm), on PostgreSQL: two SqlSource objects stand for two processes. A
second process gets the first one's results without computing; a sign-in keeps them; a row
altered behind the app's back is never unpickled, but recomputed and replaced; after a write,
the warmer replays what people asked for, and a new process's pages then come from the table,
equal to a fresh computation; old versions are pruned."""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine, func, select, text, update

from audit.analytics.figure_changes import figures_version
from audit.analytics.sql import shared
from audit.analytics.sql.shared import KEEP_VERSIONS, recipe_of, replay
from audit.analytics.sql.source import SqlSource
from audit.analytics.sql.warm import WARM_LOCK, wait_for_warmer, warm_figures, warm_when_moved
from audit.auth import cli_actor
from audit.cli import main
from audit.filters import Filters
from audit.log.service import ProcedureLog
from audit.settings import update_setting
from audit.storage.engine import make_engine, write_session
from audit.storage.models import FigureResult
from audit.trail import record_event
from audit.vocab import AuditAction
from tests.analytics import analytics_data
from tests.conftest import Databases, race

FILTERS = [Filters(), Filters.days(date(2026, 2, 1), date(2026, 3, 31), physicians=("Dr. A",))]


def page(source: SqlSource, f: Filters) -> list[Any]:
    """A few figures of the Compliance and Dose pages, as the pages ask for them."""
    return [source.compliance_rates(f), source.compliance_rates(f, "physician"),
            source.p_chart(f), source.record_count(), source.options(),
            source.dose_statistics(f, by=("procedure", "levels"), quantities=("dap_gycm2",)),
            source.physician_scorecard(f), source.local_drls(f),
            source.compliance_records(f, limit=20)]


def assert_equal(found: list[Any], expected: list[Any]) -> None:
    assert len(found) == len(expected)
    for a, b in zip(found, expected, strict=True):
        if isinstance(a, pd.DataFrame):
            pd.testing.assert_frame_equal(a, b)
        else:
            assert a == b


@pytest.fixture
def pg(databases: Databases) -> Iterator[Engine]:
    engine = make_engine(databases.postgresql())
    analytics_data.load(ProcedureLog(engine), cli_actor())
    yield engine
    engine.dispose()


def rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(FigureResult.figures_version, FigureResult.key_sha256,
                                        FigureResult.recipe, FigureResult.asked_at,
                                        FigureResult.seconds)))


def a_write(engine: Engine, minutes: int) -> None:
    update_setting(engine, cli_actor(), "duplicate_window_minutes", minutes)


def test_a_second_process_gets_the_first_ones_results_without_computing(pg: Engine) -> None:
    first, second = SqlSource(pg), SqlSource(pg)
    computed = [page(first, f) for f in FILTERS]
    assert first.queries > 0 and first.shared_hits == 0
    found = [page(second, f) for f in FILTERS]
    # the second takes the physician scorecard whole: not the local DRLs and the records'
    # period the first one read while computing it (scorecard_counts.physician_work)
    assert second.queries == 0 and second.shared_hits == first.queries - 2
    for a, b in zip(found, computed, strict=True):
        assert_equal(a, b)
    stored = rows(pg)
    assert len(stored) == first.queries
    assert all(r.asked_at is not None and r.seconds >= 0 and r.recipe for r in stored)


def test_a_sign_in_or_an_export_keeps_the_results_a_write_does_not(pg: Engine) -> None:
    first = SqlSource(pg)
    page(first, FILTERS[0])
    with write_session(pg) as session:  # the events a sign-in and an export append
        record_event(session, actor="someone", action=AuditAction.LOGIN, entity="user_account",
                     entity_id="1")
        record_event(session, actor="someone", action=AuditAction.EXPORT, entity="export",
                     entity_id="x")
    second = SqlSource(pg)
    page(second, FILTERS[0])
    assert second.queries == 0
    a_write(pg, 40)
    page(second, FILTERS[0])
    assert second.queries > 0  # a setting can change a figure: computed again


RAN = threading.Event()


def _ran() -> None:
    RAN.set()


class _Boom:
    """A pickle that runs code when loaded (what a forged row would carry)."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_ran, ())


def test_a_row_altered_behind_the_apps_back_is_never_unpickled(
        pg: Engine, caplog: pytest.LogCaptureFixture) -> None:
    first = SqlSource(pg)
    expected = first.compliance_rates(FILTERS[1], "physician")
    forged = pickle.dumps(_Boom())
    pickle.loads(forged)  # it does run code when loaded
    assert RAN.is_set()
    with pg.begin() as conn:  # the owner role, a restored backup: anyone who can write rows
        conn.execute(update(FigureResult).values(payload=forged))
    RAN.clear()
    second = SqlSource(pg)
    with caplog.at_level(logging.WARNING, logger="fluoro_audit.figures"):
        found = second.compliance_rates(FILTERS[1], "physician")
    assert not RAN.is_set()
    assert second.queries == 1 and second.shared_hits == 0
    pd.testing.assert_frame_equal(found, expected)
    assert "fails its MAC" in caplog.text
    third = SqlSource(pg)  # replaced by a row that verifies
    pd.testing.assert_frame_equal(third.compliance_rates(FILTERS[1], "physician"), expected)
    assert third.queries == 0 and third.shared_hits == 1


def test_a_valid_row_moved_to_another_key_fails_its_mac(pg: Engine) -> None:
    first = SqlSource(pg)
    first.compliance_rates(FILTERS[0], "room")
    first.compliance_rates(FILTERS[1], "room")
    with pg.begin() as conn:  # each key now holds the other's (valid) payload and MAC
        a, b = conn.execute(select(FigureResult.key_sha256, FigureResult.payload,
                                   FigureResult.mac)).all()
        for mine, theirs in ((a, b), (b, a)):
            conn.execute(update(FigureResult).where(FigureResult.key_sha256 == mine.key_sha256)
                         .values(payload=theirs.payload, mac=theirs.mac))
    second = SqlSource(pg)
    second.compliance_rates(FILTERS[0], "room")
    assert second.queries == 1


def test_the_warmer_computes_ahead_what_people_asked_for(pg: Engine) -> None:
    for f in FILTERS:
        page(SqlSource(pg), f)
    analytics_data_record = analytics_data.RECORDS[0] | {"accession_number": "NEW1",
                                                          "patient_id": "HB900"}
    ProcedureLog(pg).log(analytics_data_record, cli_actor(), confirm_warnings=True)
    done: list[tuple[int, int]] = []
    report = warm_figures(pg, progress=lambda i, n, what: done.append((i, n)))
    assert report.calls == len(done) > 0 and report.failed == 0 and not report.busy
    assert report.computed > 0 and done[-1] == (report.calls, report.calls)
    with pg.connect() as conn:
        assert report.figures_version == figures_version(conn)
    after = SqlSource(pg)
    found = [page(after, f) for f in FILTERS]
    assert after.queries == 0  # every figure of the pages came from the table
    fresh = SqlSource(pg, shared=False)
    for f, got in zip(FILTERS, found, strict=True):
        assert_equal(got, page(fresh, f))
    assert after.record_count() == 10  # the new record is in them
    again = warm_figures(pg)
    assert again.computed == 0  # all there already


def test_only_what_a_person_opened_is_marked_as_asked(pg: Engine) -> None:
    page(SqlSource(pg), FILTERS[0])
    a_write(pg, 41)
    warm_figures(pg)
    version = SqlSource(pg).token
    warmed = [r for r in rows(pg) if r.figures_version == version]
    assert warmed and all(r.asked_at is None for r in warmed)  # the warmer's own work
    SqlSource(pg).physician_scorecard(FILTERS[0])  # a person opens one warmed figure
    opened = [r for r in rows(pg) if r.figures_version == version and r.asked_at is not None]
    assert len(opened) == 1  # the scorecard (the local DRLs are read only to compute it)
    assert all("physician_scorecard" in r.recipe for r in opened)


def test_one_process_warms_at_a_time(pg: Engine) -> None:
    page(SqlSource(pg), FILTERS[0])
    a_write(pg, 43)
    with pg.connect() as holder:
        assert holder.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": WARM_LOCK})
        try:
            report = warm_figures(pg)
        finally:
            holder.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": WARM_LOCK})
    assert report.busy and report.computed == 0


def test_old_versions_are_pruned(pg: Engine) -> None:
    for minutes in range(50, 50 + KEEP_VERSIONS + 2):
        page(SqlSource(pg), FILTERS[0])
        a_write(pg, minutes)
    report = warm_figures(pg)
    assert report.pruned > 0
    with pg.connect() as conn:
        versions = conn.scalar(select(func.count(FigureResult.figures_version.distinct())))
    assert versions == KEEP_VERSIONS


def test_the_dashboard_starts_one_warm_per_version(pg: Engine) -> None:
    page(SqlSource(pg), FILTERS[0])
    a_write(pg, 44)
    version = SqlSource(pg).token
    assert warm_when_moved(pg, version)
    assert not warm_when_moved(pg, version)  # running, or already seen: not again
    wait_for_warmer(60)
    assert not warm_when_moved(pg, version)
    after = SqlSource(pg)
    page(after, FILTERS[0])
    assert after.queries == 0


def test_a_recipe_is_the_public_call_and_replays_as_it() -> None:
    f = Filters.days(date(2026, 2, 1), date(2026, 3, 31), rooms=("R1",), record_ids=(3, 4))
    recipe = recipe_of("dose_statistics", (f,), {"by": ("procedure", "levels"),
                                                 "per_level": True})

    class Recorder:
        def dose_statistics(self, *args: Any, **kwargs: Any) -> Any:
            return args, kwargs

    args, kwargs = replay(Recorder(), recipe)
    assert args == (f,) and kwargs == {"by": ("procedure", "levels"), "per_level": True}
    with pytest.raises(ValueError, match="not a public figure call"):
        replay(Recorder(), recipe.replace("dose_statistics", "__init__"))


def test_figures_warm_on_the_command_line(pg: Engine, databases: Databases,
                                          capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    monkeypatch.setenv("FLUORO_AUDIT_FIGURES", "sql")  # the site's choice (a small database)
    monkeypatch.setenv("FLUORO_AUDIT_CACHE_DIR", str(tmp_path))
    page(SqlSource(pg), FILTERS[0])
    a_write(pg, 45)
    url = pg.url.render_as_string(hide_password=False)
    assert main(["--db", url, "figures", "warm", "--json"]) == 0
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert report["calls"] > 0 and report["computed"] > 0 and not report["busy"]
    assert f"[{report['calls']}/{report['calls']}] " in err  # progress on stderr
    assert main(["--db", url, "figures", "warm"]) == 0
    assert ", 0 figures computed" in capsys.readouterr().out
    # where the figures come from the frame (SQLite; PostgreSQL where the site chose it), the
    # command keeps the frame file instead (tests/analytics/test_frame.py)
    assert main(["--db", databases.sqlite(), "figures", "warm"]) == 0
    assert "frame file current at audit event" in capsys.readouterr().out
    monkeypatch.setenv("FLUORO_AUDIT_FIGURES", "frame")
    assert main(["--db", url, "figures", "warm"]) == 0
    assert "frame file current at audit event" in capsys.readouterr().out


def test_other_code_never_reads_what_this_code_stored(pg: Engine,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    SqlSource(pg).compliance_rates(FILTERS[0])
    monkeypatch.setattr(shared, "code_digest", lambda: "an upgraded app's sources")
    upgraded = SqlSource(pg)
    upgraded.compliance_rates(FILTERS[0])
    assert upgraded.queries == 1


def test_a_genuine_row_that_cannot_be_read_back_is_computed_again(
        pg: Engine, caplog: pytest.LogCaptureFixture) -> None:
    expected = SqlSource(pg).compliance_rates(FILTERS[0])
    table = shared.SharedResults(pg)
    payload = b"\x80\x05\x95\x1a\x00\x00\x00\x00\x00\x00\x00\x8c\x0fno_such_module\x94\x8c\x01x"
    with pg.begin() as conn:  # what another pandas version, say, would have stored
        row = conn.execute(select(FigureResult.figures_version, FigureResult.key_sha256,
                                  FigureResult.recipe)).one()
        mac = table.mac(row.figures_version, row.key_sha256,
                        hashlib.sha256(payload).hexdigest(), row.recipe)
        conn.execute(update(FigureResult).values(payload=payload, mac=mac))
    second = SqlSource(pg)
    with caplog.at_level(logging.WARNING, logger="fluoro_audit.figures"):
        pd.testing.assert_frame_equal(second.compliance_rates(FILTERS[0]), expected)
    assert second.queries == 1 and "cannot be read back" in caplog.text
    third = SqlSource(pg)
    third.compliance_rates(FILTERS[0])
    assert third.queries == 0  # replaced


def test_two_processes_asking_at_once_compute_a_figure_once(pg: Engine) -> None:
    """After a write every app process (and the warmer) may open the same page at once: the
    second waits for the first one's result instead of scanning too."""
    sources = [SqlSource(pg) for _ in range(3)]
    found: list[pd.DataFrame] = []
    outcomes = race([lambda s=s: found.append(s.physician_scorecard(FILTERS[1]))
                     for s in sources])
    assert outcomes == [None, None, None]
    # the scorecard, the local DRLs it reads and the records' period (the probe of its counts
    # from the count summary, scorecard_counts: kept by each process, not shared)
    assert sum(s.queries for s in sources) == 3
    assert sum(s.shared_hits for s in sources) == 2  # the scorecard, whole
    for other in found[1:]:
        pd.testing.assert_frame_equal(other, found[0])
