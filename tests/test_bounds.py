"""audit.bounds: the limits every input path shares (pure functions, no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from audit import bounds

NOW = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "raw",
    [10**400, "1" * 5000, "inf", "-inf", "nan", "NaN", "Infinity", float("inf"), float("nan"),
     1e308, "1e308", "1e400", Decimal("1E+400"), Decimal("NaN"), Decimal("sNaN"), -(10**30)],
)
def test_extreme_numbers_are_refused_naming_the_range_never_overflowing(raw: object) -> None:
    with pytest.raises(ValueError, match=r"allowed: 0\.3 to 350 kg"):
        bounds.bounded_number(raw, 0.3, 350, unit="kg")


@pytest.mark.parametrize(
    ("raw", "value"),
    [("1,25", 1.25), ("0,125", 0.125), (",5", 0.5), ("12,5", 12.5), ("1,2500", 1.25),
     ("1250", 1250.0), ("1.25", 1.25), (" 7 ", 7.0), (Decimal("2.5"), 2.5), (3, 3.0)],
)
def test_a_decimal_comma_is_read_as_a_point(raw: object, value: float) -> None:
    assert bounds.finite_number(raw) == value


@pytest.mark.parametrize("raw", ["1,250", "12,500", "-1,250", "1,250,000", "1.250,5", "1,250.5"])
def test_a_comma_that_may_be_a_thousands_separator_is_refused(raw: str) -> None:
    with pytest.raises(bounds.AmbiguousNumber, match="use a point for decimals"):
        bounds.finite_number(raw)


def test_whole_numbers_and_range() -> None:
    assert bounds.bounded_number("12", 0, 100, integer=True) == 12
    with pytest.raises(ValueError, match="whole number"):
        bounds.bounded_number(2.5, 0, 100, integer=True)
    with pytest.raises(ValueError, match="101 is out of range; allowed: 0 to 100"):
        bounds.bounded_number(101, 0, 100, integer=True)
    with pytest.raises(ValueError, match="expected a number"):
        bounds.bounded_number(True, 0, 100)


@pytest.mark.parametrize(
    ("text", "problem"),
    [("a\x00b", "NUL"), ("\ud800", "lone surrogate"), ("x\udfffy", "lone surrogate"),
     ("bell\x07", "control characters"), ("x" * 121, "121 characters; at most 120")],
)
def test_text_problems_are_named(text: str, problem: str) -> None:
    assert problem in (bounds.text_problem(text, 120) or "")
    with pytest.raises(ValueError, match=problem):
        bounds.check_text(text, 120)


def test_tabs_line_breaks_and_astral_characters_are_clean_text() -> None:
    assert bounds.text_problem("line 1\nline 2\tend \U0001f600 µGy·m²", 120) is None


def test_shown_values_are_short_and_escaped() -> None:
    assert bounds.shown(10**400) == "a 401-digit number"
    assert len(bounds.shown("x" * 10_000)) <= 40
    assert bounds.shown("\x00\ud800") == "'\\x00\\ud800'"
    assert bounds.shown({"a": 1}) == "a dict"


@pytest.mark.parametrize(
    ("moment", "message"),
    [(datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))), "year 1 is outside"),
     (datetime(9999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-5))), "year 9999"),
     (datetime(2026, 3, 1, tzinfo=timezone(-timedelta(hours=23, minutes=59))),
      r"UTC offset -23:59 is no time zone's; allowed: -12:00 to \+14:00"),
     (datetime(2026, 3, 1, tzinfo=timezone(timedelta(hours=23))), r"UTC offset \+23:00"),
     (datetime(1989, 12, 31, 12, tzinfo=UTC), "before 1990-01-01"),
     (NOW + timedelta(hours=1), "in the future"),
     (datetime(2026, 3, 1), "needs a UTC offset")],
)
def test_the_date_window_and_real_offsets(moment: datetime, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bounds.check_moment(moment, NOW)


def test_the_real_extreme_offsets_are_accepted() -> None:
    for hours in (-12, 14):
        moment = datetime(2026, 3, 1, 12, tzinfo=timezone(timedelta(hours=hours)))
        assert bounds.check_moment(moment, NOW) == moment.astimezone(UTC)


def test_json_depth_and_size_are_bounded_without_recursion_error() -> None:
    with pytest.raises(bounds.InputTooLarge, match="nested too deeply"):
        bounds.loads_bounded("[" * 100_000 + "]" * 100_000)
    with pytest.raises(bounds.InputTooLarge, match="nested too deeply"):
        bounds.loads_bounded("[" * 50 + "]" * 50)  # within the parser's reach, beyond ours
    with pytest.raises(bounds.InputTooLarge, match="characters; at most"):
        bounds.loads_bounded(" " * (bounds.MAX_JSON_CHARS + 1))
    assert bounds.loads_bounded('[{"levels": ["L4"]}]') == [{"levels": ["L4"]}]


def test_json_keeps_over_long_integers_as_text_and_non_finite_as_floats() -> None:
    value = bounds.loads_bounded('{"a": ' + "9" * 5000 + ', "b": NaN, "c": 1e400, "d": 12}')
    assert value["a"] == "9" * 5000
    assert value["b"] != value["b"] and value["c"] == float("inf") and value["d"] == 12


@pytest.mark.parametrize("raw", ["1_000", "\u0661\u0662", "0x10", "1e", "--1", "1.2.3"])
def test_only_plain_ascii_numbers_are_numbers(raw: str) -> None:
    with pytest.raises(ValueError, match="expected a number"):
        bounds.finite_number(raw)
