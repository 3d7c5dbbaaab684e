"""Dose by patient weight band (height is not recorded, so no BMI): the frame reads each
record's weight, the bands of audit/data/weight_bands.csv sort them, and `report dose --by
weight_band` gives the hand-computed medians; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from sqlalchemy import Engine

from audit.analytics.dose_stats import dose_stats
from audit.analytics.grouping import weight_band_codes, weight_bands
from audit.analytics.snapshot import load_snapshot
from audit.auth import cli_actor
from audit.filters import Filters
from audit.log.service import ProcedureLog
from audit.vocab import WeightBand
from tests.conftest import valid_record

#: (weight kg, KAP Gy·cm²): one record each, TFESI.
CASES = [(55.0, 1.0), (60.0, 2.0), (79.9, 3.0), (80.0, 4.0), (99.9, 6.0), (100.0, 8.0),
         (140.0, 10.0), (None, 0.5)]


def load(engine: Engine) -> None:
    records = [valid_record(patient_id=f"W{i:03d}", accession_number=f"W{i:03d}",
                            patient_weight_kg=weight, dap_value=kap,
                            performed_at=f"2026-03-{i + 1:02d}T10:00:00+00:00")
               for i, (weight, kap) in enumerate(CASES)]
    ProcedureLog(engine).log_many(records, cli_actor(), confirm_warnings=True,
                                  create_missing=True)


def test_bands_are_the_vocabulary_and_bounds_are_half_open() -> None:
    assert [b[0] for b in weight_bands()] + ["not recorded"] == WeightBand.values()
    codes, labels = weight_band_codes(np.array([59.99, 60.0, 79.99, 80.0, 100.0, np.nan]))
    assert [labels[c] for c in codes] == ["under 60 kg", "60 to under 80 kg",
                                          "60 to under 80 kg", "80 to under 100 kg",
                                          "100 kg and over", "not recorded"]


def test_dose_by_weight_band_is_computed_by_hand(engine: Engine, db_url: str) -> None:
    load(engine)
    snap = load_snapshot(engine)
    assert snap.records["weight_kg"].isna().sum() == 1
    stats = dose_stats(snap, Filters(), by=("procedure", "weight_band"),
                       quantities=("dap_gycm2",)).set_index("weight_band")
    # under 60: 1.0; 60-80: 2.0, 3.0 -> 2.5; 80-100: 4.0, 6.0 -> 5.0; 100+: 8, 10 -> 9.0
    assert stats["dap_gycm2_median"].to_dict() == pytest.approx({
        "under 60 kg": 1.0, "60 to under 80 kg": 2.5, "80 to under 100 kg": 5.0,
        "100 kg and over": 9.0, "not recorded": 0.5})
    assert stats["records"].to_dict() == {
        "under 60 kg": 1, "60 to under 80 kg": 2, "80 to under 100 kg": 2,
        "100 kg and over": 2, "not recorded": 1}

    done = subprocess.run([sys.executable, "-m", "audit.cli", "--db", db_url, "report", "dose",
                           "--by", "weight_band", "--format", "json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    groups = {g["weight_band"]: g for g in json.loads(done.stdout)["groups"]}
    assert groups["80 to under 100 kg"]["dap_gycm2_median"] == 5.0
    assert groups["100 kg and over"]["dap_gycm2_p75"] == 9.5  # 8 + 0.5 x (10 - 8)
    refused = subprocess.run([sys.executable, "-m", "audit.cli", "--db", db_url, "report",
                              "alerts", "--by", "weight_band"],
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and "weight_band applies to report dose" in refused.stderr
