"""The shape of each raw input value, checked before any field's own parse.

Why a first pass: input arrives as whatever JSON, a CSV cell or a form holds, and a field's
parser (a unit, an enum, a date) should only ever see a value of a sensible type and size. So
every field's value is screened once, by the field's dictionary type: no JSON object where a
value belongs, a list only in a list field (bounded by its max_items, each item short, clean
text), text without NUL, lone surrogates or control characters and no longer than the type
allows, integers no longer than a number may be. A value that fails is reported once, naming
the field, and its field is then treated as given-but-invalid (no second "required" error).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from audit import bounds
from audit.dictionary import BY_NAME, Field, Io

#: Longest item of a list field ("L5-S1", "contralateral oblique").
MAX_ITEM_CHARS = 32
#: Input names that are not dictionary fields but feed one (an alternative spelling).
ALIASES = {"fluoro_time": "fluoro_time_s"}


def spec_for(name: str) -> Field | None:
    """The dictionary field whose rules a raw input name follows, if any (output-only fields are
    ignored on input, so they are not screened either)."""
    spec = BY_NAME.get(ALIASES.get(name, name))
    return spec if spec is not None and spec.io is Io.IN_OUT else None


def _noun(spec: Field) -> str:
    return {"text": "text", "number": "a number", "integer": "a whole number",
            "enum": "one of the allowed values", "boolean": "true or false",
            "datetime": "an ISO 8601 date-time", "list": "a list"}.get(spec.type, "a value")


def _range(spec: Field) -> str:
    """"; allowed: 0 to 350 kg" for a bounded number, else nothing."""
    if spec.minimum is None or spec.maximum is None:
        return ""
    return "; allowed: " + bounds.range_text(spec.minimum, spec.maximum, spec.bound_unit)


def _text_limit(spec: Field) -> int:
    if spec.type == "text":
        return spec.text_limit
    if spec.type in ("number", "integer"):
        return bounds.MAX_NUMBER_CHARS
    if spec.type == "list":
        return (spec.max_items or 1) * (MAX_ITEM_CHARS + 2)
    return bounds.MAX_CHOICE_CHARS


def _list_problem(spec: Field, items: list[Any] | tuple[Any, ...]) -> str | None:
    if spec.max_items is not None and len(items) > spec.max_items:
        return f"has {len(items)} items; at most {spec.max_items} allowed"
    for item in items:
        if not isinstance(item, str):
            return f"expected text items, got {bounds.shown(item)}"
        problem = bounds.text_problem(item.strip(), MAX_ITEM_CHARS)
        if problem:
            return f"item {bounds.shown(item)} {problem}"
    return None


def screen(name: str, value: Any) -> str | None:
    """What is wrong with the shape of `value` for input field `name`, or None."""
    spec = spec_for(name)
    if spec is None or value is None or isinstance(value, bool):
        return None
    if isinstance(value, Mapping):
        return f"expected {_noun(spec)}, got a JSON object"
    if isinstance(value, list | tuple):
        if spec.type != "list":
            return f"expected {_noun(spec)}, got a list"
        return _list_problem(spec, value)
    if isinstance(value, str):
        text = value.strip()
        problem = bounds.text_problem(text, _text_limit(spec))
        if problem and problem.startswith("is ") and spec.type in ("number", "integer"):
            return f"is {len(text)} characters, too long for a number{_range(spec)}"
        return problem
    too_long = isinstance(value, int) and abs(value) >= 10 ** bounds.MAX_NUMBER_CHARS
    if too_long and spec.type not in ("number", "integer"):
        return f"{bounds.shown(value)} is too long"
    return None


def screen_all(data: Mapping[str, Any]) -> dict[str, str]:
    """Each input field of `data` whose value has the wrong shape, with what is wrong."""
    found = {}
    for name, value in data.items():
        problem = screen(str(name), value)
        if problem:
            found[str(name)] = problem
    return found
