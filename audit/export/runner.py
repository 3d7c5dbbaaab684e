"""Audit exports an inspector can trust: CSV files, their dictionary, a manifest and checksums.

An export is a folder (optionally zipped too):

    procedures.csv        the log, one row per procedure, columns in data-dictionary order
    audit_trail.csv       (section audit_trail) the audit events of the period
    compliance.csv        (section compliance) contrast-confirmation compliance, overall and
                          by physician, room, procedure and month
    dose_by_procedure.csv (section dose) n, median and 75th percentile of each dose quantity
                          per procedure, beside the local DRL / achievable / typical value
    reference_levels.csv  (section reference_levels) the stored reference levels (published,
                          adopted) and the SRDL settings, each with its kind and source
    alerts.csv            (section alerts) dose alerts with their latest acknowledgement
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
- Cells follow audit.export.cells: UTF-8 with BOM, CRLF, RFC 4180 quoting, ISO 8601 UTC timestamps,
  plain numbers, booleans as true/false, lists ';'-joined, warnings as "field: message" joined
  by "; ", and formula-starting text neutralised with a leading apostrophe (reversibly).
- Period: a date means that whole day in UTC (from is inclusive, to includes its whole day); a
  date-time with an offset is an exact instant (from inclusive, to exclusive).
- Every export writes one audit event (action export, entity "export", entity_id = export_id)
  holding the filters, include_phi and every file's hash, so the database vouches for the
  folder; the folder is written under a temporary name and appears only once that event is
  committed. Nothing is overwritten.
- Streaming: the procedure rows are rendered in SQL (audit.export.cells.sql_cell) and go from a
  server-side cursor to the file in chunks; memory does not grow with the number of rows. On
  SQLite each row arrives as a whole CSV record (audit.export.cells.sql_csv_line), one string per
  row instead of one Python object per cell, and a chunk is written with one join; tests hold
  those records equal to csv.writer's. All sections of one export read one consistent snapshot.
- The audit trail's free-text reasons are exported as written. Its occurred_at keeps
  microseconds, so with PHI included each row's hash can be recomputed from the file.

- Summaries are the dashboards' figures, computed by the functions the pages and `fluoro-audit
  report` call, on the frame read inside the export's snapshot (audit.export.summaries); their
  period must be whole UTC days. Alerts are refreshed before the snapshot is taken.

Modules: this one runs an export and holds the section registry; audit.export.sections has the
procedure log and audit trail queries; audit.export.summaries the summaries;
audit.export.verify checks an export without a database; audit.export.cells has the cell rules and
the CSV writer.
"""

from __future__ import annotations

import json
import os
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

from sqlalchemy import Connection, Engine, func, select

from audit import __version__
from audit.auth import Actor, Permission, require
from audit.errors import AuditError, FieldError, ValidationFailed
from audit.export import cells as csvsafe
from audit.export.cells import CsvWriter, FileInfo, Kind
from audit.export.verify import FORMAT, MANIFEST, SUMS, sha256_file, write_sums
from audit.export.verify import VerifyReport as VerifyReport  # re-exported: the public API
from audit.export.verify import verify_export as verify_export
from audit.settings import Settings, load_public_settings
from audit.storage.engine import retrying, write_session
from audit.storage.models import (
    Physician,
    ProcedureType,
    Room,
    Site,
    utcnow,
)
from audit.trail import record_event
from audit.vocab import AuditAction

ProgressFn = Callable[[int, int], None]
CHUNK_ROWS = 5000
DICTIONARY_FILE = "data_dictionary.csv"
README = "README.txt"
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
    section of the export), the filters, whether PHI may be written, and the settings.
    `cache` is shared by the sections of one export (and filled by their `prepare` steps),
    e.g. for an analysis frame several summaries use."""

    connection: Connection
    filters: ExportFilters
    include_phi: bool
    settings: Settings
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def dialect(self) -> str:
        return self.connection.dialect.name


@dataclass
class SectionData:
    """A section's columns and its rows in chunks.

    `rendered=True`: cells are final (rendered in SQL with csvsafe.sql_cell); otherwise each
    value is rendered with csvsafe.cell by its column's kind. `lines=True`: each chunk is a
    sequence of whole CSV records (str, no line end; csvsafe.sql_csv_line).
    """

    columns: Sequence[Column]
    chunks: Iterable[Sequence[Any]]
    rendered: bool = False
    lines: bool = False

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
    #: Work before the export's read snapshot is taken, e.g. a write the section's data
    #: depends on (refreshing the stored alerts): (engine, ctx.cache) -> None.
    prepare: Callable[[Engine, dict[str, Any]], None] | str | None = None

    def _resolve(self, target: Callable[..., Any] | str) -> Callable[..., Any]:
        if callable(target):
            return target
        module, _, attr = target.partition(":")
        return getattr(import_module(module), attr)

    def run(self, ctx: SectionContext) -> SectionData:
        return self._resolve(self.build)(ctx)

    def rows(self, ctx: SectionContext) -> int | None:
        return None if self.count is None else int(self._resolve(self.count)(ctx))

    def prepare_for(self, engine: Engine, cache: dict[str, Any]) -> None:
        if self.prepare is not None:
            self._resolve(self.prepare)(engine, cache)


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


# --- built-in sections -----------------------------------------------------------------------

register_section(Section(
    "procedures", "procedures.csv", "The procedure log, one row per procedure",
    "audit.export.sections:procedures_section", "audit.export.sections:count_procedures",
    honours=("from", "before", "site", "room", "physician", "procedure_code",
             "include_voided"), period_of="performed_at",
))
register_section(Section(
    "audit_trail", "audit_trail.csv", "Audit events of the period (who changed what, when)",
    "audit.export.sections:audit_trail_section", "audit.export.sections:count_audit_events",
    honours=("from", "before"), period_of="occurred_at",
))
# The summaries (audit.export.summaries): the dashboards' figures, computed by the same
# functions. Named as "module:function", so this file imports nothing of them until an export
# asks for them.
_SUMMARY_FILTERS = ("from", "before", "site", "room", "physician", "procedure_code")
register_section(Section(
    "compliance", "compliance.csv",
    "Contrast-confirmation compliance, overall and by physician, room, procedure and month",
    "audit.export.summaries:compliance_section", honours=_SUMMARY_FILTERS,
    period_of="performed_at",
))
register_section(Section(
    "dose", "dose_by_procedure.csv",
    "Dose statistics by procedure beside the local reference levels (DRL, achievable, typical)",
    "audit.export.summaries:dose_section", honours=_SUMMARY_FILTERS, period_of="performed_at",
))
register_section(Section(
    "reference_levels", "reference_levels.csv",
    "Reference levels in use: published, adopted and the SRDLs, each with its source",
    "audit.export.summaries:reference_section", honours=("procedure_code",),
))
register_section(Section(
    "alerts", "alerts.csv", "Dose alerts with their acknowledgement",
    "audit.export.summaries:alerts_section", "audit.export.summaries:count_alerts",
    honours=_SUMMARY_FILTERS, period_of="performed_at",
    prepare="audit.export.summaries:refresh_stored_alerts",
))

#: What `fluoro-audit export KIND` writes.
KINDS: dict[str, tuple[str, ...]] = {
    "log": ("procedures",),
    "audit-trail": ("audit_trail",),
    "summary": ("compliance", "dose", "reference_levels", "alerts"),
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
    def rows(self) -> dict[str, int | None]:
        """Data records of each file (None for files that are not CSV)."""
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
        ctx = SectionContext(connection, checked, False, load_public_settings(connection))
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
        cache: dict[str, Any] = {}
        if any(s.prepare for s in chosen):  # before the snapshot: writes its data depends on
            with engine.connect() as connection:  # (but not for a typo in a filter)
                check_filters(connection, filters or ExportFilters())
            for section in chosen:
                section.prepare_for(engine, cache)
        with _snapshot(engine) as connection:
            checked = check_filters(connection, filters or ExportFilters())
            settings = load_public_settings(connection)
            ctx = SectionContext(connection, checked, include_phi, settings, cache)
            files, columns = _write_sections(staging, chosen, ctx, progress)
        files.append(_write_dictionary(staging, columns))
        files.append(_write_readme(staging, export_id, generated_at, actor, chosen, checked,
                                   include_phi, files))
        manifest = _manifest(export_id, generated_at, actor, chosen, checked, include_phi, files)
        _write_json(staging / MANIFEST, manifest)
        listed = [*files, sha256_file(staging / MANIFEST)]
        write_sums(staging / SUMS, listed)
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
                if data.lines:
                    writer.write_lines(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, max(total, done))
                    continue
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
    return sha256_file(path)


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
                "timestamps": "ISO 8601 UTC", "lists": "';'-separated",
                "formula_guard": "a leading apostrophe on text starting with = + - @ tab CR LF "
                "or an apostrophe; restore by removing one leading apostrophe from each text "
                "cell (from each item of a list cell)"},
        "audit_event": "the export is recorded in the audit trail: action export, entity "
                       "export, entity_id = export_id, with every file's SHA-256",
    }


def _write_json(path: Path, payload: Mapping[str, Any]) -> None:
    with open(path, "x", encoding="utf-8", newline="\n") as handle:
        json.dump(payload, handle, indent=2, ensure_ascii=False)
        handle.write("\n")


def _audit(engine: Engine, actor: Actor, export_id: str, sections: Sequence[Section],
           filters: ExportFilters, include_phi: bool, files: Sequence[FileInfo]) -> int:
    """The export's audit event: who, which sections and filters, PHI or not, every hash."""
    after = {"sections": [s.name for s in sections], "filters": filters.as_dict(),
             "include_phi": include_phi, "files": [f.as_dict() for f in files]}

    def work() -> int:
        with write_session(engine) as session:
            event = record_event(session, actor=actor.username, action=AuditAction.EXPORT,
                                 entity="export", entity_id=export_id, after=after)
            return int(event.id)

    return retrying(work)


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


