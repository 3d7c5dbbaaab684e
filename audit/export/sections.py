"""The built-in export sections: the procedure log and the audit trail.

The procedure log is one SELECT whose cells are rendered in SQL (audit.export.cells.sql_cell, with
the levels and warnings aggregated and neutralised item by item in SQL), streamed from a
server-side cursor in chunks. The audit trail is rendered in Python, chunk by chunk, because its
JSON payloads are redacted of patient identity unless PHI was asked for.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC
from typing import Any

from sqlalchemy import Connection, Select, and_, func, literal, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement, FunctionElement

from audit.dictionary import FIELDS
from audit.dosimetry import (
    BACKGROUND_DAYS_DECIMALS,
    background_days_sql,
)
from audit.export import cells as csvsafe
from audit.export import types as export_types
from audit.export.cells import Kind
from audit.export.types import Column, SectionContext, SectionData
from audit.filters import Filters
from audit.settings import Settings
from audit.storage.models import (
    AuditEvent,
    Patient,
    Physician,
    Procedure,
    ProcedureType,
    Room,
    Site,
    UserAccount,
)
from audit.vocab import AuditAction

# --- the procedure log -----------------------------------------------------------------------

class sql_levels(FunctionElement[str]):
    """The procedure's levels, ';'-joined in position order (aggregated in SQL)."""

    inherit_cache = True
    name = "sql_levels"


# SQL templates around compiled column expressions (no user input reaches them). Each item is
# neutralised inside the aggregate (the csvsafe rule for list cells), so the aggregate, the
# costliest expression of the export, runs once per row.
# SQLite 3.40 has no ORDER BY inside group_concat; it concatenates in the ordered subquery's
# order (the (procedure_id, position) key is walked in that order anyway).
_LEVELS = {
    "sqlite": "(SELECT group_concat({item}, ';') FROM (SELECT level FROM procedure_level "
              "WHERE procedure_id = {x} ORDER BY position) AS pl)",
    "postgresql": "(SELECT string_agg({item}, ';' ORDER BY pl.position) "
                  "FROM procedure_level AS pl WHERE pl.procedure_id = {x})",
}
# Items without a field print their message alone; JSON 'null' (no warnings) yields NULL.
_WARNINGS = {
    "sqlite": "(SELECT group_concat({item}, '; ') FROM json_each({x}) AS j "
              "WHERE j.type = 'object')",
    "postgresql": "(SELECT string_agg({item}, '; ' ORDER BY t.n) FROM json_array_elements("
                  "CASE WHEN json_typeof({x}) = 'array' THEN {x} END) WITH ORDINALITY "
                  "AS t(e, n))",
}
_WARNING_ITEM = {
    "sqlite": "coalesce(json_extract(j.value, '$.field') || ': ', '') || "
              "json_extract(j.value, '$.message')",
    "postgresql": "coalesce((t.e ->> 'field') || ': ', '') || (t.e ->> 'message')",
}


@compiles(sql_levels)
def _levels_sql(element: sql_levels, compiler: Any, **kw: Any) -> str:
    x = compiler.process(next(iter(element.clauses)), **kw)
    dialect = compiler.dialect.name
    item = csvsafe.neutralise_sql("pl.level", dialect)
    return _LEVELS[dialect].format(x=x, item=item)


class sql_warnings(FunctionElement[str]):
    """The confirmed warnings (JSON list of {field, message}) as "field: message; ..."."""

    inherit_cache = True
    name = "sql_warnings"


@compiles(sql_warnings)
def _warnings_sql(element: sql_warnings, compiler: Any, **kw: Any) -> str:
    x = compiler.process(next(iter(element.clauses)), **kw)
    dialect = compiler.dialect.name
    item = csvsafe.neutralise_sql(_WARNING_ITEM[dialect], dialect)
    return _WARNINGS[dialect].format(x=x, item=item)


#: Dictionary fields that are not a Procedure column of the same name.
_JOINED: dict[str, ColumnElement[Any]] = {
    "record_id": Procedure.id,
    "site": Site.name,
    "room": Room.name,
    "physician": Physician.name,
    "technologist": UserAccount.username,
    "patient_id": Patient.mrn,
    "patient_ref": Patient.pseudonym,
    "procedure_code": ProcedureType.code,
}


def procedure_columns(include_phi: bool) -> list[Column]:
    """The procedure log's columns: the data dictionary, in order; patient_id only with PHI."""
    return [Column(f.name, f.type, f.unit, f.allowed, f.required, f.description)
            for f in FIELDS if include_phi or f.name != "patient_id"]


def procedure_cells(
    include_phi: bool, annual_background_msv: float = Settings.annual_background_msv,
) -> list[ColumnElement[Any]]:
    """The procedure log's cells as SQL expressions, rendered (csvsafe.sql_cell), in column
    order, over the tables that _joined joins."""
    cells: list[ColumnElement[Any]] = []
    for column in procedure_columns(include_phi):
        if column.name == "levels":  # rendered (items neutralised) by the aggregate itself
            cells.append(sql_levels(Procedure.id))
            continue
        if column.name == "warnings":
            cells.append(sql_warnings(Procedure.warnings))
            continue
        if column.name == "background_days":
            raw: ColumnElement[Any] | None = csvsafe.sql_round(
                background_days_sql(Procedure.effective_dose_msv, annual_background_msv),
                BACKGROUND_DAYS_DECIMALS)
        else:
            raw = _JOINED.get(column.name, getattr(Procedure, column.name, None))
        if raw is None:
            raise AssertionError(f"dictionary field {column.name} has no source column")
        cells.append(csvsafe.sql_cell(raw, column.kind))
    return cells


def _joined(query: Select[Any]) -> Select[Any]:
    return (query.select_from(Procedure)
            .join(Site, Site.id == Procedure.site_id)
            .join(Room, Room.id == Procedure.room_id)
            .join(Physician, Physician.id == Procedure.physician_id)
            .join(UserAccount, UserAccount.id == Procedure.technologist_id)
            .join(Patient, Patient.id == Procedure.patient_id)
            .join(ProcedureType, ProcedureType.id == Procedure.procedure_type_id))


def procedure_log_query(
    filters: Filters, include_phi: bool,
    annual_background_msv: float = Settings.annual_background_msv,
) -> Select[Any]:
    """One SELECT that yields the procedure log's rows already rendered as CSV cells."""
    cells = procedure_cells(include_phi, annual_background_msv)
    names = [c.name for c in procedure_columns(include_phi)]
    return (_joined(select(*[cell.label(name) for cell, name in zip(cells, names, strict=True)]))
            .where(and_(True, *filters.where()))
            .order_by(Procedure.performed_at, Procedure.id))


def procedure_lines_query(
    filters: Filters, include_phi: bool,
    annual_background_msv: float = Settings.annual_background_msv,
) -> Select[Any]:
    """The procedure log as whole CSV records, one string per row (SQLite).

    The inner SELECT joins each row's cells unquoted (csvsafe.sql_csv_line) beside its
    record_id; the outer one keeps that record when no cell needs quoting and otherwise (a
    rare row) renders the row again, by record_id, with every text cell quoted as csv.writer
    would (csvsafe.sql_csv_record). Both SELECTs carry LIMIT -1 so that SQLite does not
    flatten the inner into the outer (which would evaluate the record up to five times a
    row); the inner runs as a co-routine whose ordered rows the outer reads in turn, so the
    records keep its ORDER BY.
    """
    columns = procedure_columns(include_phi)
    cells = procedure_cells(include_phi, annual_background_msv)
    records = (_joined(select(csvsafe.sql_csv_line(*cells).label("csv_record"),
                              Procedure.id.label("record_id")))
               .where(and_(True, *filters.where()))
               .order_by(Procedure.performed_at, Procedure.id)
               .limit(-1).subquery("records"))
    quoted = csvsafe.sql_csv_line(*[
        csvsafe.sql_csv_quoted(cell) if column.kind in Kind.TEXTUAL else cell
        for cell, column in zip(cells, columns, strict=True)])
    again = (_joined(select(quoted)).where(Procedure.id == records.c.record_id)
             .scalar_subquery())
    return select(csvsafe.sql_csv_record(records.c.csv_record, again,
                                         literal(len(columns)))).limit(-1)


def _stream(connection: Connection, query: Select[Any], chunk: int | None = None, *,
            scalars: bool = False) -> Iterator[Sequence[Any]]:
    """Rows (or, with scalars, first cells) from a server-side cursor (PostgreSQL) or
    SQLite's stepping cursor, in chunks."""
    chunk = chunk or export_types.CHUNK_ROWS
    result = connection.execution_options(stream_results=True, max_row_buffer=chunk,
                                          yield_per=chunk).execute(query)
    try:
        yield from (result.scalars() if scalars else result).partitions(chunk)
    finally:
        result.close()


def count_procedures(ctx: SectionContext) -> int:
    query = select(func.count()).select_from(Procedure).where(
        and_(True, *ctx.filters.where()))
    return int(ctx.connection.scalar(query) or 0)


def procedures_section(ctx: SectionContext) -> SectionData:
    annual = float(ctx.settings.annual_background_msv)
    columns = procedure_columns(ctx.include_phi)
    if ctx.dialect == "sqlite":  # records built in SQL: one string per row (see the query)
        lines = procedure_lines_query(ctx.filters, ctx.include_phi, annual)
        return SectionData(columns, _stream(ctx.connection, lines, scalars=True),
                           rendered=True, lines=True)
    query = procedure_log_query(ctx.filters, ctx.include_phi, annual)
    return SectionData(columns, _stream(ctx.connection, query), rendered=True)


# --- the audit trail -------------------------------------------------------------------------

#: Keys in audit payloads that hold a medical record number.
PHI_KEYS = frozenset({"patient_id", "mrn"})

AUDIT_COLUMNS: tuple[Column, ...] = (
    Column("event_id", Kind.INTEGER, required="yes",
           description="Position in the append-only audit trail"),
    Column("occurred_at", Kind.DATETIME, "ISO 8601, UTC, microseconds", required="yes",
           description="When it happened (to the microsecond, as the hash covers it)"),
    Column("actor", Kind.TEXT, required="yes", description="Who did it (username, cli:<user>, "
           "or demo)"),
    Column("action", Kind.ENUM, allowed="; ".join(AuditAction.values()), required="yes",
           description="What was done"),
    Column("entity", Kind.TEXT, required="yes", description="What kind of thing it was done to "
           "(procedure, user_account, setting, export, ...)"),
    Column("entity_id", Kind.TEXT, description="Which one (a record_id for procedures)"),
    Column("reason", Kind.TEXT, description="The reason given (amend, void, ...)"),
    Column("before", Kind.JSON, description="Changed values before (JSON, keys sorted)"),
    Column("after", Kind.JSON, description="Values after (JSON, keys sorted)"),
    Column("redacted", Kind.BOOLEAN, required="yes", description="true when patient_id was "
           "replaced by patient_ref in before/after (an export without PHI); the hash is then "
           "of the stored, unredacted event"),
    Column("prev_hash", Kind.TEXT, required="yes", description="Hash of the previous event"),
    Column("hash", Kind.TEXT, required="yes", description="HMAC-SHA-256 of this event and "
           "prev_hash under the site's trail key (audit.trail.event_hash): the site can "
           "recompute it from this row (with PHI included); nobody without the key can forge it"),
)


def count_audit_events(ctx: SectionContext) -> int:
    query = select(func.count()).select_from(AuditEvent).where(
        and_(True, *ctx.filters.period_conditions(AuditEvent.occurred_at)))
    return int(ctx.connection.scalar(query) or 0)


def audit_trail_section(ctx: SectionContext) -> SectionData:
    query = (select(AuditEvent.id, AuditEvent.occurred_at, AuditEvent.actor, AuditEvent.action,
                    AuditEvent.entity, AuditEvent.entity_id, AuditEvent.reason,
                    AuditEvent.before, AuditEvent.after, AuditEvent.prev_hash, AuditEvent.hash)
             .where(and_(True, *ctx.filters.period_conditions(AuditEvent.occurred_at)))
             .order_by(AuditEvent.id))

    def chunks() -> Iterator[list[list[Any]]]:
        for part in _stream(ctx.connection, query):
            refs = {} if ctx.include_phi else _pseudonyms(ctx.connection, part)
            yield [_audit_row(row, refs, ctx.include_phi) for row in part]

    return SectionData(AUDIT_COLUMNS, chunks(), rendered=True)


def _audit_row(row: Sequence[Any], refs: Mapping[str, str], include_phi: bool) -> list[Any]:
    event_id, occurred, actor, action, entity, entity_id, reason, before, after, prev, digest = row
    redacted = False
    if not include_phi:
        before, changed_before = redact(before, refs)
        after, changed_after = redact(after, refs)
        redacted = changed_before or changed_after
    stamp = occurred.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    values = (event_id, stamp, actor, action, entity, entity_id, reason, before, after,
              redacted, prev, digest)
    return [v if c.kind == Kind.DATETIME else csvsafe.cell(v, c.kind)
            for v, c in zip(values, AUDIT_COLUMNS, strict=True)]


def _pseudonyms(connection: Connection, rows: Sequence[Sequence[Any]]) -> dict[str, str]:
    """MRN -> patient_ref for every MRN in this chunk's payloads (one query per chunk)."""
    mrns: set[str] = set()
    for row in rows:
        for payload in (row[7], row[8]):
            _collect_phi(payload, mrns)
    if not mrns:
        return {}
    found = connection.execute(select(Patient.mrn, Patient.pseudonym)
                               .where(Patient.mrn.in_(sorted(mrns))))
    return {mrn: ref for mrn, ref in found}


def _collect_phi(payload: Any, into: set[str]) -> None:
    if isinstance(payload, dict):
        for key, value in payload.items():
            if key in PHI_KEYS and isinstance(value, str):
                into.add(value)
            else:
                _collect_phi(value, into)
    elif isinstance(payload, list):
        for item in payload:
            _collect_phi(item, into)


def redact(payload: Any, refs: Mapping[str, str]) -> tuple[Any, bool]:
    """Replace every MRN in an audit payload by the patient's patient_ref (or drop it).

    Returns the redacted copy and whether anything was removed.
    """
    if isinstance(payload, list):
        items = [redact(item, refs) for item in payload]
        return [i for i, _ in items], any(c for _, c in items)
    if not isinstance(payload, dict):
        return payload, False
    out: dict[str, Any] = {}
    changed = False
    for key, value in payload.items():
        if key in PHI_KEYS:
            changed = True
            ref = refs.get(value) if isinstance(value, str) else None
            if ref is not None and "patient_ref" not in payload:
                out["patient_ref"] = ref
            continue
        out[key], inner = redact(value, refs)
        changed = changed or inner
    return out, changed
