"""PostgreSQL with two roles (audit.storage.roles, `fluoro-audit db grant-app`): the owner
migrates; the application role logs, amends, voids and verifies, but the server refuses it any
change to history; what the owner can still do is caught by verify-audit.

Each test creates its owner and application roles with random names, and a database owned by
the owner, and drops them afterwards. The admin URL's role needs CREATEROLE (.ci/throwaway_pg.sh,
which .ci/run goes through, gives it); without it these tests are skipped locally and fail under CI.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from audit.analytics.daily_summary import refresh_summary
from audit.analytics.sql.count_summary import refresh_counts
from audit.analytics.sql.facts import rebuild_facts
from audit.analytics.sql.source import SqlSource
from audit.auth import cli_actor
from audit.cli import main
from audit.filters import Filters
from audit.log.service import ProcedureLog
from audit.storage.engine import make_engine, migrate
from audit.storage.models import AuditEvent
from tests.analytics.sql_figures import statements
from tests.conftest import IN_CI, Databases, _pg_admin_engine, pg_admin_url, valid_record


@dataclass(frozen=True)
class TwoRoles:
    owner: str
    app: str
    owner_url: str
    app_url: str


@pytest.fixture
def roles() -> Iterator[TwoRoles]:
    admin_url = pg_admin_url()
    if admin_url is None:
        pytest.skip("PostgreSQL not configured")
    admin = _pg_admin_engine(admin_url)
    with admin.connect() as conn:
        may = conn.execute(text("SELECT rolsuper OR rolcreaterole FROM pg_roles "
                                "WHERE rolname = current_user")).scalar()
    if not may:
        admin.dispose()
        message = "the admin role of FLUORO_AUDIT_TEST_PG cannot create roles (CREATEROLE)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    suffix = uuid.uuid4().hex[:10]
    owner, app, database = f"fa_owner_{suffix}", f"fa_app_{suffix}", f"fa_roles_{suffix}"
    passwords = {owner: secrets.token_hex(16), app: secrets.token_hex(16)}

    def url(role: str) -> str:
        return make_url(admin_url).set(drivername="postgresql+psycopg", username=role,
                                       password=passwords[role], database=database) \
            .render_as_string(hide_password=False)

    try:
        with admin.connect() as conn:
            for role, password in passwords.items():
                conn.execute(text(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'"))
            conn.execute(text(f"GRANT {owner} TO current_user"))  # to create its database
            conn.execute(text(f'CREATE DATABASE "{database}" OWNER {owner}'))
        yield TwoRoles(owner, app, url(owner), url(app))
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            for role in (app, owner):
                conn.execute(text(f"DROP ROLE IF EXISTS {role}"))
        admin.dispose()


def cli(*argv: str) -> int:
    return main(list(argv))


def table_grants(url: str, role: str) -> set[tuple[str, str]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT table_name, privilege_type FROM information_schema.role_table_grants "
                "WHERE grantee = :r"), {"r": role})
            return {(str(table), str(privilege)) for table, privilege in rows}
    finally:
        engine.dispose()


REFUSED = [
    "UPDATE audit_event SET actor = 'mallory'",
    "DELETE FROM audit_event",
    "TRUNCATE audit_event",
    "ALTER TABLE audit_event DISABLE TRIGGER audit_event_no_change",
    "ALTER TABLE audit_event DISABLE TRIGGER ALL",
    "DROP TABLE audit_event CASCADE",
    "DELETE FROM procedure",
    "TRUNCATE procedure CASCADE",
    "DELETE FROM user_account",
]


def test_the_application_role_works_and_cannot_change_history(
    roles: TwoRoles, capsys: pytest.CaptureFixture[str]
) -> None:
    migrate(roles.owner_url)
    assert cli("--db", roles.owner_url, "db", "grant-app", roles.app) == 0
    engine = make_engine(roles.app_url)
    try:
        service = ProcedureLog(engine)
        record = service.log(valid_record(), cli_actor(), create_missing=True).record_id
        service.amend(record, {"levels": ["L3", "L4"]}, cli_actor(), version=1,
                      reason="levels")  # replaces procedure_level rows: the one DELETE
        service.void(record, cli_actor(), version=2, reason="duplicate")
        # the derived caches' refreshes delete and recompute rows (the figures from SQL)
        assert SqlSource(engine).compliance_rates(Filters())["eligible"].sum() == 0
        assert rebuild_facts(engine) > 0 and refresh_summary(engine) > 0
        assert refresh_counts(engine, force=True) > 0
        capsys.readouterr()
        assert cli("--db", roles.app_url, "verify-audit") == 0, capsys.readouterr()
        for statement in REFUSED:
            with pytest.raises(DBAPIError, match=r"permission denied|must be owner"), \
                    engine.begin() as conn:
                conn.execute(text(statement))
    finally:
        engine.dispose()


def test_a_tamper_by_the_owner_is_caught(roles: TwoRoles,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    migrate(roles.owner_url)
    assert cli("--db", roles.owner_url, "db", "grant-app", roles.app) == 0
    app = make_engine(roles.app_url)
    owner = make_engine(roles.owner_url)
    try:
        service = ProcedureLog(app)
        record = service.log(valid_record(), cli_actor(), create_missing=True).record_id
        for version in (1, 2, 3):
            service.amend(record, {"saved_images": 2 + version}, cli_actor(), version=version,
                          reason="PACS count")
        with Session(app) as s:
            ids = list(s.scalars(select(AuditEvent.id).order_by(AuditEvent.id)))
        with owner.begin() as conn:  # what the owner role can still do
            conn.execute(text("ALTER TABLE audit_event DISABLE TRIGGER audit_event_no_change"))
            conn.execute(text("DELETE FROM audit_event WHERE id >= :i"), {"i": ids[-3]})
            conn.execute(text("ALTER TABLE audit_event ENABLE TRIGGER audit_event_no_change"))
        capsys.readouterr()
        assert cli("--db", roles.app_url, "verify-audit") == 1
        out = capsys.readouterr().out
        assert f"audit trail BROKEN at event {ids[-3]}: the chain is shorter than a recorded " \
               "head" in out
    finally:
        app.dispose()
        owner.dispose()


def test_grant_app_is_idempotent_audited_and_refuses_owners(
    roles: TwoRoles, capsys: pytest.CaptureFixture[str]
) -> None:
    migrate(roles.owner_url)
    assert cli("--db", roles.owner_url, "db", "grant-app", roles.app) == 0
    first = table_grants(roles.owner_url, roles.app)
    assert cli("--db", roles.owner_url, "db", "grant-app", roles.app) == 0
    assert table_grants(roles.owner_url, roles.app) == first
    assert {p for t, p in first if t == "audit_event"} == {"SELECT", "INSERT"}
    assert {p for t, p in first if t == "procedure"} == {"SELECT", "INSERT", "UPDATE"}
    assert {t for t, p in first if p == "DELETE"} == {"procedure_level", "daily_summary",
                                                      "record_fact", "count_summary",
                                                      "dose_bucket", "dose_bucket_edge",
                                                      "rule_finding", "rule_finding_count",
                                                      "figure_result"}
    assert not {p for _, p in first} & {"TRUNCATE", "TRIGGER", "REFERENCES"}
    engine = make_engine(roles.owner_url)
    try:
        with Session(engine) as s:
            audited = list(s.scalars(select(AuditEvent).where(
                AuditEvent.entity == "database_role")))
        assert [e.entity_id for e in audited] == [roles.app, roles.app]
        assert audited[0].after is not None
        assert audited[0].after["tables"]["audit_event"] == ["SELECT", "INSERT"]
        with engine.begin() as conn:  # a table a later migration adds
            conn.execute(text("CREATE TABLE later_table (id serial PRIMARY KEY, note text)"))
    finally:
        engine.dispose()
    app = make_engine(roles.app_url)
    try:
        with app.begin() as conn:
            conn.execute(text("INSERT INTO later_table (note) VALUES ('x')"))
            conn.execute(text("UPDATE later_table SET note = 'y'"))
    finally:
        app.dispose()
    capsys.readouterr()
    assert cli("--db", roles.owner_url, "db", "grant-app", roles.owner) == 1
    assert "owns the tables" in capsys.readouterr().err
    assert cli("--db", roles.owner_url, "db", "grant-app", "fa_no_such_role") == 1
    assert "does not exist" in capsys.readouterr().err


def test_grant_app_on_sqlite_says_why_not(databases: Databases,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("--db", databases.sqlite(), "db", "grant-app", "app") == 1
    assert "SQLite database is protected by its file's permissions" in capsys.readouterr().err


def test_the_application_role_shares_warms_and_prunes_the_figures(roles: TwoRoles) -> None:
    """figure_result is a cache the application role fills, reads and prunes (DELETE); the
    daily summary, which the figures refresh after a write, recomputes its changed days."""
    from audit.analytics.sql.shared import KEEP_VERSIONS
    from audit.analytics.sql.source import SqlSource
    from audit.analytics.sql.warm import warm_figures
    from audit.filters import Filters
    from audit.settings import update_setting
    from audit.storage.models import FigureResult

    migrate(roles.owner_url)
    assert cli("--db", roles.owner_url, "db", "grant-app", roles.app) == 0
    engine = make_engine(roles.app_url)
    try:
        ProcedureLog(engine).log(valid_record(), cli_actor(), create_missing=True)
        for minutes in range(31, 32 + KEEP_VERSIONS):
            SqlSource(engine).compliance_rates(Filters())
            update_setting(engine, cli_actor(), "duplicate_window_minutes", minutes)
        report = warm_figures(engine)
        assert report.computed == 1 and report.pruned > 0 and not report.failed
        second = SqlSource(engine)
        second.compliance_rates(Filters())
        assert second.queries == 0
        with Session(engine) as s:
            versions = set(s.scalars(select(FigureResult.figures_version)))
        assert len(versions) == KEEP_VERSIONS
        kap = "kap_corrected_gycm2"
        assert SqlSource(engine).dose_distribution(Filters(), kap)["n"].tolist() == [1]
        ProcedureLog(engine).log(valid_record(accession_number="B2"), cli_actor(),
                                 confirm_warnings=True)
        assert SqlSource(engine).record_count() == 2  # the daily summary's day recomputed
        # the dose buckets' month deleted and recomputed, from them (a bucket read)
        with statements(engine) as seen:
            assert SqlSource(engine).dose_distribution(Filters(), kap)["n"].tolist() == [2]
        assert any("DELETE FROM dose_bucket " in s for s in seen)
    finally:
        engine.dispose()
