"""Bounds every input shares: finite numbers in range, clean text, a sane date window and UTC
offset, and bounded JSON.

Why one module: the entry form, `fluoro-audit log`, CSV import and amend all end in
audit.log.validation, and the dose-report reader takes the same kinds of figures from files; a
bound written twice drifts, and an unchecked one ends in a traceback (10**400 overflowing a
float, year 1 overflowing a UTC conversion, a NUL that PostgreSQL refuses to store). Each check
raises ValueError with a sentence saying what is allowed; the caller prefixes the field name.
The per-field ranges and text lengths stay in audit.dictionary; the limits here are the ones no
field may exceed. Pure: no database.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

#: Longest text taken as a number ("1.3 min", "0.000125", "1.2e-3 Gy" all fit easily).
MAX_NUMBER_CHARS = 40
#: Longest text taken for a choice: an allowed value, a yes/no, a date-time.
MAX_CHOICE_CHARS = 64
#: Largest magnitude a number may have before any range check (far beyond every field's bound;
#: a float holds it exactly enough, so comparing it cannot overflow).
MAX_MAGNITUDE = 1e15
#: Largest JSON input `fluoro-audit log` reads, in characters.
MAX_JSON_CHARS = 16 * 1024 * 1024
#: Deepest nesting of JSON input: an array of records, each an object, a list field, its items,
#: and a little room so a wrongly nested value is named by its field rather than refused whole.
MAX_JSON_DEPTH = 8
#: The earliest performed_at: before it is a typo in the year.
EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)
#: How far ahead of the server's clock a performed_at may be (clocks drift).
CLOCK_SKEW = timedelta(minutes=5)
#: The UTC offsets real time zones use (Baker Island -12:00 to Kiribati +14:00).
MIN_UTC_OFFSET = timedelta(hours=-12)
MAX_UTC_OFFSET = timedelta(hours=14)

_CONTROL = re.compile(r"[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
# A comma before exactly three digits after one to three digits reads as a thousands separator
# in one country and as a decimal comma in the next: "1,250" is 1250 or 1.25.
_THOUSANDS = re.compile(r"^[+-]?[1-9]\d{0,2}(,\d{3})+$")
_DECIMAL_COMMA = re.compile(r"^[+-]?\d*,\d+(e[+-]?\d+)?$", re.IGNORECASE)
_NUMERIC = re.compile(r"^[+-]?[\d.,]+$")
_PLAIN_NUMBER = re.compile(r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$")
_NON_FINITE = frozenset({"inf", "infinity", "nan"})
DECIMALS_HINT = "use a point for decimals (1.25) and no thousands separators (1250)"


class AmbiguousNumber(ValueError):
    """A number written with a comma that may be a thousands separator ("1,250")."""


def shown(value: Any, limit: int = 40) -> str:
    """A value as an error message quotes it: repr, cut short (a message must not carry a
    megabyte of input, nor a NUL or a lone surrogate unescaped)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**limit:
        return f"a {int(value.bit_length() * 0.30103) + 1}-digit number"
    if isinstance(value, str) and len(value) > 4 * limit:
        value = value[:limit]
    text = repr(value) if isinstance(value, str | int | float | Decimal) else (
        f"a {type(value).__name__}")
    return text if len(text) <= limit else text[:limit - 1] + "…"


def has_surrogate(text: str) -> bool:
    """Whether `text` holds a lone surrogate: not valid Unicode, so it cannot be encoded to be
    stored, hashed or sent in a query."""
    return _SURROGATE.search(text) is not None


def text_problem(text: str, limit: int) -> str | None:
    """What makes `text` unfit to store, or None: a NUL, a lone surrogate (not valid Unicode,
    and no database stores it), another control character, or more than `limit` characters.
    Tabs and line breaks are allowed (notes have them)."""
    if "\x00" in text:
        return "contains a NUL character (\\x00); remove it"
    if _SURROGATE.search(text):
        return "contains an invalid character (a lone surrogate); retype the text"
    if _CONTROL.search(text):
        return "contains control characters"
    if len(text) > limit:
        return f"is {len(text)} characters; at most {limit} allowed"
    return None


def check_text(text: str, limit: int) -> str:
    """`text` if it is fit to store (see text_problem), else ValueError."""
    problem = text_problem(text, limit)
    if problem:
        raise ValueError(problem)
    return text


def decimal_text(text: str, allowed: str = "") -> str:
    """Numeric text with a decimal point. A decimal comma ("1,25", "0,125") is read as a point,
    as European spreadsheets and C-arm displays write it; a comma that could be a thousands
    separator ("1,250", "12,500") or more than one separator ("1.250,5", "1,250,000") is refused,
    not guessed: 1,250 read as 1.25 is a 1000x dose error. Text that is no number at all is left
    for the caller's parse to refuse."""
    text = text.strip()
    if "," not in text:
        return text
    if _DECIMAL_COMMA.match(text) and not _THOUSANDS.match(text):
        return text.replace(",", ".")
    if _NUMERIC.match(text):
        suffix = f"; allowed: {allowed}" if allowed else ""
        raise AmbiguousNumber(f"{shown(text)} is ambiguous: {DECIMALS_HINT}{suffix}")
    return text


def finite_number(raw: Any, what: str = "a number", allowed: str = "") -> float:
    """A finite float from a number or numeric text, without overflow: 10**400, a 5000-digit
    text, "inf", "nan" and 1e400 are refused with a sentence (ending in `allowed`, the field's
    range, when given), never an OverflowError."""
    suffix = f"; allowed: {allowed}" if allowed else ""
    if isinstance(raw, bool) or raw is None:
        raise ValueError(f"expected {what}, got {shown(raw)}{suffix}")
    if isinstance(raw, int):
        if abs(raw) > MAX_MAGNITUDE:
            raise ValueError(f"{shown(raw)} is out of range{suffix}")
        return float(raw)
    if isinstance(raw, float | Decimal):
        value = raw
    elif isinstance(raw, str):
        text = raw.strip()
        if not text:
            raise ValueError(f"expected {what}, got nothing{suffix}")
        if len(text) > MAX_NUMBER_CHARS:
            raise ValueError(f"is {len(text)} characters, too long for a number{suffix}")
        normal = decimal_text(text, allowed)
        if not _PLAIN_NUMBER.match(normal):  # float() would also take "1_000", "١٢", "inf"
            wanted = "a finite number" if normal.lstrip("+-").lower() in _NON_FINITE else what
            raise ValueError(f"expected {wanted}, got {shown(raw)}{suffix}")
        value = float(normal)
    else:
        raise ValueError(f"expected {what}, got {shown(raw)}{suffix}")
    if isinstance(value, Decimal):
        if not value.is_finite() or abs(value) > Decimal(MAX_MAGNITUDE):
            raise ValueError(f"{shown(raw)} is not a finite number in range{suffix}")
        return float(value)
    if not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {shown(raw)}{suffix}")
    if abs(value) > MAX_MAGNITUDE:
        raise ValueError(f"{value:g} is out of range{suffix}")
    return value


def range_text(low: float, high: float, unit: str = "") -> str:
    """"0.3 to 350 kg": a range as the messages and docs print it."""
    return f"{low:g} to {high:g}" + (f" {unit}" if unit else "")


def bounded_number(raw: Any, low: float, high: float, *, unit: str = "",
                   integer: bool = False) -> float | int:
    """A finite number within [low, high] (a whole one if `integer`); ValueError names the
    allowed range."""
    allowed = range_text(low, high, unit)
    number = finite_number(raw, "a whole number" if integer else "a number", allowed)
    if integer and number != int(number):
        raise ValueError(f"expected a whole number, got {shown(raw)}; allowed: {allowed}")
    if not low <= number <= high:
        raise ValueError(f"{number:g} is out of range; allowed: {allowed}")
    return int(number) if integer else number


def offset_text(offset: timedelta) -> str:
    """-05:00, +14:00 (what a person types after a time)."""
    minutes = int(offset.total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def window_text() -> str:
    return f"{EARLIEST.date()} to now"


def check_moment(moment: datetime, now: datetime) -> datetime:
    """An aware date-time, in UTC, within the window (EARLIEST to now + CLOCK_SKEW) and with a
    real time zone's UTC offset. Year 1 and 9999 are refused by name, never overflowed."""
    offset = moment.utcoffset()
    if offset is None:
        raise ValueError("needs a UTC offset (e.g. 2026-03-14T09:30:00-05:00 or ...Z): a time "
                         "without one is ambiguous")
    if not MIN_UTC_OFFSET <= offset <= MAX_UTC_OFFSET:
        raise ValueError(f"UTC offset {offset_text(offset)} is no time zone's; allowed: "
                         f"{offset_text(MIN_UTC_OFFSET)} to {offset_text(MAX_UTC_OFFSET)}")
    if not EARLIEST.year - 1 <= moment.year <= now.year + 1:
        raise ValueError(f"year {moment.year} is outside {window_text()}: check the year")
    moment = moment.astimezone(UTC)
    if moment > now + CLOCK_SKEW:
        raise ValueError(f"{moment.isoformat()} is in the future; a procedure is logged after it "
                         "is performed")
    if moment < EARLIEST:
        raise ValueError(f"{moment.date()} is before {EARLIEST.date()}: check the year")
    return moment


def _long_int(digits: str) -> int | str:
    """JSON integers longer than a number may be stay text, so the field that holds one is
    named in the error (int() of thousands of digits raises for the whole document)."""
    return int(digits) if len(digits) <= MAX_NUMBER_CHARS else digits


def json_depth(value: Any) -> int:
    """How deeply `value` nests (a scalar is 0), walked without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_JSON_DEPTH:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest


class InputTooLarge(ValueError):
    """JSON input beyond MAX_JSON_CHARS or MAX_JSON_DEPTH: refused whole, before validation."""


def loads_bounded(text: str) -> Any:
    """json.loads with the limits input needs: at most MAX_JSON_CHARS characters and
    MAX_JSON_DEPTH levels (ValueError, never RecursionError); NaN and Infinity come back as
    floats, and over-long integers as text, for validation to refuse by field name."""
    if len(text) > MAX_JSON_CHARS:
        raise InputTooLarge(f"input is {len(text):,} characters; at most {MAX_JSON_CHARS:,} "
                         "allowed: split it into smaller files")
    try:
        value = json.loads(text, parse_int=_long_int)
    except RecursionError:
        raise InputTooLarge(f"JSON nested too deeply: at most {MAX_JSON_DEPTH} levels") from None
    if json_depth(value) > MAX_JSON_DEPTH:
        raise InputTooLarge(f"JSON nested too deeply: at most {MAX_JSON_DEPTH} levels")
    return value
