"""Plausibility warnings: values that are possible but usually a typing or unit mistake.

Why warnings and not errors: a KAP 50 times the usual is almost always mGy·cm² typed as Gy·cm²,
but now and then it is a hard case; so the user is told what looks wrong and why (the usual
value and its source), and saves after confirming. The rules and their sources are in
docs/reference.md §2. What is usual comes from the site's own recent records once there are
enough (audit.log.reference_cache), else from the catalog's published values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from audit import units
from audit.catalog import CatalogEntry
from audit.errors import FieldError
from audit.vocab import PARTICULATE_STEROIDS, DapUnit, Injectate, Region

#: Reference-point field sizes (cm², KAP / Ka,r) outside this range suggest a Ka,r unit mix-up.
FIELD_CM2_RANGE = (2, 5000)
#: Adult weights (kg) outside this range suggest pounds or a typo.
ADULT_KG_RANGE = (25, 250)


@dataclass(frozen=True)
class Usual:
    """What is usual for this procedure type, for plausibility warnings."""

    dap_gycm2: float | None
    time_s: float | None
    source: str  # "local median of N records" or the catalog's published source


@dataclass
class _Warnings:
    warnings: list[FieldError] = field(default_factory=list)

    def warn(self, name: str, message: str) -> None:
        self.warnings.append(FieldError(name, message))


def plausibility_warnings(values: Mapping[str, Any], entry: CatalogEntry, region: Region,
                          levels: Sequence[str], usual: Usual | None,
                          ratio_limit: float) -> list[FieldError]:
    """Warnings: values that are possible but usually a mistake (docs/reference.md §2).

    `values` are a validated record's canonical Procedure values; `ratio_limit` is how many
    times the usual KAP (or its inverse) asks for confirmation.
    """
    c = _Warnings()
    if entry.max_levels is not None and len(levels) > entry.max_levels:
        c.warn("levels", f"{len(levels)} levels exceeds the {entry.max_levels} that {entry.code} "
               "allows per session; it will be flagged for review")
    dap = values["dap_gycm2"]
    usual_dap = usual.dap_gycm2 if usual else entry.typical_dap_gycm2
    source = usual.source if usual else (entry.typical_source or "catalog")
    if dap and usual_dap:
        ratio = dap / usual_dap
        unit = DapUnit(values["dap_unit"]) if values["dap_unit"] else DapUnit.GY_CM2
        if ratio >= ratio_limit:
            hint = _unit_hint(dap, usual_dap, unit, smaller=True)
            c.warn("dap_value", f"KAP {dap:.3g} Gy·cm² is {ratio:.0f}× the usual for "
                   f"{entry.name.lower()} ({usual_dap:.3g} Gy·cm², {source}){hint}")
        elif ratio <= 1 / ratio_limit:
            hint = _unit_hint(dap, usual_dap, unit, smaller=False)
            c.warn("dap_value", f"KAP {dap:.3g} Gy·cm² is 1/{1 / ratio:.0f} of the usual for "
                   f"{entry.name.lower()} ({usual_dap:.3g} Gy·cm², {source}){hint}")
    time_s = values["fluoro_time_s"]
    if entry.max_expected_time_s and time_s and time_s > entry.max_expected_time_s:
        c.warn("fluoro_time_s", f"{units.format_duration(time_s)} (m:ss) of fluoroscopy is "
               f"unusually long for {entry.name.lower()} (over "
               f"{entry.max_expected_time_s / 60:g} min): was the counter reset?")
    kerma = values["air_kerma_mgy"]
    if dap and kerma:
        field_cm2 = dap / kerma * 1000  # Ka,r (mGy) ≈ KAP / field area at the reference point
        if field_cm2 > FIELD_CM2_RANGE[1] or field_cm2 < FIELD_CM2_RANGE[0]:
            c.warn("air_kerma_mgy", f"Ka,r {kerma:g} mGy and KAP {dap:g} Gy·cm² imply a "
                   f"{field_cm2:.3g} cm² field at the reference point (usual 10-1000): check "
                   "the units (Ka,r is in mGy)")
    _impossible_doses(c, values)
    weight = values["patient_weight_kg"]
    if weight is not None and (weight < ADULT_KG_RANGE[0] or weight > ADULT_KG_RANGE[1]):
        c.warn("patient_weight_kg", f"{weight:g} kg is unusual for an adult: is it in kg?")
    steroid = values["injectate"]
    if (entry.code == "TFESI" and region is Region.CERVICAL and steroid
            and Injectate(steroid) in PARTICULATE_STEROIDS):
        c.warn("injectate", f"{steroid} is a particulate steroid: not for cervical "
               "transforaminal injection (Rathmell 2015); it will be flagged for review")
    if values["vascular_uptake"] and not values["needle_repositioned"]:
        c.warn("needle_repositioned", "vascular uptake recorded but the needle was not "
               "repositioned; it will be flagged for review")
    return c.warnings


def _impossible_doses(c: _Warnings, values: Mapping[str, Any]) -> None:
    """Combinations no exposure produces, nearly always a field left at 0 or a slipped column:
    an air kerma without a KAP, DSA runs without a saved image, dose without beam-on time."""
    dap, kerma, time_s = values["dap_gycm2"], values["air_kerma_mgy"], values["fluoro_time_s"]
    if dap == 0 and kerma:
        c.warn("dap_value", f"KAP is 0 Gy·cm² but Ka,r is {kerma:g} mGy: an exposure that gives "
               "air kerma also gives a KAP; check the DAP")
    runs = values["dsa_runs"]
    if runs and values["saved_images"] == 0:
        c.warn("saved_images", f"{runs} DSA runs but 0 saved images: a DSA run is a stored "
               "series; check the image count")
    if time_s == 0 and (dap or kerma):
        what = " and ".join(n for n, v in (("KAP", dap), ("Ka,r", kerma)) if v)
        c.warn("fluoro_time_s", f"fluoroscopy time is 0 s but a {what} was recorded: was the "
               "time left out?")


def _unit_hint(dap: float, usual: float, unit: DapUnit, smaller: bool) -> str:
    """Suggest the unit that would make the number typical (the 10/100/1000 mix-ups)."""
    for factor in (10, 100, 1000, 10000):
        candidate_factor = (units.dap_factor(unit) / factor if smaller
                            else units.dap_factor(unit) * factor)
        for other in DapUnit:
            if abs(units.dap_factor(other) - candidate_factor) < 1e-12 * max(1, candidate_factor):
                corrected = dap / factor if smaller else dap * factor
                if usual / 5 <= corrected <= usual * 5:
                    return f": is the unit {other.value}?"
    return ": check the unit"
