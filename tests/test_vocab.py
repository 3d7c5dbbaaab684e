"""Spinal levels and the enumerations."""

from __future__ import annotations

import pytest

from audit.vocab import (
    ALL_LEVELS,
    ContrastConfirmation,
    Region,
    Sex,
    View,
    level_order,
    level_region,
    parse_level,
)


@pytest.mark.parametrize(
    ("raw", "level"),
    [("L4-L5", "L4-L5"), ("l4-5", "L4-L5"), ("L4/L5", "L4-L5"), ("L4–L5", "L4-L5"),
     ("L5-S1", "L5-S1"), ("c7-t1", "C7-T1"), ("S1", "S1"), ("coccyx", "coccyx"),
     ("SI joint", "SIJ"), ("T12-L1", "T12-L1")],
)
def test_levels_normalise(raw: str, level: str) -> None:
    assert parse_level(raw) == level


@pytest.mark.parametrize("raw", ["L9-L10", "L6", "C8", "L4-L6", "S1-S2", "X1", ""])
def test_impossible_levels_are_refused_with_what_is_allowed(raw: str) -> None:
    with pytest.raises(ValueError, match="allowed: vertebrae C1-C7"):
        parse_level(raw)


def test_the_spine_has_every_level_once() -> None:
    assert len(ALL_LEVELS) == len(set(ALL_LEVELS))
    assert {"C1", "C7", "T12", "L5", "S5", "C1-C2", "L5-S1", "coccyx", "SIJ"} <= set(ALL_LEVELS)
    # 24 mobile vertebrae + 5 sacral, 24 segments down to L5-S1, coccyx, SIJ
    assert len(ALL_LEVELS) == 29 + 24 + 2


@pytest.mark.parametrize(
    ("level", "region"),
    [("C5-C6", Region.CERVICAL), ("C7-T1", Region.CERVICAL), ("T12-L1", Region.THORACIC),
     ("L5-S1", Region.LUMBAR), ("S1", Region.SACRAL), ("SIJ", Region.SACRAL)],
)
def test_level_region(level: str, region: Region) -> None:
    assert level_region(level) is region


def test_levels_sort_top_to_bottom() -> None:
    assert sorted(["L5-S1", "L4", "L4-L5", "C2"], key=level_order) == ["C2", "L4", "L4-L5",
                                                                       "L5-S1"]


def test_enum_parsing_is_forgiving_but_strict() -> None:
    assert ContrastConfirmation.parse("Not Confirmed") is ContrastConfirmation.NOT_CONFIRMED
    assert Sex.parse("female") is Sex.F
    assert View.parse("lateral") is View.LAT
    with pytest.raises(ValueError, match="allowed: confirmed, not_confirmed"):
        ContrastConfirmation.parse("maybe")
