"""The rules as pure functions (no database): only packs switched on and in force on the
procedure's day count, and their parameters decide."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime

from audit.rules.evaluate import Case, check, warnings
from audit.rules.store import default_packs


def tfesi(day: str, **extra: object) -> Case:
    fields: dict[str, object] = {"levels": ("L4", "L5"), "injectate": "dexamethasone",
                                 "realtime_contrast": True, "views": frozenset({"AP", "LAT"}),
                                 **extra}
    return Case(datetime.fromisoformat(f"{day}T10:00:00+00:00").astimezone(UTC), "TFESI",
                "lumbar", **fields)  # type: ignore[arg-type]


HISTORY = [tfesi(d, id=i) for i, d in enumerate(("2026-01-10", "2026-03-02", "2026-05-04",
                                                 "2026-07-06"))]


def rules_warned(case: Case, packs: dict) -> set[str]:
    return {f.rule for f in warnings(case, HISTORY, packs)}


def test_only_packs_switched_on_and_in_force_warn() -> None:
    packs = default_packs()
    fifth = tfesi("2026-09-07")
    assert "esi_sessions_per_region" in rules_warned(fifth, packs)
    off = {**packs, "lcd_esi": dataclasses.replace(packs["lcd_esi"], enabled=False)}
    assert not {r for r in rules_warned(fifth, off) if r.startswith("esi_")}
    ended = {**packs, "lcd_esi": dataclasses.replace(packs["lcd_esi"],
                                                     effective_to=date(2026, 6, 30))}
    assert not {r for r in rules_warned(fifth, ended) if r.startswith("esi_")}
    assert not check(fifth, HISTORY, {})


def test_a_parameter_changes_the_limit() -> None:
    packs = default_packs()
    more = {**packs, "lcd_esi": dataclasses.replace(
        packs["lcd_esi"], parameters={**packs["lcd_esi"].parameters,
                                      "max_sessions_per_region": 5})}
    assert "esi_sessions_per_region" not in rules_warned(tfesi("2026-09-07"), more)


def test_a_session_is_a_day_and_the_window_is_365_days() -> None:
    packs = default_packs()
    # 2027-01-09 is 364 days after 2026-01-10: the first session still counts
    assert "esi_sessions_per_region" in rules_warned(tfesi("2027-01-09"), packs)
    # 2027-01-10: a year later, the first one is outside
    assert "esi_sessions_per_region" not in rules_warned(tfesi("2027-01-10"), packs)
    # a second record on the day of the 4th session is the same session
    same_day = tfesi("2026-07-06").performed_at.replace(hour=15)
    assert "esi_sessions_per_region" not in rules_warned(
        dataclasses.replace(tfesi("2026-07-06"), performed_at=same_day), packs)
