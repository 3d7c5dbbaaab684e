"""Every unit of a dose figure the log accepts, and the parsers of what people type.

Why one table: the same units arrive from three directions (a C-arm's RDSR, a person at the entry
form, a spreadsheet's column header) and a wrong factor is a 10x, 100x or 1000x dose error in the
audit (docs/reference.md §2). So every spelling and factor lives in :data:`UNITS` below, once;
each reader looks only at the spellings of its own source, because each source is allowed a
different set (an RDSR carries case-sensitive UCUM codes; people type "1.3 min").

The stored units are canonical (Gy·cm², s, mGy); what was entered is kept beside them, because a
unit mix-up can only be found later if the original is still there. Every parser raises
ValueError with a sentence that says what is allowed; the service prefixes the field name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from audit import bounds
from audit.vocab import DapUnit

#: Longest plausible beam-on time for any fluoroscopic procedure; beyond this it is a typo.
MAX_FLUORO_TIME_S = 6 * 3600
#: A KAP above this is a unit error (far beyond any clinical value, 50x the SRDL).
MAX_DAP_GYCM2 = 25_000.0
MAX_AIR_KERMA_MGY = 100_000.0


class Quantity(StrEnum):
    """A kind of figure; its value is the canonical unit every figure of that kind is kept in."""

    DAP = "Gy·cm²"
    AIR_KERMA = "mGy"
    TIME = "s"
    COUNT = "count"
    PULSE_RATE = "pulse/s"
    # Technique figures of an irradiation event in a dose report (never typed, never totals).
    VOLTAGE = "kV"
    CURRENT = "mA"
    LENGTH = "mm"
    AREA = "cm²"
    ANGLE = "deg"
    WEIGHT = "kg"
    VOLUME = "ml"


@dataclass(frozen=True)
class Unit:
    """One unit: its label, its factor into the canonical unit, and who may spell it how.

    ``rdsr``: UCUM code values in dose reports, compared after :func:`fold_ucum` (case matters:
    UCUM "mGy" is not "MGy"). ``vendor``: further spellings C-arms write for the technique
    figures of an irradiation event (pulse rate, kVp, tube current, times, distances, areas,
    angles), accepted for those alone and compared after :func:`fold_lenient` (case and
    annotation braces ignored); a dose total or a per-event dose never reads them. ``typed``:
    what people type after a number, compared lower case (DAP: after :func:`fold_typed_dap`).
    ``header``: what a CSV column header may state in brackets ("Fluoro time (min)"), compared
    casefolded without spaces.
    """

    quantity: Quantity
    label: str
    factor: float
    rdsr: tuple[str, ...] = ()
    vendor: tuple[str, ...] = ()
    typed: tuple[str, ...] = ()
    header: tuple[str, ...] = ()


_DAP, _KERMA, _TIME = Quantity.DAP, Quantity.AIR_KERMA, Quantity.TIME

#: The unit table. DAP factors: docs/reference.md §2 (Gy·m² x10000; dGy·cm² x0.1; cGy·cm² x0.01;
#: µGy·m² x0.01; mGy·cm² x0.001). The DAP units people may type are exactly the DapUnit members
#: (stored values); dose reports may also use mGy·m² and µGy·cm². "Gym2" is how Siemens writes
#: Gy·m².
UNITS: Final[tuple[Unit, ...]] = (
    Unit(_DAP, "Gy·cm²", 1.0, rdsr=("Gy.cm2", "Gycm2"), typed=("gycm2",)),
    Unit(_DAP, "dGy·cm²", 0.1, rdsr=("dGy.cm2",), typed=("dgycm2",)),
    Unit(_DAP, "cGy·cm²", 0.01, rdsr=("cGy.cm2",), typed=("cgycm2",)),
    Unit(_DAP, "mGy·cm²", 1e-3, rdsr=("mGy.cm2",), typed=("mgycm2",)),
    Unit(_DAP, "µGy·m²", 0.01, rdsr=("uGy.m2",), typed=("ugym2",)),
    Unit(_DAP, "Gy·m²", 1e4, rdsr=("Gy.m2", "Gym2"), typed=("gym2",)),
    Unit(_DAP, "mGy·m²", 10.0, rdsr=("mGy.m2",)),
    Unit(_DAP, "µGy·cm²", 1e-6, rdsr=("uGy.cm2",)),
    Unit(_KERMA, "Gy", 1e3, rdsr=("Gy",), typed=("gy",), header=("gy",)),
    Unit(_KERMA, "dGy", 100.0, rdsr=("dGy",)),
    Unit(_KERMA, "cGy", 10.0, rdsr=("cGy",)),
    Unit(_KERMA, "mGy", 1.0, rdsr=("mGy",), typed=("mgy",), header=("mgy",)),
    Unit(_KERMA, "µGy", 1e-3, rdsr=("uGy",), typed=("ugy", "µgy", "μgy"),
         header=("ugy", "µgy", "μgy")),
    # "m:ss" in a header: the cells are m:ss, which the time parser reads as it is.
    Unit(_TIME, "s", 1.0, rdsr=("s",), typed=("s", "sec", "secs", "second", "seconds"),
         header=("s", "sec", "secs", "seconds", "m:ss", "mm:ss"),
         vendor=("sec", "secs", "second", "seconds")),
    Unit(_TIME, "ms", 1e-3, rdsr=("ms",),
         vendor=("msec", "msecs", "millisecond", "milliseconds")),
    Unit(_TIME, "µs", 1e-6, vendor=("us", "usec", "microsecond", "microseconds")),
    # C-arms display minutes and tenths; "m" is typed, never a header (it reads as metres).
    Unit(_TIME, "min", 60.0, rdsr=("min",), typed=("m", "min", "mins", "minute", "minutes"),
         header=("min", "mins", "minute", "minutes")),
    Unit(_TIME, "h", 3600.0, rdsr=("h",)),
    # A frame count is dimensionless: UCUM "1", an annotation, or no unit at all.
    Unit(Quantity.COUNT, "count", 1.0,
         rdsr=("1", "{frames}", "{frame}", "{images}", "{count}")),
    Unit(Quantity.PULSE_RATE, "pulse/s", 1.0,
         rdsr=("{pulse}/s", "{pulses}/s", "{frame}/s", "{frames}/s", "/s", "1/s", "Hz"),
         header=("pps", "p/s", "pulses/s", "/s", "fps"),
         # "pulse/s" is GE's spelling (OEC / Surgery RDSRs), not UCUM: the report issue 13 names.
         vendor=("pulse/s", "pulses/s", "pulse/sec", "pulses/sec", "pulse per second",
                 "pulses per second", "frame/s", "frames/s", "frame/sec", "frames/sec", "/sec",
                 "1/sec", "s-1", "s^-1", "pps", "p/s", "fps", "imp/s", "hertz")),
    Unit(Quantity.PULSE_RATE, "pulse/min", 1 / 60, rdsr=("/min", "{pulse}/min", "{pulses}/min"),
         vendor=("pulse/min", "pulses/min", "1/min", "ppm")),
    Unit(Quantity.VOLTAGE, "kV", 1.0, rdsr=("kV",), vendor=("kvp", "kilovolt", "kilovolts")),
    Unit(Quantity.VOLTAGE, "V", 1e-3, rdsr=("V",), vendor=("volt", "volts")),
    Unit(Quantity.CURRENT, "mA", 1.0, rdsr=("mA",),
         vendor=("milliampere", "milliamperes", "milliamp", "milliamps")),
    Unit(Quantity.CURRENT, "µA", 1e-3, rdsr=("uA",), vendor=("microampere", "microamperes")),
    Unit(Quantity.CURRENT, "A", 1e3, rdsr=("A",), vendor=("ampere", "amperes", "amp", "amps")),
    Unit(Quantity.LENGTH, "mm", 1.0, rdsr=("mm",), vendor=("millimeter", "millimeters",
                                                           "millimetre", "millimetres")),
    Unit(Quantity.LENGTH, "cm", 10.0, rdsr=("cm",), vendor=("centimeter", "centimeters",
                                                            "centimetre", "centimetres")),
    Unit(Quantity.LENGTH, "m", 1e3, rdsr=("m",), vendor=("meter", "meters", "metre", "metres")),
    Unit(Quantity.LENGTH, "µm", 1e-3, rdsr=("um",)),
    Unit(Quantity.AREA, "cm²", 1.0, rdsr=("cm2",), vendor=("sqcm", "sq cm", "cm.cm", "cm*cm")),
    Unit(Quantity.AREA, "mm²", 0.01, rdsr=("mm2",), vendor=("sqmm", "sq mm", "mm.mm")),
    Unit(Quantity.AREA, "dm²", 100.0, rdsr=("dm2",)),
    Unit(Quantity.AREA, "m²", 1e4, rdsr=("m2",), vendor=("sqm", "sq m", "m.m")),
    Unit(Quantity.ANGLE, "deg", 1.0, rdsr=("deg",), vendor=("°", "degree", "degrees", "{deg}",
                                                            "dgr")),
    Unit(Quantity.WEIGHT, "kg", 1.0, header=("kg",)),
    Unit(Quantity.VOLUME, "ml", 1.0, header=("ml",)),
)


def _units_of(quantity: Quantity) -> tuple[Unit, ...]:
    return tuple(u for u in UNITS if u.quantity is quantity)


# --- dose reports (UCUM) -------------------------------------------------------------------------

# Vendors write the same UCUM unit with typographic variants; fold them before lookup.
_UCUM_FOLDS: Final = str.maketrans({"·": ".", "⋅": ".", "*": ".", "²": "2", "µ": "u", "μ": "u"})


def fold_ucum(unit: str) -> str:
    """Fold typographic variants (·, ², µ/μ, spaces) so one table entry covers them."""
    return "".join(unit.translate(_UCUM_FOLDS).split())


_RDSR_FACTORS: Final[Mapping[tuple[Quantity, str], float]] = {
    (u.quantity, spelling): u.factor for u in UNITS for spelling in u.rdsr
}


def rdsr_unit_factor(quantity: Quantity, code_value: str) -> float | None:
    """Factor from a dose report's unit code into the canonical unit; None if unknown."""
    return _RDSR_FACTORS.get((quantity, fold_ucum(code_value)))


#: Quantities whose units are read leniently: the technique figures of an irradiation event.
#: Never a dose (DAP, air kerma) and never a total (docs/design.md: strict totals).
LENIENT_QUANTITIES: Final = frozenset({Quantity.PULSE_RATE, Quantity.VOLTAGE, Quantity.CURRENT,
                                       Quantity.LENGTH, Quantity.AREA, Quantity.ANGLE,
                                       Quantity.TIME})


def fold_lenient(unit: str) -> str:
    """:func:`fold_ucum`, then case and UCUM annotation braces ignored ("{Pulse}/S" is
    "pulse/s"), "^" dropped ("cm^2"). Safe only where no two units of one quantity differ by
    case alone, which holds for the lenient quantities (a megaampere or megasecond is not an
    X-ray tube's)."""
    folded = fold_ucum(unit).lower()
    return folded.replace("{", "").replace("}", "").replace("^", "")


def _lenient_table() -> Mapping[tuple[Quantity, str], float]:
    table: dict[tuple[Quantity, str], float] = {}
    for u in UNITS:
        if u.quantity not in LENIENT_QUANTITIES:
            continue
        for spelling in (*u.rdsr, *u.vendor):
            key = (u.quantity, fold_lenient(spelling))
            if table.setdefault(key, u.factor) != u.factor:  # a table error, caught at import
                raise AssertionError(f"{spelling!r} is ambiguous for {u.quantity.value}")
    return table


_LENIENT_FACTORS: Final = _lenient_table()


def rdsr_lenient_unit_factor(quantity: Quantity, code_value: str) -> float | None:
    """Factor of a technique figure's unit: the UCUM table first (case matters), then the
    vendor spellings with case and braces ignored; None if still unknown (the caller drops
    the figure and keeps a warning: it never rejects the report)."""
    factor = rdsr_unit_factor(quantity, code_value)
    if factor is not None or quantity not in LENIENT_QUANTITIES:
        return factor
    return _LENIENT_FACTORS.get((quantity, fold_lenient(code_value)))


# --- dose-area product units people enter ------------------------------------------------------


def fold_typed_dap(text: str) -> str:
    """Fold the many ways a unit is typed ("µGy.m2", "uGy*m^2", "μGy m²") to one key."""
    text = text.strip().lower()
    text = text.replace("\u03bc", "u").replace("\u00b5", "u")  # Greek mu and micro sign
    text = text.replace("²", "2").replace("^", "")
    return re.sub(r"[\s·.*×x]", "", text)


_DAP_FACTORS: Final[Mapping[DapUnit, float]] = {
    DapUnit(u.label): u.factor for u in _units_of(_DAP) if u.typed
}
_DAP_SPELLINGS: Final[Mapping[str, DapUnit]] = {
    spelling: DapUnit(u.label) for u in _units_of(_DAP) for spelling in u.typed
}
# Air kerma labels, folded the DAP way: typed where a DAP unit belongs, they earn a hint.
_KERMA_AS_DAP: Final = frozenset(fold_typed_dap(u.label) for u in _units_of(_KERMA))


def dap_factor(unit: DapUnit) -> float:
    """Factor from a DAP unit into Gy·cm²."""
    return _DAP_FACTORS[unit]


def parse_dap_unit(raw: object) -> DapUnit:
    """The DAP unit a person typed, in any of its usual spellings."""
    if isinstance(raw, DapUnit):
        return raw
    key = fold_typed_dap(str(raw))
    try:
        return _DAP_SPELLINGS[key]
    except KeyError:
        hint = ""
        if key in _KERMA_AS_DAP:
            hint = (" (that is an air kerma unit, not a dose-area product: give air kerma in "
                    "air_kerma_mgy)")
        raise ValueError(
            f"{raw!r} is not a dose-area product unit{hint}; allowed: {DapUnit.allowed()}"
        ) from None


# --- CSV column headers ------------------------------------------------------------------------

#: Record fields a CSV header may give a unit for, and the quantity each holds.
_HEADER_FIELDS: Final[Mapping[str, Quantity]] = {
    "fluoro_time_s": _TIME,
    "air_kerma_mgy": _KERMA,
    "patient_weight_kg": Quantity.WEIGHT,
    "contrast_volume_ml": Quantity.VOLUME,
    "pulse_rate_pps": Quantity.PULSE_RATE,
}
#: Units a column header may state, per field: spelling -> the unit to append to a bare number
#: in the cell, or None when it is already the field's canonical unit.
HEADER_UNITS: Final[Mapping[str, Mapping[str, str | None]]] = {
    field: {spelling: None if u.label == quantity.value else u.label
            for u in _units_of(quantity) for spelling in u.header}
    for field, quantity in _HEADER_FIELDS.items()
}


# --- typed figures -------------------------------------------------------------------------------

def as_number(raw: object, what: str = "a number", allowed: str = "") -> float:
    """A finite float from a number or numeric text ("1,25" with a decimal comma is accepted,
    "1,250" is refused as ambiguous: audit.bounds.finite_number). `allowed` (the range) ends
    each error."""
    return bounds.finite_number(raw, what, allowed)


@dataclass(frozen=True)
class Dap:
    gycm2: float
    value: float
    unit: DapUnit


def parse_dap(value: object, unit: object | None) -> Dap:
    """Convert a displayed DAP value in `unit` (default Gy·cm²) to Gy·cm²."""
    dap_unit = DapUnit.GY_CM2 if unit in (None, "") else parse_dap_unit(unit)
    factor = dap_factor(dap_unit)
    allowed = bounds.range_text(0, MAX_DAP_GYCM2 / factor, dap_unit.value)
    number = as_number(value, "a dose-area product value", allowed)
    if number < 0:
        raise ValueError(f"must be zero or more, got {number:g}; allowed: {allowed}")
    gycm2 = number * factor
    if gycm2 > MAX_DAP_GYCM2:
        raise ValueError(
            f"{number:g} {dap_unit.value} is {gycm2:g} Gy·cm², beyond any fluoroscopic procedure "
            f"(limit {MAX_DAP_GYCM2:g} Gy·cm²; allowed: {allowed}): check the unit"
        )
    return Dap(gycm2=gycm2, value=number, unit=dap_unit)


_MSS = re.compile(r"^([0-9]+):([0-5]?[0-9](?:\.[0-9]+)?)$")
_TIME_FACTORS: Final[Mapping[str, float]] = {
    spelling.casefold(): u.factor for u in _units_of(_TIME) for spelling in u.typed
}
_WITH_UNIT = re.compile(
    r"^([0-9]+(?:[.,][0-9]+)?)\s*(" + "|".join(map(re.escape, _TIME_FACTORS)) + ")$", re.IGNORECASE
)

FLUORO_TIME_FORMS = "seconds (78), 'm:ss' (1:18), or minutes with a unit ('1.3 min')"


def parse_fluoro_time(raw: object) -> float:
    """Fluoroscopy time in seconds from seconds, "m:ss" or minutes with a unit.

    C-arms display minutes and tenths, so "1.3 min" is 78 s, not 1 min 30 s; "1:30" is 90 s.
    A bare number is seconds (the dictionary's unit).
    """
    allowed = bounds.range_text(0, MAX_FLUORO_TIME_S, "s")
    if isinstance(raw, bool) or raw is None:
        raise ValueError(f"expected fluoroscopy time as {FLUORO_TIME_FORMS}")
    if not isinstance(raw, str):
        seconds = as_number(raw, "a time", allowed)
    else:
        text = raw.strip()
        if len(text) > bounds.MAX_NUMBER_CHARS:
            raise ValueError(f"is {len(text)} characters, too long for a time; use "
                             f"{FLUORO_TIME_FORMS}")
        if text.startswith("-"):
            raise ValueError(f"must be zero or more, got {text!r}; allowed: {allowed}")
        mss = _MSS.match(text)
        unit = _WITH_UNIT.match(text)
        if mss:
            seconds = int(mss[1]) * 60 + float(mss[2])
        elif ":" in text:
            raise ValueError(
                f"{text!r} is not m:ss (seconds must be 00-59); use {FLUORO_TIME_FORMS}"
            )
        elif unit:
            number = float(bounds.decimal_text(unit[1], allowed))
            seconds = number * _TIME_FACTORS[unit[2].casefold()]
        else:
            try:
                seconds = as_number(text, "a time", allowed)
            except bounds.AmbiguousNumber:
                raise
            except ValueError:
                raise ValueError(f"{bounds.shown(text)} is not a time; use {FLUORO_TIME_FORMS}; "
                                 f"allowed: {allowed}") from None
    if seconds < 0:
        raise ValueError(f"must be zero or more, got {seconds:g}; allowed: {allowed}")
    if seconds > MAX_FLUORO_TIME_S:
        raise ValueError(
            f"{seconds:g} s is more than {MAX_FLUORO_TIME_S // 3600} hours of beam-on time "
            f"(allowed: {allowed}); is it in seconds? use " + FLUORO_TIME_FORMS
        )
    return round(seconds, 1)


def _fold_kerma(text: str) -> str:
    return text.lower().replace("µ", "u").replace("μ", "u")


_KERMA_FACTORS: Final[Mapping[str, float]] = {
    _fold_kerma(spelling): u.factor for u in _units_of(_KERMA) for spelling in u.typed
}
_KERMA_SPELLINGS: Final = tuple(s for u in _units_of(_KERMA) for s in u.typed)
_KERMA_TEXT = re.compile(
    r"^([0-9]+(?:[.,][0-9]+)?(?:e[-+]?[0-9]+)?)\s*("
    + "|".join(map(re.escape, _KERMA_SPELLINGS)) + ")?$",
    re.IGNORECASE,
)


def parse_air_kerma(raw: object) -> float:
    """Reference air kerma (Ka,r) in mGy from a number (mGy) or text with a unit ("1.2 Gy")."""
    allowed = bounds.range_text(0, MAX_AIR_KERMA_MGY, "mGy")
    if isinstance(raw, bool):
        raise ValueError(f"expected air kerma in mGy; allowed: {allowed}")
    if not isinstance(raw, str):
        mgy = as_number(raw, "air kerma in mGy", allowed)
    else:
        text = raw.strip()
        if len(text) > bounds.MAX_NUMBER_CHARS:
            raise ValueError(f"is {len(text)} characters, too long for an air kerma; allowed: "
                             f"{allowed}")
        match = _KERMA_TEXT.match(text)
        if not match:
            raise ValueError(f"{raw!r} is not an air kerma; give mGy (12.5) or a unit ('1.2 Gy'); "
                             f"allowed: {allowed}")
        number = as_number(bounds.decimal_text(match[1], allowed), "air kerma", allowed)
        mgy = number * _KERMA_FACTORS[_fold_kerma(match[2] or "mgy")]
    if mgy < 0:
        raise ValueError(f"must be zero or more, got {mgy:g}; allowed: {allowed}")
    if mgy > MAX_AIR_KERMA_MGY:
        raise ValueError(f"{mgy:g} mGy is beyond any fluoroscopic procedure (allowed: {allowed}): "
                         "check the unit")
    return mgy


def format_duration(seconds: float) -> str:
    """78 -> "1:18" (how people read beam-on time)."""
    whole = round(seconds)
    return f"{whole // 60}:{whole % 60:02d}"
