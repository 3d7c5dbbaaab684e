"""The report's set-based rules (audit.rules.batch) give exactly the findings of evaluate.check
called per record: same rows, exception flags and messages, on hand-built histories, on demo
data with every pack on (SQLite and PostgreSQL), and on random small histories."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from audit.auth import cli_actor
from audit.demo.loading import generate
from audit.filters import Filters
from audit.log.service import ProcedureLog
from audit.rules import evaluate
from audit.rules.batch import COLUMNS, evaluate_many
from audit.rules.follow_up import record_follow_up
from audit.rules.report import findings
from audit.rules.store import ActivePack, default_packs, set_parameter
from tests.conftest import valid_record
from tests.rules.helpers import findings_per_record, ilesi, logged, packs_on, session
from tests.rules.test_report_rules import fixture_history


def same(engine: Engine, filters: Filters) -> pd.DataFrame:
    fast = findings(engine, filters)
    slow = findings_per_record(engine, filters)
    pd.testing.assert_frame_equal(fast.reset_index(drop=True), slow, check_dtype=True)
    return fast


def test_hand_built_histories_give_the_per_record_findings(engine: Engine,
                                                           service: ProcedureLog) -> None:
    packs_on(engine)
    fixture_history(engine, service)
    mbb = logged(service, [session(d, "MRN0300", procedure_code="MBB", levels=["L4-L5"],
                                   injectate="local_anesthetic_only")
                           for d in ("2026-01-05", "2026-02-05")])
    record_follow_up(engine, cli_actor(), mbb[0], "2026-01-06", 85, 1)
    logged(service, [session("2026-03-05", "MRN0300", procedure_code="RFA", levels=["L4-L5"],
                             injectate="local_anesthetic_only"),
                     session("2026-04-01", "MRN0400", injectate="triamcinolone",
                             levels=["C5", "C6"]),
                     valid_record(performed_at="2026-04-01T11:00:00Z", patient_id="MRN0400"),
                     ilesi("2026-05-01", ["C6-C7", "C3-C4"], "MRN0400", region="cervical",
                           confirmation_views=["AP"])])
    found = same(engine, Filters())
    assert found["exception"].sum() > 0
    assert set(found["rule"]) >= {"rfa_diagnostic_blocks", "esi_one_region_per_session",
                                  "cervical_tfesi_no_particulate", "cervical_ilesi_level"}
    same(engine, Filters.days(date(2026, 3, 1), date(2026, 6, 30)))


def test_demo_data_gives_the_per_record_findings(engine: Engine) -> None:
    generate(engine, procedures=1500, seed=7, until=date(2026, 6, 30))
    packs_on(engine)
    found = same(engine, Filters())
    assert found["exception"].any() and (~found["exception"]).any()
    set_parameter(engine, cli_actor(), "lcd_esi", "window_days", 120)
    set_parameter(engine, cli_actor(), "lcd_facet", "blocks_before_rfa", 1)
    set_parameter(engine, cli_actor(), "safeguards_2015", "cervical_ilesi_highest_level",
                  "C7-T1")
    same(engine, Filters.days(date(2025, 9, 1), date(2026, 3, 31)))


# --- random small histories, in process ---------------------------------------------------

CODES = ("TFESI", "ILESI", "CAUDAL", "MBB", "RFA", "FACET", "OTHER")
LEVELS = ("C3-C4", "C5-C6", "C6-C7", "C7-T1", "L4-L5", "L5-S1")
START = datetime(2025, 1, 1, 8, tzinfo=UTC)

relief = st.tuples(st.integers(0, 100), st.integers(0, 200))
case = st.fixed_dictionaries({
    "patient": st.integers(1, 3), "day": st.integers(0, 500), "hour": st.sampled_from([8, 9]),
    "code": st.sampled_from(CODES),
    "region": st.sampled_from(["lumbar", "cervical", "thoracic"]),
    "levels": st.lists(st.sampled_from(LEVELS), max_size=3, unique=True),
    "injectate": st.sampled_from(["dexamethasone", "triamcinolone", "betamethasone", "none",
                                  None]),
    "guidance": st.sampled_from(["fluoroscopy", "ultrasound"]),
    "confirmation": st.sampled_from(["confirmed", "not_confirmed", "contraindicated"]),
    "realtime": st.sampled_from([True, False, None]),
    "views": st.sampled_from(["", "AP", "AP;LAT", "AP;CLO", "LAT"]),
    "test_dose": st.sampled_from([True, False, None]),
    "relief": st.lists(relief, max_size=2),
    "checked": st.booleans()})
packs = st.fixed_dictionaries({
    "window": st.sampled_from([30, 120, 365]), "sessions": st.integers(1, 4),
    "percent": st.sampled_from([0, 50, 80]), "days": st.sampled_from([0, 90]),
    "blocks": st.integers(1, 2), "highest": st.sampled_from(["C7-T1", "C6-C7", "C5-C6"]),
    "esi_from": st.sampled_from([None, date(2025, 6, 1)]), "facet_on": st.booleans()})


def active(p: dict[str, Any]) -> dict[str, ActivePack]:
    out = default_packs()
    esi, facet, safe = out["lcd_esi"], out["lcd_facet"], out["safeguards_2015"]
    out["lcd_esi"] = ActivePack("lcd_esi", True, {
        **esi.parameters, "window_days": p["window"], "max_sessions_per_region": p["sessions"],
        "repeat_relief_percent": p["percent"], "repeat_relief_days": p["days"]},
        p["esi_from"], None)
    out["lcd_facet"] = ActivePack("lcd_facet", p["facet_on"], {
        **facet.parameters, "window_days": p["window"], "blocks_before_rfa": p["blocks"],
        "max_rfa_sessions_per_region": p["sessions"], "block_relief_percent": p["percent"]})
    out["safeguards_2015"] = ActivePack("safeguards_2015", True, {
        **safe.parameters, "cervical_ilesi_highest_level": p["highest"]})
    return out


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(case, min_size=1, max_size=14), packs)
def test_random_histories_give_the_per_record_findings(drawn: list[dict[str, Any]],
                                                       chosen: dict[str, Any]) -> None:
    in_force = active(chosen)
    cases = [evaluate.Case(START + timedelta(days=c["day"], hours=c["hour"] - 8), c["code"],
                           c["region"], tuple(c["levels"]), c["injectate"], c["guidance"],
                           c["confirmation"], c["realtime"],
                           frozenset(c["views"].split(";")) - {""}, c["test_dose"],
                           tuple(evaluate.Relief(*r) for r in c["relief"]), n + 1)
             for n, c in enumerate(drawn)]
    patient = {n + 1: c["patient"] for n, c in enumerate(drawn)}
    wanted = [k.id for k, c in zip(cases, drawn, strict=True) if c["checked"]]
    expected = []
    for k in cases:
        if k.id not in wanted:
            continue
        mine = [h for h in cases if patient[h.id] == patient[k.id]]
        expected += [(k.id, f.rule, f.message is not None, f.message)
                     for f in evaluate.check(k, mine, in_force)]
    history = pd.DataFrame({
        "id": [k.id for k in cases], "patient_id": [patient[k.id] for k in cases],
        "performed_at": [k.performed_at for k in cases], "code": [k.code for k in cases],
        "region": [k.region for k in cases], "injectate": [k.injectate for k in cases],
        "guidance": [k.guidance for k in cases],
        "contrast_confirmation": [k.contrast_confirmation for k in cases],
        "realtime_contrast": [k.realtime_contrast for k in cases],
        "confirmation_views": [";".join(sorted(k.views)) or None for k in cases],
        "contrast_test_dose": [k.contrast_test_dose for k in cases],
        "physician": ["Dr. A"] * len(cases)})
    relieved = pd.DataFrame([(k.id, r.percent, r.days) for k in cases for r in k.relief],
                            columns=["procedure_id", "relief_percent", "relief_days"])
    levels = pd.DataFrame([(k.id, lv) for k in cases for lv in k.levels],
                          columns=["procedure_id", "level"])
    got = evaluate_many(history, relieved, levels, np.array(wanted, dtype=np.int64), in_force)
    assert list(got.columns) == COLUMNS
    assert [(int(r.record_id), r.rule, bool(r.exception),
             None if pd.isna(r.message) else r.message) for r in got.itertuples()] == expected
