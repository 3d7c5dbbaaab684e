"""The record filters of the whole tool: one `Filters` for the Records list, the dashboards and
`fluoro-audit report`, the stored alerts and the exports.

Why one type: the same question ("records of March at site A, room OR 2") used to be asked in
three dialects, each with its own translation to SQL, and they drifted (a room "OR 2" at two
sites, a period end included or not). Here a filter is written once and renders itself two
ways that give the same records:

- `where()` / `id_conditions()`: SQL conditions on the procedure table (or on a table that
  copies a record's keys, such as the stored alerts: see `Target`);
- `mask()`: a boolean array over the analysis frame (audit.analytics.snapshot), for the
  dashboards' figures. The frame is described by the `Frame` protocol, so this module does
  not import the analytics (which import it).

The rules (this module is where docs/design.md §4 places them):

- a period is [start, before) in UTC instants; `Filters.days(first, last)` is whole UTC days,
  both included (the dashboards' and reports' periods), and `first_day` / `last_day` read them
  back;
- an empty name tuple means "any"; several names mean "any of them"; a room is matched by its
  name or by its label "site · name" (the dashboards' label where two sites share a room name);
- voided records are left out unless `include_voided` is set or `status` names the status
  wanted (the analysis frame holds final records only, so there they never appear);
- a name that matches nothing is an error naming the field (mask(), check_names()), never a
  silently empty answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Connection, Engine, Select, false, func, or_, select
from sqlalchemy.sql import ColumnElement

from audit.errors import FieldError, ValidationFailed
from audit.export.cells import timestamp_text
from audit.storage.models import (
    Patient,
    Physician,
    Procedure,
    ProcedureType,
    Room,
    Site,
    UserAccount,
)
from audit.vocab import RecordStatus

if TYPE_CHECKING:  # numpy and pandas load only when a frame is masked: exports stay light
    import numpy as np
    import pandas as pd

#: The fields that hold names.
_NAMES = ("sites", "rooms", "physicians", "procedures", "technologists")


@dataclass(frozen=True)
class Filters:
    """Which records: a period [start, before) in UTC, names (empty: any), a status, a patient,
    record ids. Lists given for the tuples are kept as tuples (the value stays hashable)."""

    start: datetime | None = None
    before: datetime | None = None
    sites: tuple[str, ...] = ()
    rooms: tuple[str, ...] = ()  # a room's name, or its label "site · name"
    physicians: tuple[str, ...] = ()
    procedures: tuple[str, ...] = ()  # catalog codes
    technologists: tuple[str, ...] = ()  # usernames
    status: str | None = None  # final or void; None: see include_voided
    patient_id: str | None = None  # the MRN (PHI); SQL only, the frame holds no MRNs
    record_ids: tuple[int, ...] | None = None  # None: any; (): none
    include_voided: bool = False

    def __post_init__(self) -> None:
        for name in _NAMES:
            value = getattr(self, name)
            if isinstance(value, str):  # tuple("OR 1") would be one filter per letter
                raise TypeError(f"Filters.{name} takes a tuple of names, not the string "
                                f"{value!r}")
            object.__setattr__(self, name, tuple(value))
        if self.record_ids is not None:
            object.__setattr__(self, "record_ids", tuple(int(i) for i in self.record_ids))
        for name in ("start", "before"):
            moment = getattr(self, name)
            if moment is not None and moment.tzinfo is None:
                raise ValueError(f"Filters.{name} needs a timezone-aware instant: {moment}")

    @classmethod
    def days(cls, first: date | None = None, last: date | None = None, **rest: Any) -> Filters:
        """Whole UTC days from `first` to `last`, both included (the dashboards' periods).
        A `last` before `first` is kept as given: mask() reports it, naming the field."""
        return cls(start=_midnight(first) if first else None,
                   before=_day_end(last) if last else None, **rest)

    @property
    def first_day(self) -> date | None:
        """The UTC day the period starts on."""
        return None if self.start is None else self.start.astimezone(UTC).date()

    @property
    def last_day(self) -> date | None:
        """The last UTC day the period reaches (the day before `before` when it is a
        midnight)."""
        if self.before is None:
            return None
        return (self.before.astimezone(UTC) - timedelta(microseconds=1)).date()

    @property
    def period(self) -> Filters:
        """Only the period: reference levels are computed over every room and physician."""
        return Filters(start=self.start, before=self.before)

    @property
    def record_status(self) -> str | None:
        """The one status the records must have, or None for any."""
        if self.status:
            return self.status
        return None if self.include_voided else RecordStatus.FINAL.value

    def bounds(self) -> tuple[int | None, int | None]:
        """[lo, hi) in epoch seconds (the analysis frame's time column)."""
        lo = int(self.start.timestamp()) if self.start else None
        hi = int(self.before.timestamp()) if self.before else None
        return lo, hi

    def describe(self) -> str:
        """One line for a page caption or a report heading."""
        parts = [f"{self.first_day or 'start'} to {self.last_day or 'latest'}"]
        for name, values in (("site", self.sites), ("room", self.rooms),
                             ("physician", self.physicians), ("procedure", self.procedures),
                             ("technologist", self.technologists)):
            if values:
                parts.append(f"{name}: {', '.join(values)}")
        return "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        """The filters as an export's manifest and audit event record them: a fixed point
        (docs/design.md §10), so one name is a string, as it always was. Filters exports do not
        offer appear only when set."""
        record: dict[str, Any] = {
            "from": _iso(self.start), "before": _iso(self.before), "site": _named(self.sites),
            "room": _named(self.rooms), "physician": _named(self.physicians),
            "procedure_code": _named(self.procedures), "include_voided": self.include_voided,
        }
        extra = {"technologist": _named(self.technologists), "status": self.status,
                 "patient_id": self.patient_id,
                 "record_ids": None if self.record_ids is None else list(self.record_ids)}
        record.update((k, v) for k, v in extra.items() if v is not None)
        return record

    # --- SQL --------------------------------------------------------------------------------

    def period_conditions(self, column: Any) -> list[ColumnElement[bool]]:
        """The period on one timestamp column (also the audit trail's occurred_at)."""
        conditions = []
        if self.start is not None:
            conditions.append(column >= self.start)
        if self.before is not None:
            conditions.append(column < self.before)
        return conditions

    def where(self, on: Target | None = None, *,
              names: bool = True) -> list[ColumnElement[bool]]:
        """Every filter as a condition on the target's own columns, names resolved by
        subquery (so a count needs no joins). names=False leaves the names out, for a caller
        that looked them up with id_conditions."""
        on = on or PROCEDURES
        conditions = [*self._status_conditions(on), *self.period_conditions(on.performed_at)]
        if names:
            conditions += [on.column(key).in_(ids) for key, ids in self._lookups()]
        if self.record_ids is not None:
            conditions.append(on.record_id.in_(list(self.record_ids)))
        return conditions

    def id_conditions(self, connection: Any, on: Target | None = None) -> list[Any] | None:
        """The name filters with the names looked up first (small tables), as `column = id`
        or `column IN (ids)`, so the planner sees the index to use. None when a name matches
        nothing: the answer is empty without reading the big table. `connection` is a
        Connection or a Session."""
        on = on or PROCEDURES
        found = self.name_ids(connection)
        return None if found is None else [
            on.column(key) == ids[0] if len(ids) == 1 else on.column(key).in_(ids)
            for key, ids in found.items()]

    def name_ids(self, connection: Any) -> dict[str, list[int]] | None:
        """Each name filter's ids by its column's key (id_conditions'); None when a name
        matches nothing."""
        found: dict[str, list[int]] = {}
        for key, ids in self._lookups():
            found[key] = list(connection.scalars(ids).all())
            if not found[key]:
                return None
        return found

    def _status_conditions(self, on: Target) -> list[ColumnElement[bool]]:
        status = self.record_status
        if on.status is not None:
            return [] if status is None else [on.status == status]
        # a target without a status (stored alerts) holds what final records call for
        return [] if status in (None, RecordStatus.FINAL.value) else [false()]

    def _lookups(self) -> list[tuple[str, Select[Any]]]:
        """(target column key, SELECT of the ids the names stand for), in the order the
        Records list's count plans them."""
        found: list[tuple[str, Select[Any]]] = []
        if self.sites:
            found.append(("site_id", select(Site.id).where(Site.name.in_(self.sites))))
        if self.rooms:
            found.append(("room_id", select(Room.id).join(Site, Site.id == Room.site_id).where(
                or_(Room.name.in_(self.rooms),
                    (Site.name + " · " + Room.name).in_(self.rooms)))))
        if self.physicians:
            found.append(("physician_id",
                          select(Physician.id).where(Physician.name.in_(self.physicians))))
        if self.technologists:
            found.append(("technologist_id", select(UserAccount.id).where(
                UserAccount.username.in_(self.technologists))))
        if self.procedures:
            found.append(("procedure_type_id", select(ProcedureType.id).where(
                ProcedureType.code.in_(self.procedures))))
        if self.patient_id:
            found.append(("patient_id", select(Patient.id).where(Patient.mrn == self.patient_id)))
        return found

    # --- the analysis frame -----------------------------------------------------------------

    def mask(self, frame: Frame) -> np.ndarray:
        """Which records of the analysis frame match (a boolean array over its rows).

        Unknown names are errors naming the filter and listing what is known. Vectorised (one
        gather per name filter); the last few masks are kept in the frame's cache.
        """
        import numpy as np

        key = f"mask:{self!r}"
        cached = frame.cache.get(key)
        if cached is not None:
            return cached
        if self.start and self.before and self.before <= self.start:
            raise ValidationFailed([FieldError("to", f"{self.last_day} is before the start "
                                                     f"{self.first_day}")])
        if self.patient_id:
            raise ValueError("the analysis frame holds no medical record numbers: filter a "
                             "patient in SQL (Filters.where)")
        r = frame.records
        errors: list[FieldError] = []
        mask = np.ones(len(r), dtype=bool)
        if self.record_status not in (None, RecordStatus.FINAL.value):
            mask[:] = False  # the frame holds final records only
        lo, hi = self.bounds()
        t = r["t"].to_numpy()
        if lo is not None:
            mask &= t >= lo
        if hi is not None:
            mask &= t < hi
        for names, labels, column, name, also in (
            (self.sites, frame.sites, "site_id", "site", None),
            (self.rooms, frame.rooms["label"], "room_id", "room", _room_names(frame)),
            (self.physicians, frame.physicians, "physician_id", "physician", None),
            (self.technologists, frame.technologists, "technologist_id", "technologist", None),
            (self.procedures, frame.types["code"], "type_id", "procedure", None),
        ):
            if names:
                ids = _ids_for(names, labels, name, errors, also)
                mask &= _member(r[column].to_numpy(), ids)
        if self.record_ids is not None:
            mask &= np.isin(r["id"].to_numpy(), np.asarray(self.record_ids, dtype=np.int64))
        if errors:
            raise ValidationFailed(errors)
        if len(frame.cache) < 64:  # a few recent filters; the frame is replaced on change
            frame.cache[key] = mask
        return mask


@dataclass(frozen=True)
class Target:
    """The columns `Filters.where` applies to: the procedure table, or a table that copies a
    record's keys (the stored alerts: audit.alerts.store). A filter the target has no column
    for is refused, except the status: a target without one holds final records only."""

    performed_at: Any
    record_id: Any
    site_id: Any
    room_id: Any
    physician_id: Any
    procedure_type_id: Any
    technologist_id: Any = None
    patient_id: Any = None
    status: Any = None

    def column(self, key: str) -> Any:
        found = getattr(self, key)
        if found is None:
            raise ValueError(f"these rows cannot be filtered by {key.removesuffix('_id')}")
        return found


PROCEDURES = Target(Procedure.performed_at, Procedure.id, Procedure.site_id, Procedure.room_id,
                    Procedure.physician_id, Procedure.procedure_type_id,
                    Procedure.technologist_id, Procedure.patient_id, Procedure.status)


class Frame(Protocol):
    """What `Filters.mask` reads of the analysis frame (audit.analytics.snapshot.Snapshot):
    records with `id`, `t` (epoch seconds) and name ids; id -> name tables; a cache."""

    @property
    def records(self) -> pd.DataFrame:
        """One row per final record: id, t and the name ids."""

    @property
    def sites(self) -> pd.Series:
        """id -> name."""

    @property
    def rooms(self) -> pd.DataFrame:
        """index id: name, site_id, label."""

    @property
    def physicians(self) -> pd.Series:
        """id -> name."""

    @property
    def technologists(self) -> pd.Series:
        """id -> username."""

    @property
    def types(self) -> pd.DataFrame:
        """index id: code, ..."""

    @property
    def cache(self) -> dict[str, Any]:
        """Derived arrays kept with the frame."""


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _day_end(day: date) -> datetime | None:
    """The midnight after `day`: a period's exclusive end; none after the last date there is
    (9999-12-31 + 1 day would overflow, and nothing lies beyond it)."""
    return None if day == date.max else _midnight(day + timedelta(days=1))


def _named(values: tuple[str, ...]) -> str | list[str] | None:
    """A name filter as the manifest writes it: None, the one name, or a list."""
    return None if not values else values[0] if len(values) == 1 else list(values)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else timestamp_text(moment)


def _room_names(frame: Frame) -> pd.Series:
    """id -> every name that finds a room: its name and "site · name" (its label is one of
    them), as in SQL (Filters._lookups)."""
    import pandas as pd

    rooms = frame.rooms
    named = rooms["name"].astype(str)
    at_site = rooms["site_id"].map(frame.sites).astype(str) + " · " + named
    return pd.concat([named, at_site])


def _ids_for(names: Sequence[str], labels: pd.Series, field_name: str,
             errors: list[FieldError], also: pd.Series | None = None) -> np.ndarray:
    """The ids of the named rows; `also` holds further names that find a row (a room's name
    and "site · name", beside its label). An unknown name is an error listing the labels."""
    import numpy as np

    lookup = {str(v): k for k, v in labels.items()}
    extra: dict[str, list[Any]] = {}
    for k, v in ([] if also is None else also.items()):
        extra.setdefault(str(v), []).append(k)
    ids: list[Any] = []
    for name in names:
        if name in lookup or name in extra:
            ids.extend(extra.get(name, [lookup.get(name)]))
        else:
            known = ", ".join(sorted(lookup)) or "none yet"
            errors.append(FieldError(field_name, f"no {field_name} named {name!r}; known: "
                                                 f"{known}"))
    return np.array(ids, dtype=np.int64)


def _member(values: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """np.isin for small non-negative ids: one gather through a lookup table (several times
    faster than isin's sort over a million records)."""
    import numpy as np

    if not len(values) or not len(ids):
        return np.zeros(len(values), dtype=bool)
    top = int(max(values.max(), ids.max()))
    if values.min() < 0 or ids.min() < 0 or top > 1 << 24:
        return np.isin(values, ids)
    table = np.zeros(top + 1, dtype=bool)
    table[ids] = True
    return table[values]


def single(value: str | None) -> tuple[str, ...]:
    """One optional name (a pick list's choice, a command-line option) as a name filter:
    () for none or "" (any). Taken exactly as given, like every name."""
    return (value,) if value else ()


# --- periods and names as a user gives them ------------------------------------------------

def parse_period(date_from: str | date | datetime | None,
                 date_to: str | date | datetime | None) -> tuple[datetime | None,
                                                                  datetime | None]:
    """Turn --from / --to into UTC bounds [from, to): Filters' start and before.

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
        return _day_end(raw) if end else _midnight(raw)
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
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # year 1 east of UTC, 9999 west of it
        raise ValidationFailed([FieldError(name, f"{raw} is beyond the dates a record can "
                                           "have; give a date (YYYY-MM-DD)")]) from None


def check_names(connection: Connection, filters: Filters) -> Filters:
    """Refuse names that match nothing in the database (an export emptied by a typo is worse
    than an error); procedure codes come back upper-cased."""
    errors: list[FieldError] = []
    codes = tuple(c.strip().upper() for c in filters.procedures)
    room_label = Site.name + " · " + Room.name

    def known(name: str, values: Iterable[str], column: Any, label: Any = None) -> None:
        for value in values:
            if not value:
                continue
            found = select(func.count()).where(column == value)
            if label is not None:
                found = (select(func.count()).select_from(Room)
                         .join(Site, Site.id == Room.site_id)
                         .where(or_(column == value, label == value)))
            if connection.scalar(found):
                continue
            names = connection.scalars(select(column).distinct().order_by(column)
                                       .limit(30)).all()
            errors.append(FieldError(name, f"no {name} named {value!r}; known: "
                                     f"{', '.join(repr(n) for n in names) or 'none'}"))

    known("site", filters.sites, Site.name)
    known("room", filters.rooms, Room.name, room_label)
    known("physician", filters.physicians, Physician.name)
    known("technologist", filters.technologists, UserAccount.username)
    known("procedure", codes, ProcedureType.code)
    if errors:
        raise ValidationFailed(errors)
    return replace(filters, procedures=codes)


def filter_choices(engine: Engine) -> dict[str, list[str]]:
    """The names the filters accept (for the pages' pick lists): sites, rooms, physicians and
    procedure codes, sorted."""
    with engine.connect() as connection:
        def names(column: Any) -> list[str]:
            return list(connection.scalars(select(column).distinct().order_by(column)))

        return {"site": names(Site.name), "room": names(Room.name),
                "physician": names(Physician.name), "procedure": names(ProcedureType.code)}

