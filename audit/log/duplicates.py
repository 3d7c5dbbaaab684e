"""Possible duplicates: a record of the same patient and procedure type close in time to another.

Why: the same patient, procedure and minute was saved twice from the form and twice from the
command line (issue 11), and each copy counts in every dose statistic and compliance rate. Two
procedures of one type on one patient within minutes are almost always one procedure entered
twice; now and then they are real (a second attempt, another side logged apart), so it is a
warning to confirm, like the plausibility warnings, naming the record it may duplicate:

    duplicate?: record 12 is the same patient and TFESI 4 minutes earlier (2026-03-14 09:26);
    confirm to log it anyway

Rules: the other record is FINAL (a voided record is no duplicate of anything), of the same
patient (MRN) and procedure type, and performed within ``duplicate_window_minutes`` (setting,
default 30; 0 turns the check off) before or after. An amend is not a duplicate of the record
it changes. Within one `log` batch or one CSV file, an earlier valid record of the batch or file
counts too, named by its position ("record 1 of this batch", "row 5 of this file").

Cost: candidates are read once per batch or file (:meth:`Duplicates.load`: one query per chunk
of patients over the batch's time span, answered by the (patient_id, performed_at) index) and
then looked up in memory, so a 30,000-row CSV import does not query once per row.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.bounds import text_problem
from audit.catalog import Catalog
from audit.errors import FieldError, ValidationFailed
from audit.log.validation import parse_datetime
from audit.settings import Settings
from audit.storage.models import Patient, Procedure, ProcedureType
from audit.vocab import RecordStatus

#: The field a duplicate warning names: no one field is wrong, the record as a whole may be.
FIELD = "duplicate?"
#: Longer MRNs are refused by validation; they are not looked up.
MRN_MAX_LENGTH = 64
SETTING = "duplicate_window_minutes"
#: How many patients one candidate query names (well under every backend's parameter limit).
CHUNK = 500
#: A warning names at most this many records (a patient with more is named "and N more").
MAX_NAMED = 3

Key = tuple[str, int]  # (patient MRN, procedure type id)


@dataclass(frozen=True)
class Prior:
    """A record a new one may duplicate: a stored final record, or an earlier record of the same
    batch or file (not yet committed: named by its position, as the user wrote it)."""

    label: str  # "record 12", "record 1 of this batch", "row 5 of this file"
    performed_at: datetime
    record_id: int | None = None


def window(settings: Settings) -> timedelta | None:
    """The duplicate window, or None when the setting turns the check off (0)."""
    value = settings.duplicate_window_minutes
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1440:
        raise ValidationFailed([FieldError(SETTING, f"setting is {value!r}: expected minutes "
                                           "from 0 (no duplicate check) to 1440 (a day)")])
    return timedelta(minutes=value) if value else None


def display_zone(settings: Settings) -> ZoneInfo:
    """The site's zone for the times a warning shows (UTC when the setting is not a zone)."""
    try:
        return ZoneInfo(str(settings.site_timezone or "UTC"))
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _when(at: datetime, other: datetime, zone: ZoneInfo) -> str:
    """"4 minutes earlier (2026-03-14 09:26)": `other` as seen from `at`, in the site's zone."""
    seconds = (at - other).total_seconds()
    minutes = round(abs(seconds) / 60)
    if minutes == 0:
        relative = "at the same time"
    else:
        relative = (f"{minutes} minute{'' if minutes == 1 else 's'} "
                    f"{'earlier' if seconds > 0 else 'later'}")
    return f"{relative} ({other.astimezone(zone):%Y-%m-%d %H:%M})"


def message(prior: Prior, code: str, at: datetime, zone: ZoneInfo,
            then: str | None = "confirm to log it anyway") -> str:
    """The warning's text for one possible duplicate of a record of type `code` at `at`;
    `then` says what to do about it."""
    text = f"{prior.label} is the same patient and {code} {_when(at, prior.performed_at, zone)}"
    return f"{text}; {then}" if then else text


@dataclass
class Duplicates:
    """Possible duplicates of the records of one write (one record, a batch or a file).

    Holds the stored final records that could be duplicates (read by :meth:`load` for a whole
    batch, or by :meth:`ensure` for a record the batch read did not cover) and the batch's own
    earlier records (:meth:`remember`), by patient and type in time order.
    """

    window: timedelta | None
    zone: ZoneInfo
    #: Name a batch's earlier record by its new id too ("record 57 (record 1 of this batch)"):
    #: only when the batch is committed whatever its warnings (confirmed, not a dry run).
    name_saved: bool = False
    by_key: dict[Key, list[tuple[datetime, int, Prior]]] = field(default_factory=dict)
    _spans: list[tuple[frozenset[str], frozenset[int], datetime, datetime]] = field(
        default_factory=list)
    _loaded: set[int] = field(default_factory=set)
    _order: int = 0

    @classmethod
    def for_settings(cls, settings: Settings, *, name_saved: bool = False) -> Duplicates:
        """Nothing read yet; :meth:`load` or :meth:`ensure` read what a record needs."""
        return cls(window(settings), display_zone(settings), name_saved)

    @classmethod
    def load(cls, session: Session, keys: Iterable[tuple[str, int, datetime]],
             settings: Settings, *, name_saved: bool = False) -> Duplicates:
        """The stored final records near any of `keys` (MRN, procedure type id, performed_at)."""
        found = cls.for_settings(settings, name_saved=name_saved)
        found.read(session, keys)
        return found

    def read(self, session: Session, keys: Iterable[tuple[str, int, datetime]]) -> None:
        """Read the stored final records near any of `keys`: one query per :data:`CHUNK`
        patients, over the keys' whole time span."""
        keys = list(keys)
        if self.window is None or not keys:
            return
        mrns = sorted({mrn for mrn, _, _ in keys})
        types = frozenset(type_id for _, type_id, _ in keys)
        start = min(at for _, _, at in keys) - self.window
        end = max(at for _, _, at in keys) + self.window
        for first in range(0, len(mrns), CHUNK):
            chunk = mrns[first:first + CHUNK]
            rows = session.execute(
                select(Procedure.id, Procedure.performed_at, Procedure.procedure_type_id,
                       Patient.mrn)
                .join(Patient, Patient.id == Procedure.patient_id)
                .where(Patient.mrn.in_(chunk), Procedure.procedure_type_id.in_(sorted(types)),
                       Procedure.status == RecordStatus.FINAL.value,
                       Procedure.performed_at >= start, Procedure.performed_at <= end)
            ).all()
            for row in rows:
                if row.id not in self._loaded:
                    self._loaded.add(row.id)
                    self._add((row.mrn, row.procedure_type_id),
                              Prior(f"record {row.id}", row.performed_at, row.id))
            self._spans.append((frozenset(chunk), types, start, end))

    def ensure(self, session: Session, mrn: str, type_id: int, at: datetime) -> None:
        """Read the stored records near this one unless an earlier read covered it (the batch
        read works from the raw input; a value validation reads differently is read here)."""
        if self.window is None:
            return
        low, high = at - self.window, at + self.window
        if not any(mrn in mrns and type_id in types and start <= low and high <= end
                   for mrns, types, start, end in self._spans):
            self.read(session, [(mrn, type_id, at)])

    def _add(self, key: Key, prior: Prior) -> None:
        self._order += 1
        bisect.insort(self.by_key.setdefault(key, []),
                      (prior.performed_at.astimezone(UTC), self._order, prior))

    def remember(self, mrn: str, type_id: int, at: datetime, label: str,
                 record_id: int | None = None) -> None:
        """An earlier valid record of this batch or file: later records of the batch are
        checked against it. It is named by `label` (its position), and by its new id as well
        when the batch is sure to be committed (`name_saved`)."""
        if self.window is None:
            return
        if record_id is not None and self.name_saved:
            self._loaded.add(record_id)
            self._add((mrn, type_id), Prior(f"record {record_id} ({label})", at, record_id))
        else:
            self._add((mrn, type_id), Prior(label, at))

    def near(self, mrn: str, type_id: int, at: datetime,
             exclude_id: int | None = None) -> list[Prior]:
        """The known records within the window of `at`, nearest first."""
        if self.window is None:
            return []
        entries = self.by_key.get((mrn, type_id), [])
        at = at.astimezone(UTC)
        low = bisect.bisect_left(entries, (at - self.window,))
        high = bisect.bisect_right(entries, (at + self.window, float("inf")))
        found = [prior for _, _, prior in entries[low:high]
                 if exclude_id is None or prior.record_id != exclude_id]
        return sorted(found, key=lambda p: (abs((p.performed_at - at).total_seconds()),
                                            p.record_id or 0))

    def warnings(self, mrn: str, type_id: int, code: str, at: datetime,
                 exclude_id: int | None = None) -> list[FieldError]:
        """The "duplicate?" warnings of a record: one per possible duplicate (at most
        :data:`MAX_NAMED`, the others counted in the last)."""
        priors = self.near(mrn, type_id, at, exclude_id)
        shown = [FieldError(FIELD, message(p, code, at, self.zone)) for p in priors[:MAX_NAMED]]
        if len(priors) > MAX_NAMED:
            minutes = (self.window or timedelta()).total_seconds() / 60
            shown[-1] = FieldError(FIELD, shown[-1].message.replace(
                "; confirm", f" (and {len(priors) - MAX_NAMED} more within {minutes:g} "
                "minutes); confirm"))
        return shown


def scan(records: Iterable[Mapping[str, Any]], catalog: Catalog,
         now: datetime) -> list[tuple[str, int, datetime]]:
    """(MRN, procedure type id, performed_at) of the raw input records that give them readably,
    for :meth:`Duplicates.load` before the records are validated one by one. A record read
    differently here than by validation is still checked: :meth:`Duplicates.ensure` reads it."""
    keys = []
    for data in records:
        if not isinstance(data, Mapping):
            continue  # validation names it
        mrn = data.get("patient_id")
        code = data.get("procedure_code")
        entry = catalog.lookup(str(code)) if isinstance(code, str) and code.strip() else None
        if entry is None or isinstance(mrn, bool) or not isinstance(mrn, str | int):
            continue
        mrn = str(mrn).strip() if isinstance(mrn, str) or abs(mrn) < 10**40 else ""
        if not mrn or text_problem(mrn, MRN_MAX_LENGTH):
            continue  # only text that could be stored is looked up (no NUL, no surrogate)
        try:
            at = parse_datetime(data.get("performed_at"), now)
        except (ValueError, TypeError, OverflowError):
            continue
        keys.append((mrn, entry.id, at))
    return keys


@dataclass(frozen=True)
class Possible:
    """A stored record and the other final records it may duplicate (nearest first)."""

    record_id: int
    code: str
    performed_at: datetime
    others: list[Prior]


def record_duplicates(session: Session, record_ids: Sequence[int],
                      settings: Settings) -> dict[int, Possible]:
    """For stored records, the other final records of the same patient and type within the
    window (e.g. of the procedure a dose report fills): one read of the records, then one
    :meth:`Duplicates.load` for them all. Records without any are left out."""
    if not record_ids:
        return {}
    rows = []
    ids = sorted(set(record_ids))
    for first in range(0, len(ids), CHUNK):
        rows += session.execute(
            select(Procedure.id, Procedure.performed_at, Procedure.procedure_type_id,
                   Patient.mrn, ProcedureType.code)
            .join(Patient, Patient.id == Procedure.patient_id)
            .join(ProcedureType, ProcedureType.id == Procedure.procedure_type_id)
            .where(Procedure.id.in_(ids[first:first + CHUNK]))
        ).all()
    known = Duplicates.load(session, [(r.mrn, r.procedure_type_id, r.performed_at)
                                      for r in rows], settings)
    found: dict[int, Possible] = {}
    for r in rows:
        others = known.near(r.mrn, r.procedure_type_id, r.performed_at, exclude_id=r.id)
        if others:
            found[r.id] = Possible(r.id, r.code, r.performed_at, others)
    return found


__all__ = ["FIELD", "Duplicates", "Possible", "Prior", "message", "record_duplicates", "scan",
           "window"]
