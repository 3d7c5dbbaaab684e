"""Import a legacy procedure log (CSV) into the log, through the same validation as `log`.

Why: sites arrive with years of spreadsheet logs. Those rows must meet the same rules as a
record typed today, and a file must not be half-imported: by default every row is written or
none is. Rules:

* Encoding UTF-8, with or without BOM; delimiter comma or semicolon (the one the header line
  uses more often). The first row is the header.
* Headers (mapped by audit.log.csv_headers): the data dictionary's field names, matched
  case-insensitively with spaces, hyphens and underscores alike, plus common legacy names
  (csv_headers.ALIASES: "MRN", "Date", "DAP", "DAP unit", "Fluoro time", "Physician",
  "Procedure", ...). A unit in parentheses applies to the column: "DAP (mGy·cm²)",
  "Fluoro time (min)", "Air kerma (Gy)".
  Columns the export writes but input does not take (record_id, status, version, patient_ref,
  dose_source, region, effective_dose_msv, background_days, warnings, void_reason,
  created_*/updated_*) are ignored, so an export's procedures.csv round-trips; a row whose
  status is "void" is skipped (it would otherwise come back as a live record). Any other
  column is an error naming it: silently dropping a column could drop a dose.
* A patient_id column (or a legacy name for it: "MRN", ...) is required: a file without one is
  refused before any row is read. An export made without PHI carries only patient_ref, a
  keyed pseudonym that cannot be turned back into the MRN, so it cannot be imported (the error
  says so); move records between databases with an export made with --include-phi.
* Our own exports: the exporter neutralises text a spreadsheet could run as a formula with a
  leading apostrophe (audit.export.cells). A file recognised as a fluoro-audit export's procedure
  log gets that undone (csvsafe.restore on every text and enum cell, restore_list on list
  cells), so "=cmd|' /C calc'!A0" comes back as it was stored. Recognised means: its header row
  is exactly the export's header (the data dictionary's fields in order, with or without
  patient_id), or a manifest.json beside it (fluoro-audit export format) lists it by name
  (an export written by a version whose dictionary differed). Any other file is a legacy log
  and its cells are taken as written: a leading apostrophe there is the user's text.
* Units per row: a "dap_unit" column gives each row's DAP unit; fluoro time and air kerma may
  carry their unit in the cell ("1.3 min", "1.2 Gy").
* Date and time: ISO 8601 with a UTC offset, as `log` requires; a separate "Time" column is
  joined to "Date"; times without an offset are read in ``timezone`` when one is given.
* Lists are ';'-separated, booleans true/false (yes/no, 1/0 too). A procedure may be given by
  its catalog code or its catalog name ("Medial branch block").
* Rows are numbered as a spreadsheet shows them: the header is row 1, the first record row 2.
* Warnings (implausible but possible values) need ``confirm_warnings``, as with `log`.
* ``dry_run``: every row is validated (names resolved) exactly as for an import; nothing is
  written (an import writes only after every row has been checked: see import_csv).
* ``skip_invalid``: valid rows are written; the others are copied with a ``reasons`` column to
  ``<input>.rejected.csv`` beside the input.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from audit.auth import Actor, Permission, require
from audit.dictionary import BY_NAME, FIELD_NAMES
from audit.errors import FieldError
from audit.export import cells as csvsafe
from audit.export.manifest import FORMAT, MANIFEST
from audit.log.csv_headers import (
    TIME_FIELD,
    Column,
    CsvFormatError,
    map_columns,
    normalise_header,
    require_patient_id,
    with_header_unit,
)
from audit.log.entry_form import zone as known_zone
from audit.log.service import ProcedureLog
from audit.storage.engine import retrying, write_session
from audit.trail import record_event
from audit.vocab import AuditAction, RecordStatus

REASONS_COLUMN = "reasons"
#: The headers of an export's procedures.csv: with patient_id (--include-phi) and without.
EXPORT_HEADERS: frozenset[tuple[str, ...]] = frozenset({
    tuple(FIELD_NAMES), tuple(n for n in FIELD_NAMES if n != "patient_id")})


@dataclass
class RowOutcome:
    row: int  # spreadsheet row: the header is row 1
    record_id: int | None = None
    errors: list[FieldError] = field(default_factory=list)
    warnings: list[FieldError] = field(default_factory=list)
    skipped: str | None = None

    @property
    def status(self) -> str:
        if self.skipped:
            return "skipped"
        if self.errors:
            return "invalid"
        if self.warnings:
            return "unconfirmed"
        return "ok"

    def problems(self) -> list[str]:
        found = [f"{e.field}: {e.message}" for e in self.errors]
        found += [f"warning: {w.field}: {w.message} (confirm with --confirm-warnings)"
                  for w in self.warnings]
        return found

    def as_json(self) -> dict[str, Any]:
        return {"row": self.row, "status": self.status, "record_id": self.record_id,
                "errors": [e.as_dict() for e in self.errors],
                "warnings": [w.as_dict() for w in self.warnings], "skipped": self.skipped}


@dataclass
class CsvImportResult:
    file: str
    rows: list[RowOutcome]
    dry_run: bool
    committed: bool
    rejected_file: str | None = None
    #: Why the file was taken as a fluoro-audit export (its formula guard undone), or None.
    export_recognised: str | None = None

    @property
    def failed(self) -> list[RowOutcome]:
        return [r for r in self.rows if r.status in ("invalid", "unconfirmed")]

    @property
    def imported(self) -> list[RowOutcome]:
        return [r for r in self.rows if r.record_id is not None] if self.committed else []

    def summary(self) -> dict[str, Any]:
        return {
            "file": self.file, "rows": len(self.rows), "imported": len(self.imported),
            "valid": sum(1 for r in self.rows if r.status == "ok"),
            "invalid": len(self.failed),
            "skipped": sum(1 for r in self.rows if r.status == "skipped"),
            "dry_run": self.dry_run, "committed": self.committed,
            "rejected_file": self.rejected_file, "export_recognised": self.export_recognised,
        }


# --- reading ------------------------------------------------------------------------------------

def decode(data: bytes) -> str:
    """UTF-8 with or without BOM; anything else is refused with a way out."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CsvFormatError(
            f"not UTF-8 (byte {exc.start}: {data[exc.start:exc.start + 1]!r}); save the file as "
            "CSV UTF-8 (Excel: File > Save As > CSV UTF-8)") from None


def sniff_delimiter(text: str) -> str:
    """Comma or semicolon: whichever the header line uses more (ties: comma)."""
    header = text.split("\n", 1)[0]
    return ";" if header.count(";") > header.count(",") else ","


@dataclass
class ParsedFile:
    headers: list[str]
    delimiter: str
    rows: list[tuple[int, list[str]]]  # (spreadsheet row, cells)
    columns: list[Column]
    sha256: str
    #: Why the file is taken as a fluoro-audit export (its formula guard undone), or None.
    export_recognised: str | None = None


def read_csv(data: bytes, source: Path | None = None) -> ParsedFile:
    """Decode, split and map the header; rows keep their cells for the rejected file.

    `source` (the file's path) lets a manifest.json beside it mark the file as an export.
    """
    text = decode(data)
    if not text.strip():
        raise CsvFormatError("the file is empty: expected a header row and procedure rows")
    delimiter = sniff_delimiter(text)
    try:
        table = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as exc:
        raise CsvFormatError(f"not a readable CSV: {exc}") from None
    headers = table[0]
    columns = map_columns(headers)
    require_patient_id(headers, columns)
    rows = [(number, cells) for number, cells in enumerate(table[1:], start=2)
            if any(cell.strip() for cell in cells)]
    return ParsedFile(headers, delimiter, rows, columns, hashlib.sha256(data).hexdigest(),
                      recognise_export(headers, source))


def recognise_export(headers: Sequence[str], source: Path | None = None) -> str | None:
    """Why this file is a fluoro-audit export's procedure log, or None (see module doc):
    the export's exact header, or a fluoro-audit manifest.json beside it naming the file."""
    if tuple(h.strip() for h in headers) in EXPORT_HEADERS:
        return "its header is the fluoro-audit export header"
    if source is None:
        return None
    manifest = source.parent / MANIFEST
    try:
        content = json.loads(manifest.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(content, dict) or content.get("format") != FORMAT:
        return None
    files = content.get("files")
    if isinstance(files, list) and any(
            isinstance(f, dict) and f.get("name") == source.name for f in files):
        return f"{MANIFEST} beside it lists it as a fluoro-audit export file"
    return None


def _restore(field_name: str, value: str) -> str:
    """Undo the exporter's formula guard on one cell of a recognised export."""
    kind = BY_NAME[field_name].type if field_name in BY_NAME else ""
    if kind == csvsafe.Kind.LIST:
        return csvsafe.LIST_SEPARATOR.join(csvsafe.restore_list(value))
    if kind in (csvsafe.Kind.TEXT, csvsafe.Kind.ENUM):
        return csvsafe.restore(value)
    return value


def row_record(cells: Sequence[str], columns: Sequence[Column], zone: ZoneInfo | None,
               restore: bool = False) -> tuple[dict[str, Any], str | None, list[FieldError]]:
    """(record in dictionary fields, skip reason, cell-shape errors) of one row. `restore`:
    the file is one of our exports; undo its formula guard on text cells."""
    errors: list[FieldError] = []
    if len(cells) > len(columns):
        extra = [c for c in cells[len(columns):] if c.strip()]
        if extra:
            errors.append(FieldError("row", f"has {len(cells)} cells but the header has "
                                     f"{len(columns)} columns: check the delimiter or quoting"))
    record: dict[str, Any] = {}
    skip = None
    for column in columns:
        value = cells[column.index].strip() if column.index < len(cells) else ""
        if column.field is None:
            void = value.lower() == RecordStatus.VOID.value
            if void and normalise_header(column.header) == "status":
                skip = "void in the source: not imported as a live record"
            continue
        if value == "":
            continue
        if restore:
            value = _restore(column.field, value)
        record[column.field] = with_header_unit(column, value)
    if TIME_FIELD in record:
        time_text = record.pop(TIME_FIELD)
        if "performed_at" in record:
            record["performed_at"] = f"{record['performed_at']}T{time_text}"
    if "dap_value" in record and "dap_unit" not in record:
        unit = next((c.unit for c in columns if c.field == "dap_value"), None)
        if unit:
            record["dap_unit"] = unit
    if zone is not None and "performed_at" in record:
        record["performed_at"] = _localise(record["performed_at"], zone)
    return record, skip, errors


def _localise(text: str, zone: ZoneInfo) -> str:
    """Give an offset-less ISO time the file's zone; leave anything else to validation."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return text
    if moment.tzinfo is None:
        return moment.replace(tzinfo=zone).isoformat()
    return text


def parse_zone(name: str | None) -> ZoneInfo | None:
    """--timezone as a zone; a name zoneinfo does not know is a format error, not UTC."""
    found = known_zone(name)
    if name and found is None:
        raise CsvFormatError(f"--timezone {name!r} is not an IANA time zone (e.g. "
                             "America/New_York, Europe/Paris, UTC)")
    return found


# --- importing ----------------------------------------------------------------------------------

def import_csv(
    service: ProcedureLog,
    actor: Actor,
    path: str | Path,
    *,
    dry_run: bool = False,
    skip_invalid: bool = False,
    confirm_warnings: bool = False,
    create_missing: bool = False,
    timezone: str | None = None,
) -> CsvImportResult:
    """Import a legacy CSV log; see the module docstring for the rules.

    Raises CsvFormatError (bad file or header) or PermissionDenied before anything is written.
    Row problems are returned, not raised: the caller prints them all.

    Two phases (issue 10): every row is read, validated and its names resolved with no lock
    held (ProcedureLog.prepare_batch); then, if the file is to be written, one short write
    transaction inserts the rows in bulk, creates the missing names and writes the audit
    events (ProcedureLog.write_batch). A 30,000-row file held SQLite's write lock for 251 s
    when each row was validated and written inside the transaction; a technologist logging a
    case waited as long.
    """
    require(actor, Permission.IMPORT)
    require(actor, Permission.LOG_PROCEDURE)
    source = Path(path)
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise CsvFormatError(f"cannot read {source}: {exc.strerror or exc}") from None
    parsed = read_csv(data, source)
    zone = parse_zone(timezone)
    catalog = service.catalog
    names = {entry.name.casefold(): code for code, entry in catalog.entries.items()}

    outcomes, records, checked_rows = _read_rows(parsed, zone, names)
    batch = service.prepare_batch(records, actor, confirm_warnings=confirm_warnings,
                                  create_missing=create_missing)
    for outcome, checked in zip(checked_rows, batch.records, strict=True):
        outcome.errors = [_hint(e, zone) for e in checked.errors]
        if not checked.errors and not checked.ok:
            outcome.warnings = list(checked.warnings)
    failed = any(o.status in ("invalid", "unconfirmed") for o in outcomes)
    commit = not dry_run and (skip_invalid or not failed)
    if commit:
        written = [o for o, c in zip(checked_rows, batch.records, strict=True) if c.ok]

        def work() -> list[int]:
            with write_session(service.engine) as session:
                ids = service.write_batch(session, batch, actor)
                _audit_file(session, actor, source, parsed, outcomes, ids)
                return ids

        for outcome, record_id in zip(written, retrying(work), strict=True):
            outcome.record_id = record_id
    result = CsvImportResult(str(source), outcomes, dry_run, commit,
                             export_recognised=parsed.export_recognised)
    if skip_invalid and not dry_run and result.failed:
        result.rejected_file = str(write_rejected(source, parsed, result.failed))
    return result


def _read_rows(parsed: ParsedFile, zone: ZoneInfo | None, procedure_names: Mapping[str, str]
               ) -> tuple[list[RowOutcome], list[dict[str, Any]], list[RowOutcome]]:
    """Every row's outcome; the records of the rows to validate, with their outcomes (rows
    skipped or misshapen are settled here)."""
    outcomes: list[RowOutcome] = []
    records: list[dict[str, Any]] = []
    checked: list[RowOutcome] = []
    for number, cells in parsed.rows:
        outcome = RowOutcome(number)
        outcomes.append(outcome)
        record, skip, shape_errors = row_record(cells, parsed.columns, zone,
                                                restore=parsed.export_recognised is not None)
        if skip:
            outcome.skipped = skip
            continue
        if shape_errors:
            outcome.errors = shape_errors
            continue
        named = str(record.get("procedure_code") or "").strip().casefold()
        if named in procedure_names:  # legacy logs write the name, not the catalog code
            record["procedure_code"] = procedure_names[named]
        records.append(record)
        checked.append(outcome)
    return outcomes, records, checked


def _hint(error: FieldError, zone: ZoneInfo | None) -> FieldError:
    if error.field == "performed_at" and "UTC offset" in error.message and zone is None:
        return FieldError(error.field, error.message + "; or give the file's time zone with "
                          "--timezone (e.g. America/New_York)")
    return error


def _audit_file(session: Session, actor: Actor, source: Path, parsed: ParsedFile,
                outcomes: Sequence[RowOutcome], ids: Sequence[int]) -> None:
    """One import event for the file, beside each record's own create event."""
    record_event(
        session, actor=actor.username, action=AuditAction.IMPORT, entity="procedure_csv",
        entity_id=source.name[:64], reason=f"legacy CSV import of {source.name}",
        after={"file": source.name, "sha256": parsed.sha256, "rows": len(outcomes),
               "fluoro_audit_export": parsed.export_recognised is not None,
               "imported": len(ids), "record_ids": list(ids),
               "rejected_rows": [o.row for o in outcomes
                                 if o.status in ("invalid", "unconfirmed")],
               "skipped_rows": [o.row for o in outcomes if o.status == "skipped"]},
    )


def rejected_path(source: Path) -> Path:
    return source.with_name(source.name + ".rejected.csv")


def write_rejected(source: Path, parsed: ParsedFile, failed: Sequence[RowOutcome]) -> Path:
    """The rejected rows, as read, with a ``reasons`` column (same delimiter, UTF-8 with BOM)."""
    by_row = {number: cells for number, cells in parsed.rows}
    target = rejected_path(source)
    with target.open("w", encoding="utf-8-sig", newline="") as handle:
        out = csv.writer(handle, delimiter=parsed.delimiter)
        out.writerow([*parsed.headers, REASONS_COLUMN])
        width = len(parsed.headers)
        for outcome in failed:
            cells = list(by_row[outcome.row])
            cells = (cells + [""] * width)[:max(width, len(cells))]
            out.writerow([*cells[:width], f"row {outcome.row}: " + "; ".join(outcome.problems())])
    return target


__all__ = [
    "CsvImportResult",
    "RowOutcome",
    "import_csv",
    "read_csv",
    "recognise_export",
    "rejected_path",
    "write_rejected",
]
