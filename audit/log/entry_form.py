"""What the "Log procedure" and amend forms show, and how their values become a record.

Pure (no database, no widgets): the page asks `layout_for(entry)` which fields a procedure type
needs, and turns what was typed into the same dictionary-field input the command line takes
(`build_record`), so a record entered on screen and one sent through `fluoro-audit log` go
through the same validation and are stored identically.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from audit.catalog import CatalogEntry
from audit.dictionary import BY_NAME
from audit.vocab import (
    ALL_LEVELS,
    SPINE,
    ContrastConfirmation,
    ContrastPolicy,
    level_order,
    level_region,
)

CC = ContrastConfirmation

#: Contrast fields shown for each confirmation status (the rest are hidden and not sent).
CONTRAST_DETAIL: dict[ContrastConfirmation, tuple[str, ...]] = {
    CC.CONFIRMED: ("contrast_agent", "contrast_volume_ml", "confirmation_views",
                   "realtime_contrast", "vascular_uptake", "needle_repositioned"),
    CC.NOT_CONFIRMED: ("contrast_agent", "contrast_volume_ml", "vascular_uptake",
                       "needle_repositioned"),
    CC.CONTRAINDICATED: ("contrast_exception_reason", "contrast_exception_detail"),
    CC.NOT_REQUIRED: (),
}
ALL_CONTRAST_FIELDS = frozenset(f for fields in CONTRAST_DETAIL.values() for f in fields)

CONTRAST_LABELS = {
    CC.CONFIRMED: "Confirmed with contrast",
    CC.NOT_CONFIRMED: "Contrast used, placement not confirmed",
    CC.CONTRAINDICATED: "Contraindicated (give the reason)",
    CC.NOT_REQUIRED: "Not required",
}


@dataclass(frozen=True)
class FormLayout:
    """The parts of the entry form one procedure type needs."""

    code: str
    levels: tuple[str, ...]  # levels offered (empty: no levels field)
    levels_required: bool
    max_levels: int | None
    laterality: bool
    contrast_choices: tuple[ContrastConfirmation, ...]
    contrast_default: ContrastConfirmation
    contrast_policy: ContrastPolicy
    realtime_required: bool
    min_views: int

    def contrast_fields(self, status: ContrastConfirmation) -> tuple[str, ...]:
        return CONTRAST_DETAIL[status]

    @property
    def levels_allowed(self) -> str:
        """The levels this type takes, in words: "S1 to S5, coccyx or SIJ" (a vertebra range
        says "to", so that it never reads as a segment such as L5-S1)."""
        vertebrae = [lv for lv in self.levels if lv in SPINE]
        segments = [lv for lv in self.levels if "-" in lv]
        parts: list[str] = []
        for prefix in dict.fromkeys(lv[0] for lv in vertebrae):
            run = [lv for lv in vertebrae if lv[0] == prefix]
            parts.append(run[0] if len(run) == 1 else f"{run[0]} to {run[-1]}")
        if segments:
            parts.append(segments[0] if len(segments) == 1
                         else f"segments {segments[0]} to {segments[-1]}")
        parts += [lv for lv in self.levels if lv not in SPINE and "-" not in lv]
        if len(parts) < 2:
            return "".join(parts)
        return f"{', '.join(parts[:-1])} or {parts[-1]}"

    @property
    def levels_example(self) -> str:
        """Two levels this type takes, to show how one is typed ("L4 or L5-S1")."""
        usual = [lv for lv in ("L4", "L5-S1") if lv in self.levels]
        picked = usual if len(usual) == 2 else list(self.levels[:2])
        return " or ".join(picked)

    @property
    def levels_hint(self) -> str:
        """The levels field's placeholder: what this type takes when that is short ("Type a
        level: S1 to S5, coccyx or SIJ"), else how one is typed; the field's help says all."""
        allowed = self.levels_allowed
        return f"Type a level: {allowed}" if len(allowed) <= 40 \
            else f"Type e.g. {self.levels_example}"


def layout_for(entry: CatalogEntry) -> FormLayout:
    """Levels of the type's regions only; laterality where the catalog asks for it; the
    contrast statuses its policy allows (`not_required` is refused for required types, so it is
    not offered), defaulting to the usual answer."""
    levels = tuple(sorted((lv for lv in ALL_LEVELS if level_region(lv) in entry.level_regions),
                          key=level_order))
    if entry.contrast_policy is ContrastPolicy.REQUIRED:
        choices: tuple[ContrastConfirmation, ...] = (CC.CONFIRMED, CC.NOT_CONFIRMED,
                                                      CC.CONTRAINDICATED)
        default = CC.CONFIRMED
    elif entry.contrast_policy is ContrastPolicy.RECOMMENDED:
        choices = (CC.CONFIRMED, CC.NOT_CONFIRMED, CC.CONTRAINDICATED, CC.NOT_REQUIRED)
        default = CC.CONFIRMED
    else:
        choices = (CC.NOT_REQUIRED, CC.CONFIRMED, CC.NOT_CONFIRMED, CC.CONTRAINDICATED)
        default = CC.NOT_REQUIRED
    return FormLayout(
        code=entry.code, levels=levels, levels_required=entry.levels_required,
        max_levels=entry.max_levels, laterality=entry.laterality_required,
        contrast_choices=choices, contrast_default=default,
        contrast_policy=entry.contrast_policy,
        realtime_required=entry.realtime_contrast_required, min_views=entry.min_views,
    )


def zone(name: str | None) -> ZoneInfo | None:
    """The browser's time zone, if it is a name zoneinfo knows. Any other name is None: a
    folder of the zone database ("America") or an over-long name raises OSError, not
    ZoneInfoNotFoundError."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def performed_at_iso(day: date, clock: time, tz: ZoneInfo | None) -> str:
    """Date and time as typed, in the user's zone (else the server's), with its UTC offset:
    the input validation refuses a time without one."""
    moment = datetime.combine(day, clock.replace(second=0, microsecond=0))
    moment = moment.replace(tzinfo=tz) if tz is not None else moment.astimezone()
    return moment.isoformat()


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or (
        isinstance(value, list | tuple) and not value)


def tri_state(choice: str | None) -> bool | None:
    """A yes/no/blank picker to a boolean, or None when left blank."""
    return {"yes": True, "no": False}.get((choice or "").strip().lower())


def build_record(values: Mapping[str, Any], layout: FormLayout) -> dict[str, Any]:
    """Dictionary-field input from the form: hidden fields and blanks are left out, text is
    trimmed, lists stay lists. The result is what `fluoro-audit log` would be given."""
    status = CC.parse(values.get("contrast_confirmation") or layout.contrast_default)
    shown_contrast = set(layout.contrast_fields(status))
    record: dict[str, Any] = {}
    for name, value in values.items():
        if name in ALL_CONTRAST_FIELDS and name not in shown_contrast:
            continue
        if name == "levels" and not layout.levels:
            continue
        if name == "laterality" and not layout.laterality:
            continue
        if _empty(value):
            continue
        record[name] = value.strip() if isinstance(value, str) else value
    record["contrast_confirmation"] = status.value
    return record


# --- amend ---------------------------------------------------------------------------------------

#: Fields an amend form offers, in dictionary order. dap_gycm2 is derived from value and unit.
AMENDABLE = tuple(
    name for name, f in BY_NAME.items()
    if f.io.value == "in/out" and name not in {"dap_gycm2", "technologist"}
)
LIST_FIELDS = frozenset({"levels", "confirmation_views"})
DAP_INPUT = frozenset({"dap_value", "dap_unit", "dap_missing_reason"})


def as_text(value: Any) -> str:
    """A stored value as the text an amend form shows (lists ';'-separated, booleans yes/no)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return "; ".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:.10g}"
    return str(value)


def amend_changes(record: Mapping[str, Any], edited: Mapping[str, str]) -> dict[str, Any]:
    """The fields whose text differs from the record's, as amend input.

    A blank clears a field; booleans go as true/false; lists are split. If any part of the DAP
    changed, value, unit and missing-reason go together (the service replaces the DAP whole).
    """
    changes: dict[str, Any] = {}
    for name, text in edited.items():
        if name not in AMENDABLE or text.strip() == as_text(record.get(name)).strip():
            continue
        if name == "performed_at" and _same_instant(text, record.get(name)):
            continue  # shown in the user's zone, stored in UTC: the same moment
        changes[name] = _parse_edit(name, text)
    if DAP_INPUT & set(changes):
        for name in DAP_INPUT:
            changes.setdefault(name, _parse_edit(name, edited.get(
                name, as_text(record.get(name)))))
    return changes


def _same_instant(text: str, stored: Any) -> bool:
    try:
        typed = datetime.fromisoformat(text.strip())
        kept = datetime.fromisoformat(str(stored))
    except ValueError:
        return False
    return typed.tzinfo is not None and kept.tzinfo is not None and typed == kept


def _parse_edit(name: str, text: str) -> Any:
    text = text.strip()
    if not text:
        return [] if name in LIST_FIELDS else None
    if name in LIST_FIELDS:
        return [part.strip() for part in text.replace(",", ";").split(";") if part.strip()]
    if BY_NAME[name].type == "boolean":
        state = tri_state(text)
        return text if state is None else state
    return text


def dose_in_words(effective_msv: float | None, background_days: float | None) -> str:
    """The patient's estimated effective dose as a person would say it."""
    if effective_msv is None or background_days is None:
        return ("No DAP was recorded, so there is no effective dose estimate for this "
                "procedure.")
    if background_days < 1:
        days = "less than one day"
    elif background_days < 1.5:
        days = "about 1 day"
    else:
        days = f"about {round(background_days):,} days"
    return (f"Estimated effective dose {effective_msv:.2g} mSv: {days} of natural background "
            "radiation.")
