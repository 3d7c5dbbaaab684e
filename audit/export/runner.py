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
    signing_public_key.txt  the site's public signing key and fingerprint (audit.export.signing)
    manifest.json         export_id, generated_at (UTC), generated_by, tool version, filters,
                          include_phi, each file's rows, bytes and SHA-256, the signing key,
                          the trail's head and the export's own audit event (id, MAC)
    manifest.sig          the site's Ed25519 signature of manifest.json's bytes
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
- Every export writes a completion audit event (action export, entity "export", entity_id =
  export_id) holding the filters, include_phi and every file's hash, so the database vouches
  for the folder; a PHI export also writes a "started" event before its first byte, and a
  failure closes either with a "failed" event (audit.export.events). The manifest records the
  completion event's id and MAC and is then signed with the site's key (audit.export.signing).
- The folder is written in a private partial folder and appears (renamed) only once complete;
  failures and interruptions remove it, and each export first sweeps away what killed
  processes left (audit.export.staging). Nothing is overwritten.
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

Modules: this one runs an export (snapshot, streaming, the order of the steps, zip);
audit.export.staging the partial folder; audit.export.events the audit events;
audit.export.signing the signature;
audit.filters has the filters and the period rules; audit.export.types the shapes a
section is made of; audit.export.registry the sections by name; audit.export.sections the
procedure log and audit trail queries; audit.export.summaries the summaries;
audit.export.manifest the dictionary, README, manifest and checksums; audit.export.verify checks
an export without a database (audit.export.provenance, with one); audit.export.cells has the
cell rules and the CSV writer.
"""

from __future__ import annotations

import os
import uuid
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from audit.auth import Actor, Permission, require
from audit.errors import AuditError
from audit.export import cells as csvsafe
from audit.export.cells import CsvWriter, FileInfo
from audit.export.events import ExportAudit
from audit.export.manifest import (
    MANIFEST,
    SUMS,
    build_manifest,
    sha256_file,
    write_dictionary,
    write_json,
    write_readme,
    write_sums,
)
from audit.export.registry import lookup
from audit.export.signing import signing_entry, write_public_key, write_signature
from audit.export.staging import Staging, sweep
from audit.export.types import Column, Section, SectionContext
from audit.filters import Filters, check_names
from audit.keys import load_keys
from audit.settings import load_public_settings
from audit.storage.models import utcnow
from audit.trail import head as trail_head

ProgressFn = Callable[[int, int], None]
#: Writes extra files (not CSV) into the export folder: (folder, ctx) -> their FileInfo.
AttachFn = Callable[[Path, SectionContext], list[FileInfo]]


def _chosen(sections: Sequence[str | Section]) -> list[Section]:
    """Registry sections by name, and Section objects as given, in order."""
    named = [s for s in sections if isinstance(s, str)]
    found = iter(lookup(named)) if named else iter(())
    by_name = {s.name: s for s in found}
    return [by_name[s] if isinstance(s, str) else s for s in dict.fromkeys(sections)]


class ExportTargetExists(AuditError):
    """The output folder (or zip) exists already: exports never overwrite."""


@dataclass
class ExportResult:
    """What an export wrote: its id, folder (and zip), files, manifest, audit events and the
    fingerprint of the key that signed it."""

    export_id: str
    path: Path
    zip_path: Path | None
    files: list[FileInfo]
    manifest: dict[str, Any]
    audit_event_id: int
    started_event_id: int | None = None
    fingerprint: str = ""

    @property
    def rows(self) -> dict[str, int | None]:
        """Data records of each file (None for files that are not CSV)."""
        return {f.name: f.rows for f in self.files}


#: Test hook: seconds to sleep once the first rows are on disk, so that a test can stop a
#: real export process midway (tests/export/test_export_staging.py). Read in this one place.
PAUSE_ENV = "FLUORO_AUDIT_TEST_EXPORT_PAUSE"


def _pause_for_tests(writer: CsvWriter) -> None:
    seconds = os.environ.get(PAUSE_ENV)
    if seconds:
        import time

        writer.flush()
        time.sleep(float(seconds))


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


def _authorise(actor: Actor, include_phi: bool) -> None:
    require(actor, Permission.EXPORT)
    if include_phi:
        require(actor, Permission.EXPORT_PHI)


def count_rows(engine: Engine, actor: Actor, filters: Filters | None = None,
               sections: Sequence[str] = ("procedures",)) -> dict[str, int | None]:
    """Rows each section would export with these filters (what the page shows beforehand)."""
    _authorise(actor, False)
    chosen = lookup(sections)
    with _snapshot(engine) as connection:
        checked = check_names(connection, filters or Filters())
        ctx = SectionContext(connection, checked, False, load_public_settings(connection))
        return {s.name: s.rows(ctx) for s in chosen}


def export(
    engine: Engine,
    actor: Actor,
    out: Path | str,
    *,
    sections: Sequence[str | Section] = ("procedures",),
    filters: Filters | None = None,
    include_phi: bool = False,
    make_zip: bool = False,
    progress: ProgressFn | None = None,
    attachments: AttachFn | None = None,
    audit_details: dict[str, Any] | None = None,
) -> ExportResult:
    """Write an export folder at `out` (and `out`.zip with make_zip), signed and audited.

    Raises PermissionDenied (no EXPORT, or include_phi without EXPORT_PHI), ValidationFailed
    (unknown section or filter name), ExportTargetExists, KeyMissing (no signing key). On any
    failure, KeyboardInterrupt or SystemExit nothing is left behind (audit.export.staging);
    a PHI export's started event is committed before its first byte is written, and closed by
    a completion or failure event (audit.export.events).

    `sections` are registry names or Section objects (a document's own CSV files, e.g. the
    surveyor packet's); `attachments(folder, ctx)` writes further files (a PDF) inside the same
    snapshot and returns their FileInfo, hashed, listed and signed like the CSV files;
    `audit_details` go into the export's audit events (e.g. the patients, by pseudonym).
    """
    _authorise(actor, include_phi)
    chosen = _chosen(sections)
    target = Path(out)
    zip_path = target.with_name(target.name + ".zip") if make_zip else None
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ExportTargetExists(f"{target} exists and is not an empty folder; exports never "
                                 "overwrite: choose a new folder")
    if zip_path is not None and zip_path.exists():
        raise ExportTargetExists(f"{zip_path} exists; exports never overwrite")
    keyring = load_keys(engine)  # a site that cannot sign does not export
    export_id = uuid.uuid4().hex
    generated_at = utcnow()
    staging = Staging(target, zip_path, export_id[:8])
    sweep(staging.root.parent)
    with engine.connect() as connection:  # a typo in a filter is refused before any event
        checked = check_names(connection, filters or Filters())
    audit = ExportAudit(engine, actor, export_id, chosen, checked, include_phi, target,
                        audit_details)
    if include_phi:
        audit.start()
    try:
        staging.create()
        folder = staging.folder
        cache: dict[str, Any] = {}
        for section in chosen:  # before the snapshot: writes its data depends on
            section.prepare_for(engine, cache)
        with _snapshot(engine) as connection:
            checked = check_names(connection, filters or Filters())
            settings = load_public_settings(connection)
            ctx = SectionContext(connection, checked, include_phi, settings, cache)
            files, columns = _write_sections(folder, chosen, ctx, progress)
            if attachments is not None:
                files.extend(attachments(folder, ctx))
            with Session(bind=connection) as session:  # the chain the exported data saw
                chain = trail_head(session)
        files.append(write_dictionary(folder, columns))
        files.append(write_readme(folder, export_id, generated_at, actor, chosen, checked,
                                  include_phi, files, keyring.fingerprint()))
        files.append(write_public_key(folder, keyring))
        event = audit.complete(files)
        manifest = build_manifest(
            export_id, generated_at, actor, chosen, checked, include_phi, files,
            signing=signing_entry(keyring),
            trail_head=None if chain is None else chain.as_dict(),
            audit_event={"event_id": event.event_id, "mac": event.mac,
                         "started_event_id": audit.started_event_id})
        write_json(folder / MANIFEST, manifest)
        listed = [*files, sha256_file(folder / MANIFEST), write_signature(folder, keyring)]
        write_sums(folder / SUMS, listed)
        if staging.zip_path is not None:
            _zip(folder, staging.zip_path)
        staging.commit()
    except BaseException as exc:
        staging.discard()
        audit.fail(exc)
        raise
    return ExportResult(export_id, target, zip_path, files, manifest, event.event_id,
                        audit.started_event_id, keyring.fingerprint())


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
    paused = False
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
                    if not paused:
                        paused = True
                        _pause_for_tests(writer)
                    continue
                if not data.rendered:
                    chunk = [[csvsafe.cell(v, k) for v, k in zip(row, kinds, strict=True)]
                             for row in chunk]
                writer.write(chunk)
                done += len(chunk)
                if progress:
                    progress(done, max(total, done))
                if not paused:
                    paused = True
                    _pause_for_tests(writer)
        assert writer.info is not None
        files.append(writer.info)
        columns[section.filename] = data.columns
    if progress:
        progress(done, done)
    return files, columns


def _zip(folder: Path, zip_path: Path) -> None:
    """The folder as one zip (a top-level folder of the same name), written in the partial
    folder beside it; the runner renames it into place with the folder."""
    with zipfile.ZipFile(zip_path, "x", compression=zipfile.ZIP_DEFLATED,
                         compresslevel=6) as archive:
        for path in sorted(folder.iterdir()):
            archive.write(path, f"{folder.name}/{path.name}")
