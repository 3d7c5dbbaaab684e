"""Audit exports an inspector can trust: CSV files, their dictionary, a manifest and checksums.

An export is a folder (optionally zipped too):

    procedures.csv        the log, one row per procedure, columns in data-dictionary order
    audit_trail.csv       (section audit_trail) the audit events of the period
    data_dictionary.csv   every column of every CSV: file, field, type, unit, allowed values,
                          required, description (the procedure fields come from
                          audit.dictionary, the source validation uses)
    README.txt            what the folder holds and how to check it, in plain words
    manifest.json         export_id, generated_at (UTC), generated_by, tool version, filters,
                          include_phi, and each file's rows, bytes and SHA-256
    SHA256SUMS            `sha256sum -c SHA256SUMS` checks every file, the manifest included

Decisions an auditor may ask about:
- Patient identity. patient_ref (keyed HMAC-SHA-256 pseudonym, stored in patient.pseudonym) is
  always there. Without include_phi the patient_id column is left out altogether (not left
  empty, which would read as missing data); the remaining columns keep dictionary order.
  include_phi needs Permission.EXPORT_PHI (rso); any export needs Permission.EXPORT. Audit
  events carry record snapshots with patient_id: without include_phi it is replaced by the
  patient's patient_ref, and the row is marked redacted.
- Voided records appear only on request (include_voided), with status and void_reason.
- Cells follow audit.csvsafe: UTF-8 with BOM, CRLF, RFC 4180 quoting, ISO 8601 UTC timestamps,
  plain numbers, booleans as true/false, lists ';'-joined, warnings as "field: message" joined
  by "; ", and formula-starting text neutralised with a leading apostrophe (reversibly).
- Period: a date means that whole day in UTC (from is inclusive, to includes its whole day); a
  date-time with an offset is an exact instant (from inclusive, to exclusive).
- Every export writes one audit event (action export, entity "export", entity_id = export_id)
  holding the filters, include_phi and every file's hash, so the database vouches for the
  folder; the folder is written under a temporary name and appears only once that event is
  committed. Nothing is overwritten.
- Streaming: the procedure rows are rendered in SQL (audit.csvsafe.sql_cell) and go from a
  server-side cursor to the file in chunks; memory does not grow with the number of rows. All
  sections of one export read one consistent snapshot.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import uuid
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from importlib import import_module
from itertools import islice
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Select, and_, func, literal, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement, FunctionElement

from audit import __version__, csvsafe
from audit.auth import Actor, Permission, require
from audit.csvsafe import CsvWriter, FileInfo, Kind
from audit.db import write_session
from audit.dictionary import FIELDS
from audit.errors import AuditError, FieldError, ValidationFailed
from audit.models import (
    AuditEvent,
    Patient,
    Physician,
    Procedure,
    ProcedureType,
    Room,
    Setting,
    Site,
    UserAccount,
    utcnow,
)
from audit.trail import record_event
from audit.vocab import AuditAction, RecordStatus

ProgressFn = Callable[[int, int], None]
CHUNK_ROWS = 5000
MANIFEST = "manifest.json"
SUMS = "SHA256SUMS"
DICTIONARY_FILE = "data_dictionary.csv"
README = "README.txt"
FORMAT = "fluoro-audit export 1"
DICTIONARY_HEADER = ("file", "field", "type", "unit", "allowed_values", "required", "description")


class ExportTargetExists(AuditError):
    """The output folder (or zip) exists already: exports never overwrite."""


# --- filters ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class ExportFilters:
    """What to export. Dates are UTC instants: from inclusive, to exclusive (see parse_period).

    Names are matched exactly (site, room and physician by name, procedure by catalog code);
    an unknown name is an error naming the field, not an empty export.
    """

    date_from: datetime | None = None
    date_to: datetime | None = None
    site: str | None = None
    room: str | None = None
    physician: str | None = None
    procedure_code: str | None = None
    include_voided: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The filters as the manifest and the audit event record them."""
        return {
            "from": _iso(self.date_from),
            "before": _iso(self.date_to),
            "site": self.site,
            "room": self.room,
            "physician": self.physician,
            "procedure_code": self.procedure_code,
            "include_voided": self.include_voided,
        }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else csvsafe.timestamp_text(moment)


def parse_period(date_from: str | date | datetime | None,
                 date_to: str | date | datetime | None) -> tuple[datetime | None,
                                                                  datetime | None]:
    """Turn --from / --to into UTC bounds [from, to).

    A date (2026-03-31) is a whole UTC day: from starts at its midnight, to ends after it. A
    date-time needs an offset and is taken exactly.
    """
    start = _bound("from", date_from, end=False)
    stop = _bound("to", date_to, end=True)
    if start is not None and stop is not None and stop <= start:
        raise ValidationFailed([FieldError("to", f"{_iso(stop)} is not after from "
                                           f"{_iso(start)}; give a period that ends after it "
                                           "starts")])
    return start, stop


def _bound(name: str, raw: str | date | datetime | None, *, end: bool) -> datetime | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, datetime):
        moment = raw
    elif isinstance(raw, date):
        return datetime.combine(raw + timedelta(days=1 if end else 0), time.min, tzinfo=UTC)
    else:
        text = str(raw).strip()
        try:
            if len(text) == 10:  # YYYY-MM-DD: a whole UTC day
                return _bound(name, date.fromisoformat(text), end=end)
            moment = datetime.fromisoformat(text.replace("z", "Z"))
        except ValueError:
            raise ValidationFailed([FieldError(name, f"{text!r} is not a date; use YYYY-MM-DD "
                                               "(a whole UTC day) or an ISO 8601 date-time "
                                               "with offset")]) from None
    if moment.tzinfo is None:
        raise ValidationFailed([FieldError(name, f"{raw} has no UTC offset; give a date "
                                           "(YYYY-MM-DD) or a date-time with offset, e.g. "
                                           "2026-03-14T00:00:00-05:00")])
    return moment.astimezone(UTC)


# --- sections --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Column:
    """One CSV column and its data-dictionary entry."""

    name: str
    kind: str
    unit: str = ""
    allowed: str = ""
    required: str = ""
    description: str = ""


@dataclass
class SectionContext:
    """What a section function gets: one read connection (a consistent snapshot shared by every
    section of the export), the filters, whether PHI may be written, and the settings."""

    connection: Connection
    filters: ExportFilters
    include_phi: bool
    settings: Mapping[str, Any]

    @property
    def dialect(self) -> str:
        return self.connection.dialect.name


@dataclass
class SectionData:
    """A section's columns and its rows in chunks.

    `rendered=True`: cells are final (rendered in SQL with csvsafe.sql_cell); otherwise each
    value is rendered with csvsafe.cell by its column's kind.
    """

    columns: Sequence[Column]
    chunks: Iterable[Sequence[Sequence[Any]]]
    rendered: bool = False

    @classmethod
    def from_rows(cls, columns: Sequence[Column], rows: Iterable[Sequence[Any]],
                  chunk: int | None = None) -> SectionData:
        """Rows of Python values (tuples in column order), e.g. from a SQL aggregate."""
        iterator = iter(rows)
        chunk = chunk or CHUNK_ROWS
        return cls(columns, iter(lambda: list(islice(iterator, chunk)), []))

    @classmethod
    def from_frame(cls, columns: Sequence[Column], frame: Any) -> SectionData:
        """A pandas DataFrame whose columns include every Column name (in any order)."""
        names = [c.name for c in columns]
        missing = [n for n in names if n not in frame.columns]
        if missing:
            raise ValueError(f"the frame lacks columns {missing}")
        return cls.from_rows(columns, frame[names].itertuples(index=False, name=None))


@dataclass(frozen=True)
class Section:
    """A file of an export. `build` (or "module:function") returns its SectionData; `count`
    returns its row count with the same filters, for the progress total and the page."""

    name: str
    filename: str
    title: str
    build: Callable[[SectionContext], SectionData] | str
    count: Callable[[SectionContext], int] | str | None = None
    #: The filters this section honours (recorded in the manifest) ...
    honours: tuple[str, ...] = ()
    #: ... and the timestamp the period (from, before) applies to.
    period_of: str | None = None

    def _resolve(self, target: Callable[..., Any] | str) -> Callable[..., Any]:
        if callable(target):
            return target
        module, _, attr = target.partition(":")
        return getattr(import_module(module), attr)

    def run(self, ctx: SectionContext) -> SectionData:
        return self._resolve(self.build)(ctx)

    def rows(self, ctx: SectionContext) -> int | None:
        return None if self.count is None else int(self._resolve(self.count)(ctx))


SECTIONS: dict[str, Section] = {}


def register_section(section: Section) -> None:
    """Add (or replace) an export section by name: how the summaries plug in.

    A section is one CSV file of an export. Its function takes a SectionContext and returns
    SectionData:

        def compliance_section(ctx: SectionContext) -> SectionData:
            frame = compliance_by_group(ctx.connection, ctx.filters)   # SQL aggregate
            return SectionData.from_frame(COMPLIANCE_COLUMNS, frame)

    - ctx.connection is the export's read snapshot (use it, not a new session, so every file
      of the export shows the same data); ctx.filters are the export's filters (apply the ones
      that make sense and list them in Section.honours); ctx.include_phi says whether
      patient_id may appear (a summary should never need it).
    - Columns carry the data-dictionary entry written to data_dictionary.csv; their kind
      decides rendering (csvsafe.cell): numbers stay numbers, text is neutralised, datetimes
      become ISO 8601 UTC. Rows are Python values in column order (from_rows) or a DataFrame
      (from_frame); large sections should stream chunks (SectionData(columns, chunks)).
    - `count` (optional) returns the row count with the same filters, for progress.
    """
    SECTIONS[section.name] = section


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


def _procedure_conditions(f: ExportFilters) -> list[ColumnElement[bool]]:
    """Filters as conditions on the procedure table alone (names resolved by subquery), so the
    count needs no joins."""
    conditions: list[ColumnElement[bool]] = []
    if not f.include_voided:
        conditions.append(Procedure.status == RecordStatus.FINAL.value)
    if f.date_from is not None:
        conditions.append(Procedure.performed_at >= f.date_from)
    if f.date_to is not None:
        conditions.append(Procedure.performed_at < f.date_to)
    if f.site:
        conditions.append(Procedure.site_id.in_(select(Site.id).where(Site.name == f.site)))
    if f.room:
        rooms = select(Room.id).where(Room.name == f.room)
        if f.site:
            rooms = rooms.where(Room.site_id.in_(select(Site.id).where(Site.name == f.site)))
        conditions.append(Procedure.room_id.in_(rooms))
    if f.physician:
        conditions.append(Procedure.physician_id.in_(
            select(Physician.id).where(Physician.name == f.physician)))
    if f.procedure_code:
        conditions.append(Procedure.procedure_type_id.in_(
            select(ProcedureType.id).where(ProcedureType.code == f.procedure_code)))
    return conditions


def procedure_log_query(filters: ExportFilters, include_phi: bool,
                        annual_background_msv: float = 3.1) -> Select[Any]:
    """One SELECT that yields the procedure log's rows already rendered as CSV cells."""
    cells: list[ColumnElement[Any]] = []
    for column in procedure_columns(include_phi):
        if column.name == "levels":  # rendered (items neutralised) by the aggregate itself
            cells.append(sql_levels(Procedure.id).label(column.name))
            continue
        if column.name == "warnings":
            cells.append(sql_warnings(Procedure.warnings).label(column.name))
            continue
        if column.name == "background_days":
            raw: ColumnElement[Any] | None = csvsafe.sql_round(
                Procedure.effective_dose_msv * 365.0 / literal(float(annual_background_msv)), 1)
        else:
            raw = _JOINED.get(column.name, getattr(Procedure, column.name, None))
        if raw is None:
            raise AssertionError(f"dictionary field {column.name} has no source column")
        cells.append(csvsafe.sql_cell(raw, column.kind).label(column.name))
    return (
        select(*cells)
        .select_from(Procedure)
        .join(Site, Site.id == Procedure.site_id)
        .join(Room, Room.id == Procedure.room_id)
        .join(Physician, Physician.id == Procedure.physician_id)
        .join(UserAccount, UserAccount.id == Procedure.technologist_id)
        .join(Patient, Patient.id == Procedure.patient_id)
        .join(ProcedureType, ProcedureType.id == Procedure.procedure_type_id)
        .where(and_(True, *_procedure_conditions(filters)))
        .order_by(Procedure.performed_at, Procedure.id)
    )


def _stream(connection: Connection, query: Select[Any],
            chunk: int | None = None) -> Iterator[Sequence[Sequence[Any]]]:
    """Rows from a server-side cursor (PostgreSQL) or SQLite's stepping cursor, in chunks."""
    chunk = chunk or CHUNK_ROWS
    result = connection.execution_options(stream_results=True, max_row_buffer=chunk,
                                          yield_per=chunk).execute(query)
    try:
        yield from result.partitions(chunk)
    finally:
        result.close()


def count_procedures(ctx: SectionContext) -> int:
    query = select(func.count()).select_from(Procedure).where(
        and_(True, *_procedure_conditions(ctx.filters)))
    return int(ctx.connection.scalar(query) or 0)


def procedures_section(ctx: SectionContext) -> SectionData:
    annual = float(ctx.settings.get("annual_background_msv", 3.1))
    query = procedure_log_query(ctx.filters, ctx.include_phi, annual)
    return SectionData(procedure_columns(ctx.include_phi), _stream(ctx.connection, query),
                       rendered=True)


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
    Column("hash", Kind.TEXT, required="yes", description="SHA-256 of this event and prev_hash "
           "(audit.trail.event_hash); with PHI included it can be recomputed from this row"),
)


def _audit_conditions(f: ExportFilters) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if f.date_from is not None:
        conditions.append(AuditEvent.occurred_at >= f.date_from)
    if f.date_to is not None:
        conditions.append(AuditEvent.occurred_at < f.date_to)
    return conditions


def count_audit_events(ctx: SectionContext) -> int:
    query = select(func.count()).select_from(AuditEvent).where(
        and_(True, *_audit_conditions(ctx.filters)))
    return int(ctx.connection.scalar(query) or 0)


def audit_trail_section(ctx: SectionContext) -> SectionData:
    query = (select(AuditEvent.id, AuditEvent.occurred_at, AuditEvent.actor, AuditEvent.action,
                    AuditEvent.entity, AuditEvent.entity_id, AuditEvent.reason,
                    AuditEvent.before, AuditEvent.after, AuditEvent.prev_hash, AuditEvent.hash)
             .where(and_(True, *_audit_conditions(ctx.filters)))
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


# --- built-in sections -----------------------------------------------------------------------

register_section(Section(
    "procedures", "procedures.csv", "The procedure log, one row per procedure",
    procedures_section, count_procedures,
    honours=("from", "before", "site", "room", "physician", "procedure_code",
             "include_voided"), period_of="performed_at",
))
register_section(Section(
    "audit_trail", "audit_trail.csv", "Audit events of the period (who changed what, when)",
    audit_trail_section, count_audit_events, honours=("from", "before"),
    period_of="occurred_at",
))
# The summaries plug in here (see register_section for the contract), one register_section
# each, naming their function as "module:function" so this file imports nothing of them until
# an export asks for them (they land from audit/metrics.py and audit/references.py):
#
#   register_section(Section("compliance", "compliance.csv",
#       "Contrast-confirmation compliance by physician, room, procedure and month",
#       "audit.metrics:compliance_section", honours=(...)))
#   register_section(Section("dose", "dose_by_procedure.csv",
#       "Dose statistics and local reference levels by procedure",
#       "audit.references:dose_section", honours=(...)))
#   register_section(Section("alerts", "alerts.csv",
#       "Dose alerts with their acknowledgement", "audit.references:alerts_section", ...))
#
# A section function takes a SectionContext (ctx.connection is the export's snapshot,
# ctx.filters its filters, ctx.include_phi whether patient_id may appear) and returns
# SectionData.from_rows(columns, rows) or SectionData.from_frame(columns, frame): Python values,
# rendered here by column kind (numbers stay numbers, text is neutralised). Aggregate in SQL;
# never put patient_id in a summary unless ctx.include_phi.

#: What `fluoro-audit export KIND` writes.
KINDS: dict[str, tuple[str, ...]] = {
    "log": ("procedures",),
    "audit-trail": ("audit_trail",),
}


# --- running an export -----------------------------------------------------------------------

@dataclass
class ExportResult:
    export_id: str
    path: Path
    zip_path: Path | None
    files: list[FileInfo]
    manifest: dict[str, Any]
    audit_event_id: int

    @property
    def rows(self) -> dict[str, int]:
        return {f.name: f.rows for f in self.files}


@contextmanager
def _snapshot(engine: Engine) -> Iterator[Connection]:
    """One read transaction for the whole export: every section and count sees the same data
    (SQLite: a WAL read snapshot; PostgreSQL: REPEATABLE READ, read only)."""
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection = connection.execution_options(isolation_level="REPEATABLE READ",
                                                      postgresql_readonly=True)
        with connection.begin():
            yield connection


def _settings(connection: Connection) -> dict[str, Any]:
    return {k: v for k, v in connection.execute(select(Setting.key, Setting.value))
            if k != "pseudonym_secret"}


def check_filters(connection: Connection, filters: ExportFilters) -> ExportFilters:
    """Refuse names that match nothing (an empty export by typo is worse than an error)."""
    errors: list[FieldError] = []
    code = filters.procedure_code.strip().upper() if filters.procedure_code else None

    def known(name: str, value: str | None, column: Any) -> None:
        if not value:
            return
        if connection.scalar(select(func.count()).where(column == value)):
            return
        names = connection.scalars(select(column).distinct().order_by(column).limit(30)).all()
        errors.append(FieldError(name, f"no {name} named {value!r}; known: "
                                 f"{', '.join(repr(n) for n in names) or 'none'}"))

    known("site", filters.site, Site.name)
    known("room", filters.room, Room.name)
    known("physician", filters.physician, Physician.name)
    known("procedure", code, ProcedureType.code)
    if errors:
        raise ValidationFailed(errors)
    return replace(filters, procedure_code=code)


def _sections(names: Sequence[str]) -> list[Section]:
    unknown = [n for n in names if n not in SECTIONS]
    if unknown or not names:
        raise ValidationFailed([FieldError("sections", f"unknown: {', '.join(unknown) or 'none'};"
                                           f" allowed: {', '.join(SECTIONS)}")])
    return [SECTIONS[n] for n in dict.fromkeys(names)]


def _authorise(actor: Actor, include_phi: bool) -> None:
    require(actor, Permission.EXPORT)
    if include_phi:
        require(actor, Permission.EXPORT_PHI)


def filter_choices(engine: Engine) -> dict[str, list[str]]:
    """The names the filters accept (for the page's pick lists): sites, rooms, physicians and
    procedure codes, sorted."""
    with engine.connect() as connection:
        def names(column: Any) -> list[str]:
            return list(connection.scalars(select(column).distinct().order_by(column)))

        return {"site": names(Site.name), "room": names(Room.name),
                "physician": names(Physician.name), "procedure": names(ProcedureType.code)}


def count_rows(engine: Engine, actor: Actor, filters: ExportFilters | None = None,
               sections: Sequence[str] = ("procedures",)) -> dict[str, int | None]:
    """Rows each section would export with these filters (what the page shows beforehand)."""
    _authorise(actor, False)
    chosen = _sections(sections)
    with _snapshot(engine) as connection:
        checked = check_filters(connection, filters or ExportFilters())
        ctx = SectionContext(connection, checked, False, _settings(connection))
        return {s.name: s.rows(ctx) for s in chosen}


def export(
    engine: Engine,
    actor: Actor,
    out: Path | str,
    *,
    sections: Sequence[str] = ("procedures",),
    filters: ExportFilters | None = None,
    include_phi: bool = False,
    make_zip: bool = False,
    progress: ProgressFn | None = None,
) -> ExportResult:
    """Write an export folder at `out` (and `out`.zip with make_zip); audit it.

    Raises PermissionDenied (no EXPORT, or include_phi without EXPORT_PHI), ValidationFailed
    (unknown section or filter name), ExportTargetExists. On any failure nothing is left behind.
    """
    _authorise(actor, include_phi)
    chosen = _sections(sections)
    target = Path(out)
    zip_path = target.with_name(target.name + ".zip") if make_zip else None
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ExportTargetExists(f"{target} exists and is not an empty folder; exports never "
                                 "overwrite: choose a new folder")
    if zip_path is not None and zip_path.exists():
        raise ExportTargetExists(f"{zip_path} exists; exports never overwrite")
    export_id = uuid.uuid4().hex
    generated_at = utcnow()
    staging = target.with_name(f".{target.name}.partial-{export_id[:8]}")
    staging.mkdir(parents=True)
    try:
        with _snapshot(engine) as connection:
            checked = check_filters(connection, filters or ExportFilters())
            ctx = SectionContext(connection, checked, include_phi, _settings(connection))
            files, columns = _write_sections(staging, chosen, ctx, progress)
        files.append(_write_dictionary(staging, columns))
        files.append(_write_readme(staging, export_id, generated_at, actor, chosen, checked,
                                   include_phi, files))
        manifest = _manifest(export_id, generated_at, actor, chosen, checked, include_phi, files)
        _write_json(staging / MANIFEST, manifest)
        listed = [*files, _file_info(staging / MANIFEST)]
        _write_sums(staging / SUMS, listed)
        event_id = _audit(engine, actor, export_id, chosen, checked, include_phi, listed)
        if target.exists():
            target.rmdir()
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if zip_path is not None:
        _zip(target, zip_path)
    return ExportResult(export_id, target, zip_path, files, manifest, event_id)


def _write_sections(folder: Path, sections: Sequence[Section], ctx: SectionContext,
                    progress: ProgressFn | None) -> tuple[list[FileInfo],
                                                         dict[str, Sequence[Column]]]:
    totals = [s.rows(ctx) for s in sections]
    total = sum(t or 0 for t in totals)
    done = 0
    if progress:
        progress(0, total)
    files: list[FileInfo] = []
    columns: dict[str, Sequence[Column]] = {}
    for section in sections:
        data = section.run(ctx)
        kinds = [c.kind for c in data.columns]
        with CsvWriter(folder / section.filename, [c.name for c in data.columns]) as writer:
            for chunk in data.chunks:
                if not data.rendered:
                    chunk = [[csvsafe.cell(v, k) for v, k in zip(row, kinds, strict=True)]
                             for row in chunk]
                writer.write(chunk)
                done += len(chunk)
                if progress:
                    progress(done, max(total, done))
        assert writer.info is not None
        files.append(writer.info)
        columns[section.filename] = data.columns
    if progress:
        progress(done, done)
    return files, columns


def _write_dictionary(folder: Path, columns: Mapping[str, Sequence[Column]]) -> FileInfo:
    rows = [[filename, c.name, c.kind, c.unit, c.allowed, c.required, c.description]
            for filename, cols in columns.items() for c in cols]
    rendered = [[csvsafe.cell(v, Kind.TEXT) for v in row] for row in rows]
    return csvsafe.write_rows(folder / DICTIONARY_FILE, DICTIONARY_HEADER, rendered)


def _write_readme(folder: Path, export_id: str, generated_at: datetime, actor: Actor,
                  sections: Sequence[Section], filters: ExportFilters, include_phi: bool,
                  files: Sequence[FileInfo]) -> FileInfo:
    """README.txt: what the folder holds and how to check it, for whoever opens the zip."""
    titles = {s.filename: s.title for s in sections}
    titles[DICTIONARY_FILE] = "Every column of every CSV: type, unit, allowed values, meaning"
    width = max(len(f.name) for f in files) + 2
    listing = [f"  {f.name:<{width}}{f'{f.rows:,} rows':>14}  {titles.get(f.name, '')}"
               for f in files if f.rows is not None]
    blank = " " * 16
    applied = [f"{k}={v}" for k, v in filters.as_dict().items() if v not in (None, False)]
    identity = ("INCLUDES patient_id (medical record numbers): protected health information; "
                "keep it secure." if include_phi else
                "patients appear only as patient_ref, a keyed pseudonym (HMAC-SHA-256 with the "
                "site's secret): stable across exports, not reversible.")
    lines = [
        f"fluoro-audit export {export_id}",
        f"Generated {csvsafe.timestamp_text(generated_at)} by {actor.username} "
        f"({actor.role.value}) with fluoro-audit {__version__}.",
        f"Patient identity: {identity}",
        f"Filters: {', '.join(applied) or 'none (everything)'}; voided records "
        f"{'included (status void, with void_reason)' if filters.include_voided else 'left out'}.",
        "",
        "Files",
        *listing,
        f"  {README:<{width}}{blank}this file",
        f"  {MANIFEST:<{width}}{blank}what was exported, with which filters; each file's rows, "
        "size and SHA-256",
        f"  {SUMS:<{width}}{blank}SHA-256 of every file",
        "",
        "Checking the files",
        "  Linux or macOS, in this folder:   sha256sum -c SHA256SUMS   (every line must say OK)",
        "  Windows PowerShell:               Get-FileHash -Algorithm SHA256 <file>",
        "  fluoro-audit:                     fluoro-audit verify-export <folder or zip>",
        "                                    (also recounts the rows of each CSV)",
        f"  The export is recorded in the fluoro-audit audit trail (action export, entity_id "
        f"{export_id}) with the SHA-256 of every file.",
        "",
        "Reading the CSV files",
        "  UTF-8 with a byte-order mark, comma-separated, CRLF line ends, RFC 4180 quoting.",
        "  Times are ISO 8601 in UTC (2026-03-14T14:30:00Z). Numbers use '.' as the decimal",
        "  mark and no thousands separator. Lists are separated by ';'.",
        "  Text that a spreadsheet could take for a formula (starting with = + - @, tab, CR or",
        "  LF) begins with an apostrophe ('), and so does text that itself began with one:",
        "  remove one leading apostrophe (from each list item) to get the stored text.",
    ]
    path = folder / README
    with open(path, "x", encoding="utf-8", newline="\r\n") as handle:
        handle.write("\n".join(lines) + "\n")
    return _file_info(path)


def _manifest(export_id: str, generated_at: datetime, actor: Actor, sections: Sequence[Section],
              filters: ExportFilters, include_phi: bool,
              files: Sequence[FileInfo]) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "export_id": export_id,
        "generated_at": csvsafe.timestamp_text(generated_at),
        "generated_by": actor.username,
        "generated_by_role": actor.role.value,
        "tool": "fluoro-audit",
        "tool_version": __version__,
        "include_phi": include_phi,
        "filters": filters.as_dict(),
        "sections": [{"name": s.name, "file": s.filename, "title": s.title,
                      "filters": list(s.honours), "period_of": s.period_of}
                     for s in sections],
        "files": [f.as_dict() for f in files],
        "csv": {"encoding": "UTF-8 with BOM", "line_end": "CRLF", "quoting": "RFC 4180",
                "timestamps": "ISO 8601 UTC", "formula_guard": "leading apostrophe; restore by "
                "removing one leading apostrophe from a text cell"},
        "audit_event": "the export is recorded in the audit trail: action export, entity "
                       "export, entity_id = export_id, with every file's SHA-256",
    }


def _write_json(path: Path, payload: Mapping[str, Any]) -> None:
    with open(path, "x", encoding="utf-8", newline="\n") as handle:
        json.dump(payload, handle, indent=2, ensure_ascii=False)
        handle.write("\n")


def _file_info(path: Path) -> FileInfo:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return FileInfo(path.name, None, path.stat().st_size, digest.hexdigest())


def _write_sums(path: Path, files: Sequence[FileInfo]) -> None:
    """GNU coreutils format: "<hex>  <name>" (two spaces: text mode), LF line ends."""
    lines = "".join(f"{f.sha256}  {f.name}\n" for f in sorted(files, key=lambda f: f.name))
    with open(path, "x", encoding="ascii", newline="\n") as handle:
        handle.write(lines)


def _audit(engine: Engine, actor: Actor, export_id: str, sections: Sequence[Section],
           filters: ExportFilters, include_phi: bool, files: Sequence[FileInfo]) -> int:
    with write_session(engine) as session:
        event = record_event(
            session, actor=actor.username, action=AuditAction.EXPORT, entity="export",
            entity_id=export_id,
            after={"sections": [s.name for s in sections], "filters": filters.as_dict(),
                   "include_phi": include_phi,
                   "files": [f.as_dict() for f in files]},
        )
        return int(event.id)


def _zip(folder: Path, zip_path: Path) -> None:
    partial = zip_path.with_name(f".{zip_path.name}.partial")
    try:
        with zipfile.ZipFile(partial, "x", compression=zipfile.ZIP_DEFLATED,
                             compresslevel=6) as archive:
            for path in sorted(folder.iterdir()):
                archive.write(path, f"{folder.name}/{path.name}")
        os.replace(partial, zip_path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


# --- verifying an export ---------------------------------------------------------------------

@dataclass
class VerifyReport:
    """What verify_export found; `problems` names each file and what differs."""

    path: Path
    checked: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def message(self) -> str:
        if self.ok:
            return (f"export intact: {len(self.checked)} files match SHA256SUMS and the "
                    f"manifest ({', '.join(self.checked)})")
        return "export DOES NOT MATCH:\n" + "\n".join(f"  {p}" for p in self.problems)


def verify_export(path: Path | str) -> VerifyReport:
    """Recheck an export folder (or its zip): every SHA-256 in SHA256SUMS and the manifest,
    byte sizes, CSV record counts (read with the csv module), and files nobody listed."""
    path = Path(path)
    if path.is_file() and zipfile.is_zipfile(path):
        return _verify_zip(path)
    report = VerifyReport(path)
    if not path.is_dir():
        report.problems.append(f"{path}: not an export folder or zip")
        return report
    sums = _read_sums(path / SUMS, report)
    manifest = _read_manifest(path / MANIFEST, report)
    listed = {e.get("name"): e for e in manifest.get("files", []) if isinstance(e, dict)}
    present = {p.name for p in path.iterdir() if p.is_file()}
    for name in sorted(present - set(sums) - {SUMS}):
        report.problems.append(f"{name}: present but not listed in {SUMS}")
    for name in sorted(set(sums) | set(listed)):
        file = path / name
        if "/" in name or name.startswith(".."):
            report.problems.append(f"{name}: not a plain file name")
            continue
        if not file.is_file():
            report.problems.append(f"{name}: listed but missing")
            continue
        actual = _file_info(file)
        if name in sums and sums[name] != actual.sha256:
            report.problems.append(f"{name}: SHA-256 differs from {SUMS} (expected "
                                   f"{sums[name]}, found {actual.sha256})")
        if name != MANIFEST and name not in listed:
            report.problems.append(f"{name}: not listed in {MANIFEST}")
        entry = listed.get(name)
        if entry is not None:
            _compare_entry(file, entry, actual, report)
        report.checked.append(name)
    return report


def _compare_entry(file: Path, entry: Mapping[str, Any], actual: FileInfo,
                   report: VerifyReport) -> None:
    name = file.name
    if entry.get("sha256") != actual.sha256:
        report.problems.append(f"{name}: SHA-256 differs from {MANIFEST} (expected "
                               f"{entry.get('sha256')}, found {actual.sha256})")
    if entry.get("bytes") != actual.bytes:
        report.problems.append(f"{name}: {actual.bytes} bytes, {MANIFEST} says "
                               f"{entry.get('bytes')}")
    if name.endswith(".csv") and isinstance(entry.get("rows"), int):
        try:
            rows = csvsafe.count_records(file)
        except (UnicodeDecodeError, csv.Error) as exc:
            report.problems.append(f"{name}: not readable as UTF-8 CSV ({exc})")
            return
        if rows != entry["rows"]:
            report.problems.append(f"{name}: {rows} records, {MANIFEST} says {entry['rows']}")


_SUMS_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")


def _read_sums(path: Path, report: VerifyReport) -> dict[str, str]:
    """SHA256SUMS in GNU format: "<hex>  <name>" (or "<hex> *<name>", binary mode)."""
    if not path.is_file():
        report.problems.append(f"{SUMS}: missing")
        return {}
    sums: dict[str, str] = {}
    for number, line in enumerate(path.read_text("utf-8", errors="replace").splitlines(), 1):
        match = _SUMS_LINE.match(line)
        if match is None:
            report.problems.append(f"{SUMS}: line {number} is not '<sha256>  <file>'")
            continue
        sums[match[2]] = match[1].lower()
    return sums


def _read_manifest(path: Path, report: VerifyReport) -> dict[str, Any]:
    if not path.is_file():
        report.problems.append(f"{MANIFEST}: missing")
        return {}
    try:
        manifest = json.loads(path.read_text("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        report.problems.append(f"{MANIFEST}: not valid JSON ({exc})")
        return {}
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        report.problems.append(f"{MANIFEST}: not a fluoro-audit export manifest (expected "
                               f"format {FORMAT!r})")
        return manifest if isinstance(manifest, dict) else {}
    return manifest


def _verify_zip(path: Path) -> VerifyReport:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        tops = {n.split("/", 1)[0] for n in names}
        if len(tops) != 1 or any(n.startswith("/") or ".." in n.split("/") for n in names):
            report = VerifyReport(path)
            report.problems.append(f"{path.name}: expected one export folder inside")
            return report
        archive.extractall(tmp)
        inner = verify_export(Path(tmp) / tops.pop())
    inner.path = path
    return inner
