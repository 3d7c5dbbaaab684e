"""Issue 15's figures on hand-built fixtures (SQLite and PostgreSQL): the case-mix-adjusted
scorecard against the unadjusted one, complication rates with a reaction found at follow-up,
the radiation-free share, and dose by BMI band and by C-arm operator, in the library and in
`fluoro-audit report`."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine

from audit.analytics.bands import bmi_band_codes
from audit.analytics.case_mix import adjusted_scorecard, radiation_free_share
from audit.analytics.compliance import compliance
from audit.analytics.complications import complication_rates, read_complications
from audit.analytics.dose_stats import dose_stats
from audit.analytics.scorecard import HIGHLIGHT_RATIO, physician_scorecard
from audit.analytics.snapshot import load_snapshot
from audit.auth import cli_actor
from audit.filters import Filters
from audit.log.complications import record_complication
from audit.log.service import ProcedureLog
from tests.conftest import valid_record
from tests.log.test_case_mix import ultrasound_sij

NORMAL = {"patient_weight_kg": 70, "patient_height_cm": 175}  # BMI 22.9
OBESE = {"patient_weight_kg": 110, "patient_height_cm": 172}  # BMI 37.2


def report(db_url: str, *args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "audit.cli", "--db", db_url, "report", *args,
                           "--format", "json"], capture_output=True, text=True, check=False,
                          timeout=180)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def log(engine: Engine, records: list[dict[str, Any]]) -> list[int]:
    results = ProcedureLog(engine).log_many(records, cli_actor(), confirm_warnings=True,
                                            create_missing=True)
    return [r.record_id for r in results]


def case(i: int, physician: str, body: dict[str, float], kap: float,
         **extra: Any) -> dict[str, Any]:
    return valid_record(patient_id=f"CM{i:03d}", physician=physician, dap_value=kap,
                        performed_at=f"2026-0{1 + i % 6}-{1 + i % 27:02d}T10:00:00+00:00",
                        **body, **extra)


def test_bmi_bands_are_who_bands_with_unknown() -> None:
    codes, names = bmi_band_codes(np.array([18.4, 18.5, 24.9, 25.0, 34.9, 35.0, 39.9, 40.0,
                                            np.nan]))
    assert [names[c] for c in codes] == [
        "under 18.5", "18.5 to 24.9", "18.5 to 24.9", "25 to 29.9", "30 to 34.9",
        "35 to 39.9", "35 to 39.9", "40 and over", "unknown"]


def test_adjusted_scorecard_ranks_a_physician_of_obese_patients_as_typical(
        engine: Engine) -> None:
    """Dr. Heavy treats only obese patients, with the dose the peers give obese patients; the
    peers treat mostly normal-weight patients. Unadjusted, Dr. Heavy looks twice the peers;
    adjusted for procedure x levels x BMI band, typical."""
    records, i = [], 0
    for doctor in ("Dr. Peer A", "Dr. Peer B"):
        for k in range(8):
            records.append(case(i, doctor, NORMAL, 0.9 + 0.05 * k))
            i += 1
        for k in range(3):
            records.append(case(i, doctor, OBESE, 1.9 + 0.1 * k))
            i += 1
    for k in range(6):
        records.append(case(i, "Dr. Heavy", OBESE, 1.85 + 0.05 * k))
        i += 1
    log(engine, records)
    snap = load_snapshot(engine)

    unadjusted = physician_scorecard(snap, Filters()).set_index("physician")
    adjusted = adjusted_scorecard(snap, Filters()).set_index("physician")
    print("unadjusted (KAP per level vs peers):", unadjusted["kap_per_level_ratio"].to_dict())
    print("unadjusted (median vs everyone's):", adjusted["crude_ratio"].to_dict())
    print("adjusted for case mix:", adjusted["adjusted_ratio"].to_dict())

    # unadjusted: Dr. Heavy ranks first, highlighted (above 1.5x the peers)
    assert unadjusted["kap_per_level_ratio"].idxmax() == "Dr. Heavy"
    assert unadjusted.loc["Dr. Heavy", "kap_per_level_ratio"] > HIGHLIGHT_RATIO
    assert adjusted["crude_ratio"].idxmax() == "Dr. Heavy"
    assert adjusted.loc["Dr. Heavy", "crude_ratio"] > HIGHLIGHT_RATIO
    # adjusted: typical, like the peers, and not first
    assert adjusted["adjusted_ratio"].to_dict() == pytest.approx(
        {"Dr. Heavy": 1.0, "Dr. Peer A": 1.0, "Dr. Peer B": 1.0}, abs=0.1)
    assert adjusted["adjusted_ratio"].idxmax() != "Dr. Heavy"
    assert adjusted.loc["Dr. Heavy", "bmi_known_share"] == 1.0


def test_a_contrast_reaction_found_at_follow_up_counts_for_its_procedure_and_physician(
        engine: Engine, db_url: str) -> None:
    ids = log(engine, [case(0, "Dr. Chen", NORMAL, 1.0), case(1, "Dr. Chen", NORMAL, 1.0),
                       case(2, "Dr. Diaz", NORMAL, 1.0),
                       ultrasound_sij(patient_id="CM900", physician="Dr. Diaz")])
    before = complication_rates(load_snapshot(engine), Filters(), read_complications(engine),
                                "physician").set_index("physician")
    assert before["with_complication"].sum() == 0

    record_complication(engine, cli_actor(), ids[1], "contrast_reaction", "moderate",
                        "urticaria the next morning", noticed_at="2026-02-03T09:00:00Z")
    snap, found = load_snapshot(engine), read_complications(engine)
    by_physician = complication_rates(snap, Filters(), found, "physician").set_index(
        "physician")
    assert by_physician.loc["Dr. Chen", ["procedures", "with_complication",
                                         "contrast_reaction"]].tolist() == [2, 1, 1]
    assert by_physician.loc["Dr. Chen", "complication_rate"] == 0.5
    assert by_physician.loc["Dr. Diaz", "complication_rate"] == 0.0
    by_procedure = complication_rates(snap, Filters(), found, "procedure").set_index(
        "procedure")
    assert by_procedure.loc["TFESI", "complication_rate"] == pytest.approx(1 / 3)

    shown = report(db_url, "complications")
    assert shown["overall"][0]["complications"] == 1
    rows = {r["physician"]: r for r in shown["by_physician"]}
    assert rows["Dr. Chen"]["complication_rate"] == 0.5
    assert rows["Dr. Chen"]["with_complication"] == 1


def test_ultrasound_counts_in_the_radiation_free_share_and_in_no_dose_figure(
        engine: Engine, db_url: str) -> None:
    log(engine, [case(0, "Dr. Chen", NORMAL, 1.0),
                 ultrasound_sij(patient_id="CM901"),
                 ultrasound_sij(patient_id="CM902", performed_at="2026-03-16T09:30:00-05:00"),
                 case(3, "Dr. Chen", NORMAL, 0.4, procedure_code="SIJ", levels=None,
                      realtime_contrast=False)])
    snap = load_snapshot(engine)
    share = radiation_free_share(snap, Filters()).set_index("procedure")
    assert share.loc["SIJ", ["records", "radiation_free"]].tolist() == [3, 2]
    assert share.loc["SIJ", "radiation_free_share"] == pytest.approx(2 / 3)
    assert share.loc["TFESI", "radiation_free_share"] == 0.0

    stats = dose_stats(snap, Filters()).set_index("procedure")
    assert stats.loc["SIJ", ["records", "dap_gycm2_n", "fluoro_time_s_n"]].tolist() == [3, 1, 1]
    assert stats.loc["SIJ", "fluoro_time_s_median"] == 32  # the fluoroscopy-guided one only
    eligible = compliance(snap, Filters(), "procedure").set_index("procedure")
    assert eligible.loc["SIJ", "eligible"] == 1  # ultrasound SIJ: no fluoroscopic contrast rule


def test_report_dose_by_bmi_band_and_by_operator(engine: Engine, db_url: str) -> None:
    log(engine, [case(0, "Dr. Chen", NORMAL, 1.0, carm_operator="physician"),
                 case(1, "Dr. Chen", NORMAL, 3.0, carm_operator="radiographer"),
                 case(2, "Dr. Chen", OBESE, 2.0, carm_operator="radiographer"),
                 case(3, "Dr. Chen", {}, 5.0)])
    by_band = {r["bmi_band"]: r for r in report(db_url, "dose", "--by", "bmi_band")["groups"]}
    assert by_band["18.5 to 24.9"]["dap_gycm2_median"] == pytest.approx(2.0)
    assert by_band["35 to 39.9"]["dap_gycm2_median"] == pytest.approx(2.0)
    assert by_band["unknown"]["records"] == 1
    by_operator = {r["operator"]: r for r in report(db_url, "dose", "--by", "operator")["groups"]}
    assert by_operator["radiographer"]["dap_gycm2_median"] == pytest.approx(2.5)
    assert by_operator["physician"]["records"] == 1
    assert by_operator["not recorded"]["records"] == 1
