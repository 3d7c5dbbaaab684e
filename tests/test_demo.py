"""Synthetic data: deterministic under a seed, realistic, and valid under the log's own rules."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from audit.auth import cli_actor
from audit.catalog import load_catalog
from audit.demo import generate
from audit.log.record_fields import input_view
from audit.log.service import ProcedureLog
from audit.log.validation import validate
from audit.storage.engine import make_engine
from audit.storage.models import Patient, Physician, Procedure, ProcedureType
from tests.conftest import Databases

UNTIL = date(2026, 6, 30)
pytestmark = pytest.mark.slow  # thousands of demo procedures per database


def frame(engine: Engine) -> pd.DataFrame:
    query = (select(Procedure.id, ProcedureType.code, Physician.name.label("physician"),
                    Patient.mrn, Procedure.performed_at, Procedure.dap_gycm2,
                    Procedure.fluoro_time_s, Procedure.air_kerma_mgy, Procedure.region,
                    Procedure.contrast_confirmation, Procedure.vascular_uptake,
                    Procedure.injectate)
             .join(ProcedureType).join(Physician).join(Patient).order_by(Procedure.id))
    with Session(engine) as s:
        return pd.DataFrame(s.execute(query).all())


@pytest.fixture
def demo(engine: Engine) -> pd.DataFrame:
    summary = generate(engine, procedures=4000, seed=11, until=UNTIL)
    assert summary["procedures"] == 4000
    return frame(engine)


def test_the_same_seed_gives_the_same_data(databases: Databases, backend: str) -> None:
    frames = []
    for _ in range(2):
        url = databases.sqlite() if backend == "sqlite" else databases.postgresql()
        engine = make_engine(url)
        generate(engine, procedures=1500, seed=3, until=UNTIL)
        frames.append(frame(engine))
        engine.dispose()
    pd.testing.assert_frame_equal(frames[0], frames[1])
    engine = make_engine(databases.sqlite())
    generate(engine, procedures=1500, seed=4, until=UNTIL)
    assert not frames[0]["dap_gycm2"].equals(frame(engine)["dap_gycm2"])
    engine.dispose()


def test_dates_span_the_period_before_the_end_date(demo: pd.DataFrame) -> None:
    assert demo["performed_at"].max() < datetime(2026, 7, 1, tzinfo=UTC)
    assert demo["performed_at"].min() >= datetime(2024, 6, 1, tzinfo=UTC)


def test_doses_centre_on_the_published_medians(engine: Engine, demo: pd.DataFrame) -> None:
    with Session(engine) as s:
        typical = {e.code: e.typical_dap_gycm2 for e in load_catalog(s).entries.values()}
    medians = demo.groupby("code")["dap_gycm2"].median()
    for code in ("TFESI", "ILESI", "CAUDAL", "SIJ"):
        assert typical[code] / 2 < medians[code] < typical[code] * 2.5, code


def test_the_high_dose_physician_and_the_contrast_omitter_stand_out(demo: pd.DataFrame) -> None:
    kap = demo.groupby("physician")["dap_gycm2"].median()
    others = kap.drop("Dr. Grant Holloway")
    assert kap["Dr. Grant Holloway"] > 2 * others.max()
    required = demo[demo["code"].isin(["TFESI", "ILESI", "CAUDAL", "SIJ", "FACET"])]
    missed = (required["contrast_confirmation"] == "not_confirmed").groupby(
        required["physician"]).mean()
    assert missed["Dr. Hannah Weiss"] > 0.25
    assert missed.drop("Dr. Hannah Weiss").max() < 0.08


def test_the_clinical_patterns_are_present(demo: pd.DataFrame) -> None:
    assert (demo["contrast_confirmation"] == "contraindicated").any()
    tfesi = demo[(demo["code"] == "TFESI") & demo["vascular_uptake"].notna()]
    uptake = tfesi.groupby("region")["vascular_uptake"].mean()
    assert uptake["cervical"] > uptake["lumbar"] > 0.03
    assert (demo["dap_gycm2"] >= 500).any()  # non-spine work above the KAP SRDL
    assert (demo.groupby("mrn").size() > 1).mean() > 0.3  # repeat patients
    cervical_tfesi = demo[(demo["code"] == "TFESI") & (demo["region"] == "cervical")]
    assert (cervical_tfesi["injectate"] == "methylprednisolone").any()
    assert np.isclose(demo["air_kerma_mgy"] / demo["dap_gycm2"], 1000 / 120, rtol=0.9).all()


def test_demo_records_pass_the_logs_own_validation(engine: Engine, demo: pd.DataFrame) -> None:
    """Demo data must be data a technologist could have entered."""
    service = ProcedureLog(engine)
    with Session(engine) as s:
        catalog = load_catalog(s)
    sample = demo["id"].sample(300, random_state=1).tolist()
    for record_id in sample:
        record = input_view(service.get(int(record_id), cli_actor()))
        _, errors = validate(record, catalog, now=datetime.now(UTC))
        assert errors == [], (record_id, errors)


def test_demo_runs_again_and_grows(engine: Engine) -> None:
    """A second run (same seed, more procedures) reuses the patients and adds new records."""
    first = generate(engine, procedures=300, seed=2, until=UNTIL)
    second = generate(engine, procedures=600, seed=2, until=UNTIL)
    assert second["first_record_id"] == first["last_record_id"] + 1
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Procedure)) == 900
        assert s.scalar(select(func.count()).select_from(Patient)) == 200
