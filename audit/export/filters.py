"""What an export covers: its filters, the period they bound, and the names they accept.

Kept apart from the runner so that the sections (which apply the filters in SQL) and the runner
(which checks them before reading) share one definition without importing each other. The
rules: a date is a whole UTC day (from inclusive, to includes its whole day); a date-time with
an offset is an exact instant (from inclusive, to exclusive); a name that matches nothing is an
error naming the field, never an empty export.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from audit.errors import FieldError, ValidationFailed
from audit.export import cells as csvsafe
from audit.storage.models import Physician, ProcedureType, Room, Site


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


def filter_choices(engine: Engine) -> dict[str, list[str]]:
    """The names the filters accept (for the page's pick lists): sites, rooms, physicians and
    procedure codes, sorted."""
    with engine.connect() as connection:
        def names(column: Any) -> list[str]:
            return list(connection.scalars(select(column).distinct().order_by(column)))

        return {"site": names(Site.name), "room": names(Room.name),
                "physician": names(Physician.name), "procedure": names(ProcedureType.code)}
