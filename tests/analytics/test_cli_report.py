"""`fluoro-audit report`: the same figures as the library (and so the pages), as JSON, CSV or
a table; bad options are refused with a message naming them."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest

from audit.auth import cli_actor
from audit.log.service import ProcedureLog
from audit.settings import update_setting
from audit.storage.engine import make_engine
from tests.analytics import analytics_data


def run(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "audit.cli", "--db", url, "report", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def hand_url(db_url: str) -> str:
    engine = make_engine(db_url)
    analytics_data.load(ProcedureLog(engine), cli_actor())
    engine.dispose()
    return db_url


def test_compliance_json_gives_the_hand_computed_numbers(hand_url: str) -> None:
    done = run(hand_url, "compliance", "--by", "physician", "--format", "json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    overall = report["overall"]
    assert {k: overall[k] for k in ("eligible", "compliant", "excepted", "non_compliant")} == \
        {"eligible": 8, "compliant": 3, "excepted": 1, "non_compliant": 4}
    assert overall["rate"] == pytest.approx(3 / 7)
    groups = {g["physician"]: g for g in report["groups"]}
    assert groups["Dr. A"]["rate"] == pytest.approx(1 / 3)
    assert (groups["Dr. B"]["eligible"], groups["Dr. B"]["excepted"]) == (5, 1)


def test_period_and_csv(hand_url: str) -> None:
    done = run(hand_url, "compliance", "--from", "2026-02-01", "--to", "2026-02-28",
               "--by", "month", "--format", "csv")
    assert done.returncode == 0, done.stderr
    overall, groups = done.stdout.split("\n\n")  # one section per table
    assert overall.startswith("# overall\nscope,eligible,") and groups.startswith("# groups\n")
    rows = list(csv.DictReader(io.StringIO(groups.partition("\n")[2])))
    assert [(r["month"], r["eligible"]) for r in rows] == [("2026-02", "3")]


def test_dose_and_drl_reports(hand_url: str) -> None:
    dose = json.loads(run(hand_url, "dose", "--format", "json").stdout)
    tfesi = next(g for g in dose["groups"] if g["procedure"] == "TFESI")
    assert (tfesi["dap_gycm2_median"], tfesi["dap_gycm2_p75"]) == (3.5, 4.75)
    drl = json.loads(run(hand_url, "drl", "--format", "json").stdout)
    tfesi = next(g for g in drl["groups"]
                 if g["procedure"] == "TFESI" and g["quantity"] == "dap_gycm2")
    # 3 rooms of 1-2 records: a typical value (the pooled median of 1..6), not a DRL
    assert (tfesi["typical"], tfesi["drl"], tfesi["kind"]) == (3.5, None, "typical")
    table = run(hand_url, "dose", "--procedure", "tfesi")
    assert table.returncode == 0 and "TFESI" in table.stdout and "ILESI" not in table.stdout


def test_alerts_report(hand_url: str) -> None:
    # Investigation levels from 5 records, at the 90th percentile, floor 1 x the median: TFESI
    # KAP 1, 2, 3, 4, 5, 6 (#9 is void) -> level 5.5, #10 above it (Dr. B); TFESI time 20, 30,
    # 35, 40, 50, 60 -> level 55, #5 above it (Dr. A); Ka,r, ILESI and MBB: too few records.
    engine = make_engine(hand_url)
    for key, value in (("investigation_min_records", 5), ("investigation_percentile", 90),
                       ("investigation_factor", 1)):
        update_setting(engine, cli_actor(), key, value)
    engine.dispose()
    done = run(hand_url, "alerts", "--format", "json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert {(row["kind"], row["quantity"]) for row in report["overall"]} == \
        {("investigation", "dap_gycm2"), ("investigation", "fluoro_time_s")}
    assert all(alert["status"] == "open" for alert in report["alerts"])
    rates = {row["kind"]: row for row in report["rates"]}
    assert list(rates) == ["srdl", "cumulative", "investigation", "all"]
    assert (rates["investigation"]["procedures"], rates["investigation"]["open"]) == (9, 2)
    assert rates["investigation"]["open_per_100"] == pytest.approx(22.22)
    assert rates["srdl"]["open_per_100"] == 0
    doctors = {row["physician"]: row for row in report["by_physician"]}
    assert (doctors["Dr. A"]["procedures"], doctors["Dr. A"]["open"],
            doctors["Dr. A"]["open_per_100"]) == (4, 1, 25.0)
    assert (doctors["Dr. B"]["procedures"], doctors["Dr. B"]["open_per_100"]) == (5, 20.0)
    assert sorted(row["patient"] for row in report["by_patient"]) == ["HB005", "HB010"]
    table = run(hand_url, "alerts")
    assert table.returncode == 0
    assert "rates:" in table.stdout and "open_per_100" in table.stdout
    assert "by_physician:" in table.stdout and "by_patient:" in table.stdout


@pytest.mark.parametrize(("args", "message"), [
    (("drl", "--by", "room"), "by: does not apply"),
    (("compliance", "--from", "March"), "--from: 'March' is not a date"),
    (("compliance", "--physician", "Dr. Nobody"), "physician: no physician named 'Dr. Nobody'"),
    (("compliance", "--from", "2026-03-01", "--to", "2026-01-01"), "to: 2026-01-01 is before"),
])
def test_bad_options_are_refused_by_name(hand_url: str, args: tuple[str, ...],
                                         message: str) -> None:
    done = run(hand_url, *args)
    assert done.returncode == 1
    assert message in done.stderr and done.stdout == ""


def test_usage_errors_exit_2(hand_url: str) -> None:
    assert run(hand_url, "nonsense").returncode == 2
    assert run(hand_url, "dose", "--by", "weather").returncode == 2
