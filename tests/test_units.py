"""Units: every DAP unit the C-arms display, fluoroscopy time forms, air kerma."""

from __future__ import annotations

import pytest

from audit import units
from audit.vocab import DapUnit


@pytest.mark.parametrize(
    ("value", "unit", "gycm2"),
    [
        (1.25, "Gy·cm²", 1.25),
        (12.5, "dGy·cm²", 1.25),
        (125, "cGy·cm²", 1.25),
        (1250, "mGy·cm²", 1.25),
        (125, "µGy·m²", 1.25),
        (0.000125, "Gy·m²", 1.25),
        # the spellings people and vendors use
        (125, "uGy.m2", 1.25),
        (125, "μGy·m²", 1.25),  # Greek mu
        (125, "cGy*cm^2", 1.25),
        (1.25, "Gycm2", 1.25),
        (0.000125, "Gy.m2", 1.25),
    ],
)
def test_dap_units_convert_to_gycm2(value: float, unit: str, gycm2: float) -> None:
    dap = units.parse_dap(value, unit)
    assert dap.gycm2 == pytest.approx(gycm2)
    assert dap.value == value


def test_dap_keeps_the_canonical_label_of_the_unit_entered() -> None:
    assert units.parse_dap(125, "uGy.m2").unit is DapUnit.UGY_M2
    assert DapUnit.UGY_M2.value == "µGy·m²"


@pytest.mark.parametrize("unit", ["mGy", "Gy", "cGy"])
def test_air_kerma_unit_is_not_a_dap_unit(unit: str) -> None:
    with pytest.raises(ValueError, match=r"not a dose-area product unit.*air_kerma_mgy"):
        units.parse_dap(5, unit)


def test_unknown_dap_unit_lists_the_allowed_ones() -> None:
    with pytest.raises(ValueError) as info:
        units.parse_dap(5, "R·cm²")
    for unit in DapUnit:
        assert unit.value in str(info.value)


def test_negative_and_absurd_dap_are_refused() -> None:
    with pytest.raises(ValueError, match="zero or more"):
        units.parse_dap(-1, "Gy·cm²")
    with pytest.raises(ValueError, match="check the unit"):
        units.parse_dap(5, "Gy·m²")  # 50,000 Gy·cm²


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        (78, 78.0),
        ("78", 78.0),
        ("78 s", 78.0),
        ("1:18", 78.0),
        ("0:05", 5.0),
        ("12:00", 720.0),
        ("1.3 min", 78.0),  # C-arms show minutes and tenths: 1.3 min is 78 s, not 1:30
        ("1,3 min", 78.0),
        ("2 minutes", 120.0),
        (0, 0.0),
    ],
)
def test_fluoro_time_forms(raw: object, seconds: float) -> None:
    assert units.parse_fluoro_time(raw) == seconds


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (-3, "zero or more"),
        ("-3", "zero or more"),
        ("1:75", "seconds must be 00-59"),
        ("abc", "not a time"),
        ("1.3 hours", "not a time"),
        (10 * 3600, "hours of beam-on time"),
        (True, "expected fluoroscopy time"),
    ],
)
def test_fluoro_time_errors_say_what_is_allowed(raw: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        units.parse_fluoro_time(raw)


@pytest.mark.parametrize(
    ("raw", "mgy"), [(12.5, 12.5), ("12.5", 12.5), ("1.2 Gy", 1200.0), ("800 uGy", 0.8)]
)
def test_air_kerma(raw: object, mgy: float) -> None:
    assert units.parse_air_kerma(raw) == pytest.approx(mgy)


def test_format_duration() -> None:
    assert units.format_duration(78) == "1:18"
    assert units.format_duration(3600) == "60:00"
