"""The rules themselves: pure functions of a procedure and the patient's earlier procedures
(no database), so entry, the report and the tests share one definition.

`check` gives, for one procedure, every rule of the packs in force on its day that applies to
it (eligible), each with its exception message or None (compliant); `warnings` keeps the
exceptions, worded for the person logging. A session is a calendar day (UTC): procedures of one
patient on one day are one session. "Within 12 months" is the pack's `window_days` before the
procedure's day (365: a procedure 13 months earlier is outside). Follow-ups count whenever
they were recorded (an outcome documented later still documents it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from audit.rules.packs import ESI_CODES, RULE_PACK
from audit.rules.store import ActivePack
from audit.vocab import (
    PARTICULATE_STEROIDS,
    ContrastConfirmation,
    Guidance,
    Injectate,
    Region,
    level_order,
)

STEROIDS = frozenset({Injectate.DEXAMETHASONE.value, *(s.value for s in PARTICULATE_STEROIDS)})
PARTICULATE = frozenset(s.value for s in PARTICULATE_STEROIDS)


@dataclass(frozen=True)
class Relief:
    """One follow-up: percent relief lasting `days`."""

    percent: int
    days: int


@dataclass(frozen=True)
class Case:
    """One procedure as the rules see it."""

    performed_at: datetime
    code: str
    region: str
    levels: tuple[str, ...] = ()
    injectate: str | None = None
    guidance: str = Guidance.FLUOROSCOPY.value
    contrast_confirmation: str = ContrastConfirmation.CONFIRMED.value
    realtime_contrast: bool | None = None
    views: frozenset[str] = frozenset()
    contrast_test_dose: bool | None = None
    relief: tuple[Relief, ...] = ()
    id: int | None = None

    @property
    def day(self) -> date:
        return self.performed_at.date()


@dataclass(frozen=True)
class Finding:
    """One rule applied to one procedure: `message` None means compliant."""

    rule: str
    message: str | None = None
    pack: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pack", RULE_PACK[self.rule])


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _period(days: int) -> str:
    return "12 months" if days == 365 else f"{days} days"


def _earlier_days(case: Case, history: Sequence[Case], codes: Iterable[str],
                  window: int) -> list[date]:
    """The earlier session days (same region, one of `codes`) within the window."""
    wanted = frozenset(codes)
    first = case.day - timedelta(days=window - 1)
    return sorted({p.day for p in history if p.code in wanted and p.region == case.region
                   and first <= p.day < case.day})


def _sessions(rule: str, case: Case, history: Sequence[Case], codes: Iterable[str],
              noun: str, limit: int, window: int) -> Finding:
    days = _earlier_days(case, history, codes, window)
    if len(days) + 1 <= limit:
        return Finding(rule)
    shown = ", ".join(d.isoformat() for d in days[:6]) + (", ..." if len(days) > 6 else "")
    return Finding(rule, f"{_ordinal(len(days) + 1)} {noun} session in the {case.region} "
                         f"region within {_period(window)} (earlier: {shown}); the LCD covers "
                         f"{limit}")


def _relieved(relief: Iterable[Relief], percent: int, days: int) -> bool:
    return any(r.percent >= percent and r.days >= days for r in relief)


def _esi(case: Case, history: Sequence[Case], p: Mapping[str, int]) -> list[Finding]:
    window = int(p["window_days"])
    found = [_sessions("esi_sessions_per_region", case, history, ESI_CODES, "ESI",
                       int(p["max_sessions_per_region"]), window)]
    most = int(p[f"max_levels_{case.code.lower()}"])
    found.append(Finding("esi_levels_per_session", None if len(case.levels) <= most else
                         f"{case.code} at {len(case.levels)} levels in one session; the LCD "
                         f"covers {most}"))
    others = sorted({h.region for h in history if h.code in ESI_CODES and h.day == case.day
                     and h.region != case.region})
    found.append(Finding("esi_one_region_per_session", None if not others else
                         f"ESI in the {case.region} and {', '.join(others)} regions in one "
                         "session; the LCD covers one region per session"))
    first = case.day - timedelta(days=window - 1)
    earlier = [h for h in history if h.code in ESI_CODES and h.region == case.region
               and first <= h.day < case.day]
    if earlier:
        previous = max(earlier, key=lambda h: h.performed_at)
        percent, days = int(p["repeat_relief_percent"]), int(p["repeat_relief_days"])
        found.append(Finding("esi_repeat_relief", None if _relieved(previous.relief, percent,
                                                                    days) else
                             f"repeat {case.code} without documented relief from the previous "
                             f"one ({previous.code} on {previous.day}; needs >= {percent}% "
                             f"for >= {days} days)"))
    return found


def _facet(case: Case, history: Sequence[Case], p: Mapping[str, int]) -> list[Finding]:
    window, most = int(p["window_days"]), int(p["max_levels"])
    found = [Finding("facet_levels_per_session", None if len(case.levels) <= most else
                     f"{case.code} at {len(case.levels)} levels in one session; the LCD covers "
                     f"{most}")]
    if case.code == "RFA":
        wanted, percent = int(p["blocks_before_rfa"]), int(p["block_relief_percent"])
        blocks = [h for h in history if h.code == "MBB" and h.region == case.region
                  and h.day <= case.day and _relieved(h.relief, percent, 0)]
        found.append(Finding("rfa_diagnostic_blocks", None if len(blocks) >= wanted else
                             f"RFA without {'two' if wanted == 2 else wanted} diagnostic blocks "
                             f"with >= {percent}% relief in the {case.region} region (found: "
                             f"{len(blocks)})"))
        found.append(_sessions("rfa_sessions_per_region", case, history, {"RFA"}, "RFA",
                               int(p["max_rfa_sessions_per_region"]), window))
    if case.code == "FACET":
        found.append(_sessions("facet_sessions_per_region", case, history, {"FACET"},
                               "therapeutic facet injection",
                               int(p["max_facet_sessions_per_region"]), window))
    return found


def _safeguards(case: Case, history: Sequence[Case], p: Mapping[str, str]) -> list[Finding]:
    found: list[Finding] = []
    excepted = case.contrast_confirmation == ContrastConfirmation.CONTRAINDICATED.value
    if case.code == "TFESI" and not excepted:
        done = (case.contrast_confirmation == ContrastConfirmation.CONFIRMED.value
                and case.realtime_contrast is True and "AP" in case.views)
        found.append(Finding("tfesi_realtime_contrast", None if done else
                             "TFESI without contrast under real-time fluoroscopy or DSA in the "
                             "AP view before the injectate"))
    if case.code == "TFESI" and case.region == Region.LUMBAR.value \
            and case.injectate in STEROIDS \
            and not any(h.code == "TFESI" and h.region == Region.LUMBAR.value
                        and h.injectate in STEROIDS for h in history):
        found.append(Finding("lumbar_tfesi_first_steroid", None if case.injectate not in
                             PARTICULATE else
                             f"particulate steroid ({case.injectate}) in the patient's first "
                             "lumbar TFESI; dexamethasone is first-line"))
    if case.code == "TFESI" and case.region == Region.CERVICAL.value \
            and case.injectate in STEROIDS:
        found.append(Finding("cervical_tfesi_no_particulate", None if case.injectate not in
                             PARTICULATE else
                             f"particulate steroid ({case.injectate}) in a cervical TFESI"))
    if case.code == "ILESI" and case.region == Region.CERVICAL.value and case.levels:
        highest = str(p["cervical_ilesi_highest_level"])
        above = [lv for lv in case.levels if level_order(lv) < level_order(highest)]
        found.append(Finding("cervical_ilesi_level", None if not above else
                             f"cervical ILESI at {', '.join(above)}: above {highest} (C7-T1 is "
                             "preferred)"))
    if case.code == "ILESI" and not excepted and case.guidance != Guidance.ULTRASOUND.value:
        missing = []
        if not ("AP" in case.views and case.views & {"LAT", "CLO"}):
            missing.append("AP plus lateral or contralateral-oblique views")
        if case.contrast_test_dose is not True:
            missing.append("a contrast test dose")
        found.append(Finding("ilesi_views_test_dose", None if not missing else
                             f"ILESI without {' and without '.join(missing)}"))
    return found


def check(case: Case, history: Sequence[Case],
          packs: Mapping[str, ActivePack]) -> list[Finding]:
    """Every rule in force that applies to `case`, each with its exception or None.
    `history` is the patient's other final procedures; only those before `case` count."""
    earlier = [h for h in history if h.performed_at < case.performed_at
               and (case.id is None or h.id != case.id)]
    found: list[Finding] = []
    for key, rules in (("lcd_esi", _esi), ("lcd_facet", _facet),
                       ("safeguards_2015", _safeguards)):
        pack = packs.get(key)
        if pack is None or not pack.applies(case.day):
            continue
        if key == "lcd_esi" and case.code not in ESI_CODES:
            continue
        if key == "lcd_facet" and case.code not in {"MBB", "RFA", "FACET"}:
            continue
        found += rules(case, earlier, pack.parameters)
    return found


def warnings(case: Case, history: Sequence[Case],
             packs: Mapping[str, ActivePack]) -> list[Finding]:
    """The exceptions only: what the person logging is asked to confirm."""
    return [f for f in check(case, history, packs) if f.message]
