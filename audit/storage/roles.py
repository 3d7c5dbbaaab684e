"""PostgreSQL's two roles: the owner, which runs migrations and owns the tables, and the
application role the dashboards and commands connect as, which cannot edit history.

Why: the append-only triggers stop a careless UPDATE, but the owner of a table can disable its
triggers (ALTER TABLE ... DISABLE TRIGGER), delete, and enable them again. A role that owns
nothing and holds only the privileges below cannot: on audit_event it may SELECT and INSERT,
never UPDATE, DELETE or TRUNCATE, and ALTER needs ownership. On the other tables it may
SELECT, INSERT and UPDATE; nothing is ever hard-deleted (records are voided, accounts
deactivated), with one exception the code needs: an amend that changes a record's levels
replaces its procedure_level rows, so DELETE is granted on that table (and the replay in
verify-audit compares levels too, so a level deleted with SQL still shows), and on the caches
derived from the records (the daily summary, the record facts, the count summary, the stored
rule findings and their counts), whose rows a refresh deletes and recomputes (no clinical
data: `db rebuild-facts` and a rules bump rebuild them).

`grant_app` is idempotent (it revokes everything first, then grants exactly this) and audited.
Tables a later migration adds get SELECT, INSERT, UPDATE through ALTER DEFAULT PRIVILEGES; run
it again after each upgrade all the same, so a new append-only table loses UPDATE.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from audit.auth import Actor, Permission, require
from audit.errors import AuditError
from audit.storage.engine import write_session
from audit.trail import record_event
from audit.vocab import AuditAction

#: Tables whose privileges differ from SELECT, INSERT, UPDATE.
APPEND_ONLY = ("audit_event",)
#: procedure_level: an amend of a record's levels deletes and re-inserts them.
#: daily_summary, record_fact, count_summary, dose_bucket(_edge), rule_finding(_count): caches a
#: refresh recomputes (audit.analytics.derived);
#: figure_result: a cache of figures, whose older versions are pruned (audit.analytics.sql.shared).
REPLACEABLE = ("procedure_level", "daily_summary", "record_fact", "count_summary",
               "dose_bucket", "dose_bucket_edge", "rule_finding", "rule_finding_count",
               "figure_result")
#: Written by migrations only.
READ_ONLY = ("alembic_version",)


class RoleRefused(AuditError):
    """The role cannot be made the application role (missing, superuser, or an owner)."""


@dataclass(frozen=True)
class Grants:
    """What grant_app gave: table -> privileges, and the statements it ran."""

    role: str
    database: str
    schema: str
    tables: dict[str, list[str]]
    statements: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"role": self.role, "database": self.database, "schema": self.schema,
                "tables": self.tables}


def privileges_for(table: str) -> list[str]:
    if table in APPEND_ONLY:
        return ["SELECT", "INSERT"]
    if table in REPLACEABLE:
        return ["SELECT", "INSERT", "UPDATE", "DELETE"]
    if table in READ_ONLY:
        return ["SELECT"]
    return ["SELECT", "INSERT", "UPDATE"]


def _check_role(session: Session, role: str) -> tuple[str, str, str]:
    """(database, schema, table owner), or RoleRefused naming why this role cannot be the
    application role."""
    found = session.execute(text("SELECT rolsuper FROM pg_roles WHERE rolname = :r"),
                            {"r": role}).first()
    if found is None:
        raise RoleRefused(f"role {role!r} does not exist: create it first (CREATE ROLE {role} "
                          "LOGIN PASSWORD '...'), then run this again")
    if found[0]:
        raise RoleRefused(f"role {role!r} is a superuser: no grant can restrict it; create a "
                          "plain role for the application")
    database, schema, owner = session.execute(text(
        "SELECT current_database(), current_schema(), "
        "(SELECT tableowner FROM pg_tables WHERE schemaname = current_schema() "
        "AND tablename = 'audit_event')")).one()
    if owner is None:
        raise RoleRefused("the audit_event table was not found: run `fluoro-audit migrate` "
                          "as the owner first")
    owns = session.execute(text("SELECT pg_has_role(:r, :o, 'MEMBER')"),
                           {"r": role, "o": owner}).scalar_one()
    if owns:
        raise RoleRefused(f"role {role!r} owns the tables (or is a member of their owner "
                          f"{owner!r}), so it could disable the audit triggers: the "
                          "application needs a role of its own")
    return str(database), str(schema), str(owner)


def grant_app(engine: Engine, actor: Actor, role: str) -> Grants:
    """Give `role` exactly the application's privileges (see the module docstring); run by
    the tables' owner. Audited as a setting of the database role."""
    require(actor, Permission.ADMIN)
    if engine.dialect.name != "postgresql":
        raise RoleRefused("database roles are PostgreSQL's: a SQLite database is protected by "
                          "its file's permissions (and the key directory's)")
    quote = engine.dialect.identifier_preparer.quote
    with write_session(engine) as session:
        database, schema, owner = _check_role(session, role)
        who, where = quote(role), quote(schema)
        tables = list(session.scalars(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = :s ORDER BY tablename"),
            {"s": schema}))
        statements = [
            f"GRANT CONNECT ON DATABASE {quote(database)} TO {who}",
            f"GRANT USAGE ON SCHEMA {where} TO {who}",
            f"REVOKE CREATE ON SCHEMA {where} FROM {who}",
            f"REVOKE ALL ON ALL TABLES IN SCHEMA {where} FROM {who}",
            f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {where} FROM {who}",
            *(f"GRANT {', '.join(privileges_for(t))} ON {where}.{quote(t)} TO {who}"
              for t in tables),
            f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {where} TO {who}",
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {quote(owner)} IN SCHEMA {where} "
            f"GRANT SELECT, INSERT, UPDATE ON TABLES TO {who}",
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {quote(owner)} IN SCHEMA {where} "
            f"GRANT USAGE ON SEQUENCES TO {who}",
        ]
        for statement in statements:
            session.execute(text(statement))
        granted = {t: privileges_for(t) for t in tables}
        record_event(session, actor=actor.username, action=AuditAction.SETTING,
                     entity="database_role", entity_id=role[:64],
                     reason="application role granted its privileges (db grant-app)",
                     after={"role": role, "owner": owner, "schema": schema, "tables": granted})
    return Grants(role, database, schema, granted, statements)
