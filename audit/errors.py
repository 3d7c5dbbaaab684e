"""Named exceptions, one per way an operation can be refused (sqlite-utils style).

Callers (CLI, pages) catch these to show the user a sentence; anything else is a bug.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    """A problem with one field: what is wrong and what is allowed."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


#: A warning has the same shape as an error but can be confirmed and kept on the record.
FieldWarning = FieldError


class AuditError(Exception):
    """Base of every refusal the library reports to a user."""


class ValidationFailed(AuditError):
    """Input is invalid. Every error names its field; nothing was written."""

    def __init__(self, errors: list[FieldError]):
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))


class WarningsNotConfirmed(AuditError):
    """The input is valid but implausible; saving needs explicit confirmation."""

    def __init__(self, warnings: list[FieldError]):
        self.warnings = warnings
        super().__init__(
            "confirmation needed (nothing was saved): " + "; ".join(str(w) for w in warnings)
        )


class StaleVersion(AuditError):
    """An amend named a version that is no longer current: someone else changed the record."""

    def __init__(self, record_id: int, expected: int, current: int, by: str | None):
        self.record_id, self.expected, self.current = record_id, expected, current
        who = f" by {by}" if by else ""
        super().__init__(
            f"record {record_id} was changed{who} after you opened it (you read version "
            f"{expected}, it is now version {current}); nothing was saved: reload it and "
            "apply your change again"
        )


class NotFound(AuditError):
    """The record or entity does not exist."""


class PermissionDenied(AuditError):
    """The actor's role does not allow this."""


class RecordVoided(AuditError):
    """The record is void; it can be read but not amended or voided again."""


class NotMigrated(AuditError):
    """No fluoro-audit database at the URL: a missing file, an empty one, or a database without
    the schema. Only `migrate` (and `serve`, which migrates) create one, so a typo in --db is
    reported instead of silently starting an empty log."""


class NearNamesFound(WarningsNotConfirmed):
    """A name to be added is near existing ones ("Chen" beside "Dr. Amelia Chen", issue 11):
    confirm that it is another one, or choose one of `matches` instead."""

    def __init__(self, warnings: list[FieldError], matches: list[str]):
        self.matches = matches
        super().__init__(warnings)


class DocumentFailed(AuditError):
    """A document (PDF) could not be typeset: a fault in its markup or a missing font, named in
    the message (audit.documents.typeset)."""


class NeedsPostgreSQL(AuditError, ValueError):
    """Something kept on PostgreSQL only was asked of SQLite (the record facts the SQL figures
    read: audit.analytics.sql.facts); the message says what the other database does instead."""
