"""What every table is built from: the declarative base, its naming convention, the UTC
timestamp column type and the vocabulary CHECK helper.

Kept apart from the ORM classes so that the Alembic migrations can import UTCDateTime without
loading the whole schema (a migration describes the schema of its day, not today's classes), and
so that every model module shares one Base, hence one MetaData that Alembic compares against.

Conventions that matter for audit and for both databases:
- every constraint is named (metadata naming convention), so Alembic migrations are portable;
- enumerations are VARCHAR plus a named CHECK built from audit.vocab, not native enums, so adding
  a value is a plain migration on SQLite and PostgreSQL alike;
- every timestamp goes through UTCDateTime: stored in UTC, always returned timezone-aware
  (SQLite would otherwise hand back naive datetimes).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, MetaData, TypeDecorator
from sqlalchemy.orm import DeclarativeBase

from audit import vocab

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime stored as UTC on every backend.

    Naive datetimes are refused at bind time: a clinical timestamp without an offset is ambiguous.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: give a timezone-aware value")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC: the default of every timestamp column."""
    return datetime.now(UTC)


def allowed_values(column: str, enum: type[vocab.Vocabulary],
                   nullable: bool = True) -> CheckConstraint:
    """A named CHECK that `column` holds one of `enum`'s values (or NULL when nullable).

    VARCHAR plus CHECK rather than a native enum: adding a value is then a plain migration on
    SQLite and PostgreSQL alike. The constraint is named `<column>_allowed`, which the naming
    convention turns into ck_<table>_<column>_allowed.
    """
    values = ", ".join(f"'{v}'" for v in enum.values())
    expr = f"{column} IN ({values})"
    if nullable:
        expr = f"{column} IS NULL OR {expr}"
    return CheckConstraint(expr, name=f"{column}_allowed")


class Base(DeclarativeBase):
    """The declarative base of every table; its metadata is what Alembic compares against."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
