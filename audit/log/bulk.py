"""Many records in one short write transaction: check everything first, then write in bulk.

Why (issue 10): a 30,000-row CSV import validated, resolved names and wrote each row (a
savepoint, a flush and an audit event with its own read of the last hash) inside one write
transaction, so it held SQLite's write lock for 251 s; a technologist logging a case meanwhile
waited 248 s. Now the batch is checked with no lock held (`prepare`: the same validation, the
same name rules and the same audit snapshot as ProcedureLog.log, against reference data read
once), and the write transaction (`write`) only inserts: missing names (audited), new patients,
the procedures and their levels in bulk, and their create events through
audit.trail.record_events, which chains them exactly as record_event would. All or nothing is
kept: the caller writes only when every record is valid (or chose to skip the invalid ones).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import insert, update
from sqlalchemy.orm import Session

from audit import access, dosimetry
from audit.auth import Actor
from audit.catalog import Catalog
from audit.errors import FieldError, ValidationFailed
from audit.log import duplicates
from audit.log.name_directory import NameDirectory
from audit.log.plausibility import Usual
from audit.log.record_fields import snapshot
from audit.log.validation import Validated, validate
from audit.settings import Settings
from audit.storage.engine import insert_numbered
from audit.storage.models import Procedure, ProcedureLevel, utcnow
from audit.trail import NewEvent, jsonable, lock_chain, record_events
from audit.vocab import AuditAction, DoseSource, RecordStatus, level_region

#: The procedure columns a record sets, all of them (ids and timestamps are added at write time).
_COLUMNS = tuple(c.key for c in Procedure.__table__.columns
                 if c.key not in {"id", "site_id", "room_id", "physician_id", "technologist_id",
                                  "patient_id", "created_at", "updated_at"})


@dataclass
class Checked:
    """One record of a batch after `prepare`: ready to insert, or refused with its problems."""

    errors: list[FieldError] = field(default_factory=list)
    #: Plausibility warnings: confirmed ones are stored with the record; unconfirmed refuse it.
    warnings: list[FieldError] = field(default_factory=list)
    #: New names near existing ones (create_missing): confirmed like warnings, but kept in the
    #: name's creation event, not on the record (as ProcedureLog.log does).
    name_warnings: list[FieldError] = field(default_factory=list)
    confirmed: bool = False
    #: How later records name this one in a "duplicate?" warning ("row 5 of this file").
    label: str = ""
    #: Procedure column values, without the name ids (known at write time) and timestamps.
    values: dict[str, Any] = field(default_factory=dict)
    #: The record's names: site, room, physician, technologist, patient_id, patient_ref,
    #: procedure_code (what the audit snapshot shows).
    names: dict[str, str] = field(default_factory=dict)
    levels: list[str] = field(default_factory=list)
    #: The create event's `after` (record_id and timestamps are filled in at write time).
    after: dict[str, Any] = field(default_factory=dict)
    room_factor: float = 1.0

    @property
    def ok(self) -> bool:
        return not self.errors and (self.confirmed or not self.pending)

    @property
    def pending(self) -> list[FieldError]:
        """Every warning that needs confirmation: the record's, then its names'."""
        return [*self.warnings, *self.name_warnings]


@dataclass
class Batch:
    """What `prepare` returns: each record's outcome, in input order, and the names read."""

    records: list[Checked]
    directory: NameDirectory
    settings: Settings

    @property
    def valid(self) -> list[Checked]:
        return [r for r in self.records if r.ok]


def prepare(records: Sequence[Mapping[str, Any]], actor: Actor, *, catalog: Catalog,
            settings: Settings, usual: Mapping[int, Usual | None], directory: NameDirectory,
            confirm_warnings: bool,
            entry_warnings: Callable[[Validated, str], list[FieldError]] | None = None,
            labels: Sequence[str] | None = None) -> Batch:
    """Check every record as ProcedureLog.log would (same errors, same order of checks)
    against reference data read beforehand; no write, so no lock is held.
    `usual` holds the usual values of the records' procedure types (by type id).
    `entry_warnings(checked, label)` gives a valid record's warnings as ProcedureLog.log
    does (a possible duplicate, plausibility, compliance) and remembers it, by `label`, for
    the records after it; without it only the plausibility warnings count."""
    ratio = float(settings.warning_kap_ratio)
    out: list[Checked] = []
    for index, data in enumerate(records):
        result = Checked()
        out.append(result)
        if not isinstance(data, Mapping):
            result.errors = [FieldError("record", "expected a JSON object of dictionary fields")]
            continue
        try:
            access.check_names_self_as_technologist(actor, data.get("technologist"))
        except ValidationFailed as exc:
            result.errors = list(exc.errors)
            continue
        code = procedure_code(data)
        entry = catalog.lookup(code) if code else None
        checked, errors = validate(
            data, catalog, now=utcnow(), default_dap_unit=directory.display_unit(data),
            usual=usual.get(entry.id) if entry else None, warning_kap_ratio=ratio)
        if errors:
            result.errors = errors
            continue
        assert checked is not None
        if entry_warnings is not None:
            result.label = labels[index] if labels else f"record {index + 1} of this batch"
            checked.warnings = entry_warnings(checked, result.label)
        result.warnings, result.confirmed = checked.warnings, confirm_warnings
        names, result.name_warnings = directory.canonical(checked.names)
        if not result.ok:
            continue
        result.errors = directory.check(names)
        if result.errors:
            continue
        mrn = names["patient_id"]
        result.names = {**names, "patient_ref": directory.patient_ref(mrn),
                        "procedure_code": checked.entry.code}
        result.levels = checked.levels
        result.room_factor = directory.room_factor(names)
        result.values = {
            "status": RecordStatus.FINAL.value, "version": 1,
            "procedure_type_id": checked.entry.id, "dose_source": DoseSource.MANUAL.value,
            "created_by": actor.username, "updated_by": actor.username,
            "warnings": [w.as_dict() for w in checked.warnings] or None, **checked.values}
        result.values["effective_dose_msv"] = _effective(result.values, result.room_factor,
                                                         settings)
        result.values = {c: result.values.get(c) for c in _COLUMNS}  # one key set: executemany
        result.after = _snapshot(result.values, result.levels, result.names)
    return Batch(out, directory, settings)


def procedure_code(data: Mapping[str, Any]) -> str:
    """The record's catalog code as the service looks it up ("" when none is given)."""
    return str(data.get("procedure_code") or "").strip().upper()


def _effective(values: Mapping[str, Any], room_factor: float,
               settings: Settings) -> float | None:
    """dosimetry.effective_dose with the site's coefficients, as ProcedureLog.log computes it."""
    return dosimetry.effective_dose(values.get("dap_gycm2"), room_factor, values["region"],
                                    settings.effective_dose_k)


def _snapshot(values: Mapping[str, Any], levels: Sequence[str],
              names: Mapping[str, str]) -> dict[str, Any]:
    """record_fields.snapshot of the record as it will be stored, in JSON form, so the create
    event is the one ProcedureLog.log writes. snapshot() reads attributes; an unsaved ORM
    Procedure per row cost more than validating the row, so a plain object carries them."""
    stored = SimpleNamespace(**values, id=None, created_at=None, updated_at=None,
                             levels=[SimpleNamespace(level=level) for level in levels])
    after = jsonable(snapshot(cast(Procedure, stored), names))
    assert after is not None
    return after


def write(session: Session, batch: Batch, actor: Actor) -> list[int]:
    """Insert the batch's valid records in the caller's write transaction; their ids in order.

    Only inserts and a handful of reads: names to create (audited, like NameResolver), new
    patients in one statement, the rooms' current KAP factors, then the procedures, their
    levels and one create event each, in bulk.
    """
    rows = batch.valid
    lock_chain(session)  # first, like every audited write
    if not rows:
        return []
    ids = batch.directory.write_names(session, actor, [r.names for r in rows],
                                      [r.values.get("dap_unit") for r in rows])
    factors = batch.directory.factors(session, (i["room_id"] for i in ids))
    now = utcnow()
    stamp = now.isoformat()
    values, afters = [], []
    for record, name_ids in zip(rows, ids, strict=True):
        row = {**record.values, **name_ids, "created_at": now, "updated_at": now}
        after = dict(record.after, created_at=stamp, updated_at=stamp)
        factor = factors.get(name_ids["room_id"], 1.0)
        if factor != record.room_factor:  # changed since the batch was checked
            row["effective_dose_msv"] = after["effective_dose_msv"] = _effective(
                row, factor, batch.settings)
        values.append(row)
        afters.append(after)
    record_ids = insert_numbered(session, Procedure.__table__, values)
    levels = [{"procedure_id": rid, "position": position, "level": level,
               "region": level_region(level).value}
              for rid, record in zip(record_ids, rows, strict=True)
              for position, level in enumerate(record.levels, start=1)]
    if levels:
        session.execute(insert(ProcedureLevel.__table__), levels)
    for rid, after in zip(record_ids, afters, strict=True):
        after["record_id"] = rid
    _name_saved_rows(session, rows, record_ids, afters)
    record_events(session, [NewEvent(actor.username, AuditAction.CREATE, "procedure", rid,
                                     after=after, json_ready=True)
                            for rid, after in zip(record_ids, afters, strict=True)])
    return record_ids


def _name_saved_rows(session: Session, rows: Sequence[Checked], record_ids: Sequence[int],
                     afters: Sequence[dict[str, Any]]) -> None:
    """A confirmed "duplicate?" warning naming an earlier row of the batch ("row 22 of this
    file is the same patient ...") names it by its new id too, once written ("record 57 (row 22
    of this file) ..."), as ProcedureLog.log_many does: the stored warning must still say which
    record it meant when the file is long gone. Only the few rows with such a warning are
    updated, before their create events are written (the events show the stored value)."""
    saved = {row.label: rid for row, rid in zip(rows, record_ids, strict=True) if row.label}
    for rid, after in zip(record_ids, afters, strict=True):
        stored = after.get("warnings")
        if not stored:
            continue
        changed = [dict(w, message=_named(w["message"], saved))
                   if w.get("field") == duplicates.FIELD else w for w in stored]
        if changed != stored:
            after["warnings"] = changed
            session.execute(update(Procedure).where(Procedure.id == rid)
                            .values(warnings=changed))


def _named(message: str, saved: Mapping[str, int]) -> str:
    label = message.split(" is the same patient", 1)[0]
    rid = saved.get(label)
    if rid is None or label == message:
        return message
    return f"record {rid} ({label}){message[len(label):]}"


__all__ = ["Batch", "Checked", "prepare", "write"]
