"""A report's irradiation events, from what the content walk collected to what is stored.

Why apart from the reader: the totals decide whether a report is imported at all, the events
only describe it. So everything here is lenient where the reader is strict: a figure whose
unit was not understood (audit.dose_reports.content_tree), or whose value lies outside its
range (audit.dose_reports.bounds.event_value_problem), is left out of its event with a warning
the report keeps; an event type or fluoro mode outside the standard's codes is "other" or
empty. Nothing here ever rejects a report.
"""

from __future__ import annotations

from datetime import datetime, timezone

from pydicom.valuerep import DT

from audit.dose_reports.bounds import event_value_problem
from audit.dose_reports.codes import (
    EVENT_TYPE_NAMES,
    EVENT_VALUES,
    FLUORO_MODE_NAMES,
    PLANE_LABELS,
    Concept,
)
from audit.dose_reports.content_tree import EventAccumulator, Findings
from audit.dose_reports.report import IrradiationEvent

#: Event fields filled from EVENT_VALUES, and the spec that names each in a warning.
_SPECS = {spec.field: spec for spec in EVENT_VALUES.values()}


def build_events(found: Findings, zone: timezone | None) -> tuple[IrradiationEvent, ...]:
    """Every event in document order; warnings for what is left out go to ``found``.

    ``zone`` is the file's own UTC offset (TimezoneOffsetFromUTC), given to a start time that
    states none; without it the time stays naive and the importer reads it in the site's zone,
    as it does the study time.
    """
    return tuple(_event(number, accumulator, found, zone)
                 for number, accumulator in enumerate(found.events, start=1))


def _event(number: int, acc: EventAccumulator, found: Findings,
           zone: timezone | None) -> IrradiationEvent:
    values: dict[str, float | None] = {}
    for name, value in acc.values.items():
        problem = event_value_problem(name, value)
        if problem is not None:
            spec = _SPECS[name]
            found.warn(spec.meaning, spec.code, problem)
            continue
        values[name] = value
    average = values.pop("average_tube_current_ma", None)
    if values.get("tube_current_ma") is None:
        values["tube_current_ma"] = average
    event_type = None
    if acc.event_type is not None:
        event_type = EVENT_TYPE_NAMES.get(acc.event_type, "other")
    return IrradiationEvent(
        sequence=number,
        uid=acc.uid.replace("\x00", "")[:64] or None if acc.uid else None,
        event_type=event_type,
        fluoro_mode=FLUORO_MODE_NAMES.get(acc.fluoro_mode or ""),
        plane=PLANE_LABELS.get(acc.plane_code or ""),
        started_at=_started(acc.started, found, zone),
        **values,
    )


def _started(text: str | None, found: Findings, zone: timezone | None) -> datetime | None:
    """DateTime Started (DT); a malformed one is left out with a warning."""
    if text is None:
        return None
    try:
        moment = DT(text)
    except (TypeError, ValueError, OverflowError):
        moment = None
    if not isinstance(moment, datetime) or not (
            datetime.min.year < moment.year < datetime.max.year):
        found.warn("DateTime Started", Concept.DATETIME_STARTED,
                   f"{text[:40]!r} is not a DICOM date-time")
        return None
    if moment.tzinfo is None and zone is not None:
        moment = moment.replace(tzinfo=zone)
    return datetime(moment.year, moment.month, moment.day, moment.hour, moment.minute,
                    moment.second, moment.microsecond, tzinfo=moment.tzinfo)


__all__ = ["build_events"]
