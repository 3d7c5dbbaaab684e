"""The rule packs as data: each pack's source, dates, rules and parameters with their allowed
ranges (docs/reference.md §19 has the citations and what was checked against the text).

Why data: a pack is the site's copy of a payer's or a society's rule. The migration seeds the
`rule_pack` table from PACKS once; from then on the table is what counts, so an administrator
may switch a pack off (a practice with no Medicare patients) or change a parameter (a
contractor's LCD that allows a different number), audited (audit.rules.store). The defaults
and ranges here are what a change is checked against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from typing import Any

#: Procedure codes (the seeded catalog) the packs speak of.
ESI_CODES = frozenset({"TFESI", "ILESI", "CAUDAL"})
FACET_CODES = frozenset({"MBB", "RFA", "FACET"})


@dataclass(frozen=True)
class Parameter:
    """One adjustable number (or choice) of a pack, with its allowed values."""

    name: str
    default: int | str
    description: str
    low: int = 0
    high: int = 0
    choices: tuple[str, ...] = ()

    def allowed(self) -> str:
        return (", ".join(self.choices) if self.choices
                else f"a whole number from {self.low} to {self.high}")

    def check(self, value: Any) -> int | str:
        """The value as stored, or ValueError naming the parameter and what is allowed."""
        if self.choices:
            text = str(value).strip().upper()
            if text not in self.choices:
                raise ValueError(f"{self.name}: {value!r} is not allowed; allowed: "
                                 f"{self.allowed()}")
            return text
        if isinstance(value, bool):
            raise ValueError(f"{self.name}: {value!r} is not a number; allowed: "
                             f"{self.allowed()}")
        try:
            number = float(str(value).strip())
        except ValueError:
            raise ValueError(f"{self.name}: {str(value)[:40]!r} is not a number; allowed: "
                             f"{self.allowed()}") from None
        if not math.isfinite(number) or number != int(number):
            raise ValueError(f"{self.name}: {str(value)[:40]!r} is not a whole number; "
                             f"allowed: {self.allowed()}")
        if not self.low <= int(number) <= self.high:
            raise ValueError(f"{self.name}: {int(number)} is out of range; allowed: "
                             f"{self.allowed()}")
        return int(number)


@dataclass(frozen=True)
class Rule:
    """One rule of a pack: its key (stable, used in reports and exports) and what it checks."""

    key: str
    title: str


@dataclass(frozen=True)
class PackSpec:
    key: str
    title: str
    source: str
    rules: tuple[Rule, ...]
    parameters: tuple[Parameter, ...]
    effective_from: date | None = None
    effective_to: date | None = None
    enabled: bool = True
    notes: str = field(default="")

    def parameter(self, name: str) -> Parameter:
        for p in self.parameters:
            if p.name == name:
                return p
        raise ValueError(f"{name!r} is not a parameter of {self.key}; allowed: "
                         f"{', '.join(p.name for p in self.parameters)}")

    def defaults(self) -> dict[str, int | str]:
        return {p.name: p.default for p in self.parameters}


def _window() -> Parameter:
    return Parameter("window_days", 365, "the rolling period the session limits count over "
                     "(12 months)", 30, 730)


LCD_ESI = PackSpec(
    key="lcd_esi",
    title="Medicare LCD: Epidural Steroid Injections for Pain Management",
    source="Medicare LCD L39240 \"Epidural Steroid Injections for Pain Management\" and its "
           "billing and coding article A58745 (the same limits as L33906 / A56651); check the "
           "LCD and article of your contractor",
    rules=(
        Rule("esi_sessions_per_region", "at most 4 ESI sessions per spinal region in a rolling "
             "12 months"),
        Rule("esi_levels_per_session", "levels per session: TFESI 2, ILESI 1, caudal 1"),
        Rule("esi_one_region_per_session", "one spinal region per ESI session"),
        Rule("esi_repeat_relief", "a repeat ESI follows documented relief of >= 50% for >= 3 "
             "months from the previous one"),
    ),
    parameters=(
        _window(),
        Parameter("max_sessions_per_region", 4, "ESI sessions per region in the window", 1, 52),
        Parameter("max_levels_tfesi", 2, "TFESI levels per session", 1, 10),
        Parameter("max_levels_ilesi", 1, "ILESI levels per session", 1, 10),
        Parameter("max_levels_caudal", 1, "caudal levels per session", 1, 10),
        Parameter("repeat_relief_percent", 50, "relief (percent) the previous ESI must have "
                  "given", 0, 100),
        Parameter("repeat_relief_days", 90, "for at least this many days (3 months)", 0, 730),
    ),
)

LCD_FACET = PackSpec(
    key="lcd_facet",
    title="Medicare LCD: Facet Joint Interventions for Pain Relief",
    source="Medicare LCD L38803 \"Facet Joint Interventions for Pain Relief\" and its billing "
           "and coding article A58405; check the LCD and article of your contractor",
    rules=(
        Rule("facet_levels_per_session", "facet injections, MBB and RFA: at most 2 levels per "
             "session (bilateral counts once)"),
        Rule("rfa_diagnostic_blocks", "RFA after two diagnostic medial branch blocks, each with "
             ">= 80% relief"),
        Rule("rfa_sessions_per_region", "at most 2 RFA sessions per spinal region in a rolling "
             "12 months"),
        Rule("facet_sessions_per_region", "at most 4 therapeutic facet injection sessions per "
             "spinal region in a rolling 12 months"),
    ),
    parameters=(
        _window(),
        Parameter("max_levels", 2, "levels per session", 1, 10),
        Parameter("blocks_before_rfa", 2, "diagnostic blocks before an RFA", 1, 4),
        Parameter("block_relief_percent", 80, "relief (percent) each block must give", 0, 100),
        Parameter("max_rfa_sessions_per_region", 2, "RFA sessions per region in the window",
                  1, 12),
        Parameter("max_facet_sessions_per_region", 4, "therapeutic facet injection sessions "
                  "per region in the window", 1, 52),
    ),
)

SAFEGUARDS_2015 = PackSpec(
    key="safeguards_2015",
    title="Safeguards to prevent neurologic complications after epidural steroid injections",
    source="Rathmell JP et al., \"Safeguards to prevent neurologic complications after "
           "epidural steroid injections: consensus opinions from a multidisciplinary working "
           "group and national organizations\", Anesthesiology 2015;122:974-984",
    rules=(
        Rule("tfesi_realtime_contrast", "TFESI: contrast under real-time fluoroscopy or DSA "
             "in the AP view before any injectate"),
        Rule("lumbar_tfesi_first_steroid", "dexamethasone for the patient's first lumbar "
             "TFESI"),
        Rule("cervical_tfesi_no_particulate", "no particulate steroid in a cervical TFESI"),
        Rule("cervical_ilesi_level", "cervical ILESI at C7-T1 preferably, at least at C6-C7"),
        Rule("ilesi_views_test_dose", "ILESI: AP plus lateral or contralateral-oblique views, "
             "with a contrast test dose"),
    ),
    parameters=(
        Parameter("cervical_ilesi_highest_level", "C6-C7", "the highest cervical interlaminar "
                  "level that does not warn", choices=("C7-T1", "C6-C7", "C5-C6")),
    ),
    effective_from=date(2015, 5, 1),
)

PACKS: tuple[PackSpec, ...] = (LCD_ESI, LCD_FACET, SAFEGUARDS_2015)
BY_KEY: dict[str, PackSpec] = {p.key: p for p in PACKS}
#: rule key -> its pack's key, every rule of every pack.
RULE_PACK: dict[str, str] = {r.key: p.key for p in PACKS for r in p.rules}
RULE_TITLES: dict[str, str] = {r.key: r.title for p in PACKS for r in p.rules}


def spec(key: str) -> PackSpec:
    """The pack named `key`, or ValueError naming the packs there are."""
    try:
        return BY_KEY[str(key).strip().lower()]
    except KeyError:
        raise ValueError(f"{key!r} is not a rule pack; allowed: {', '.join(BY_KEY)}") from None
