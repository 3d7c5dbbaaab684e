"""Export summaries on both databases: compliance, dose and reference levels, alerts.

The figures are those of `fluoro-audit report` (the dashboards' functions) on the hand-built
data set of tests/analytics/analytics_data.py, whose numbers are worked out on paper there.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from audit.alerts.store import acknowledge
from audit.auth import Actor, cli_actor
from audit.errors import ValidationFailed
from audit.export import registry
from audit.export.cells import restore
from audit.export.runner import count_rows, export
from audit.export.verify import verify_export
from audit.filters import Filters, parse_period
from audit.log.service import ProcedureLog
from audit.settings import update_setting
from audit.vocab import Role
from tests.analytics import analytics_data
from tests.conftest import valid_record

RSO = Actor("rso1", Role.RSO)
QUALITY = Actor("qo1", Role.QUALITY_OFFICER)
SUMMARY_FILES = ["compliance.csv", "dose_by_procedure.csv", "reference_levels.csv",
                 "alerts.csv"]
FIGURES = ("eligible", "compliant", "excepted", "non_compliant", "rate", "ci_low", "ci_high")


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "audit.cli", "--db", url, *args],
                          capture_output=True, text=True, check=False, timeout=180)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


#: Investigation levels the hand data set can have (the defaults need 100 records of a type):
#: TFESI KAP 1, 2, 3, 4, 5, 6 -> 80th percentile 5, #10 (6) above it; TFESI time 20, 30, 35,
#: 40, 50, 60 -> 50, #5 (60) above it; the other types and Ka,r have fewer than 6 records.
INVESTIGATION = {"investigation_min_records": 6, "investigation_percentile": 80,
                 "investigation_factor": 1}


@pytest.fixture
def hand(engine: Engine) -> dict[int, int]:
    """The hand-built data set: table number -> record id."""
    for key, value in INVESTIGATION.items():
        update_setting(engine, cli_actor(), key, value)
    return analytics_data.load(ProcedureLog(engine), cli_actor())


def number(cell: str) -> float | None:
    return None if cell == "" else float(cell)


def same_figures(row: dict[str, str], reported: dict[str, Any]) -> None:
    """A compliance.csv row holds the report's numbers (15 significant digits)."""
    for name in FIGURES:
        expected = reported[name]
        if expected is None:
            assert row[name] == "", name
        else:
            assert number(row[name]) == pytest.approx(expected, rel=1e-14, abs=1e-15), name


# --- the summary kind through the CLI --------------------------------------------------------

def test_export_summary_writes_four_listed_files_that_verify(
    db_url: str, hand: dict[int, int], tmp_path: Path
) -> None:
    out = tmp_path / "summary"
    done = cli(db_url, "export", "summary", "--out", str(out))
    assert done.returncode == 0, done.stderr
    written = {f["name"]: f.get("rows") for f in json.loads(done.stdout)["files"]}
    assert list(written)[:4] == SUMMARY_FILES
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    assert [s["name"] for s in manifest["sections"]] == ["compliance", "dose",
                                                         "reference_levels", "alerts"]
    listed = {f["name"]: f["rows"] for f in manifest["files"] if "rows" in f}
    for name in SUMMARY_FILES:
        assert listed[name] == len(read_csv(out / name)) == written[name]
    dictionary = {(d["file"], d["field"]) for d in read_csv(out / "data_dictionary.csv")}
    assert ("compliance.csv", "ci_high") in dictionary
    assert ("alerts.csv", "acknowledged_by") in dictionary
    assert ("reference_levels.csv", "source") in dictionary

    checked = cli(db_url, "verify-export", str(out))
    assert checked.returncode == 0, checked.stderr
    for name in SUMMARY_FILES:
        assert name in checked.stdout
    sums = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=out, capture_output=True,
                          text=True, check=False)
    assert sums.returncode == 0 and "alerts.csv: OK" in sums.stdout
    raw = (out / "compliance.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and raw.count(b"\r\n") == listed["compliance.csv"] + 1

    path = out / "dose_by_procedure.csv"  # a changed byte in a summary fails too
    path.write_bytes(path.read_bytes().replace(b"4.75", b"4.76", 1))
    failed = cli(db_url, "verify-export", str(out))
    assert failed.returncode == 1 and "dose_by_procedure.csv: SHA-256 differs" in failed.stderr


@pytest.mark.parametrize("period", [(), ("--from", "2026-02-01", "--to", "2026-02-28")])
def test_compliance_csv_holds_the_reports_numbers(
    db_url: str, hand: dict[int, int], tmp_path: Path, period: tuple[str, ...]
) -> None:
    out = tmp_path / "c"
    done = cli(db_url, "export", "log", "--out", str(out), "--with", "compliance", *period)
    assert done.returncode == 0, done.stderr
    rows = read_csv(out / "compliance.csv")
    overall = [r for r in rows if r["grouping"] == "overall"]
    assert len(overall) == 1 and overall[0]["group"] == "all"
    for by in ("physician", "room", "procedure", "month"):
        report = cli(db_url, "report", "compliance", "--by", by, "--format", "json", *period)
        assert report.returncode == 0, report.stderr
        figures = json.loads(report.stdout)
        same_figures(overall[0], figures["overall"])
        groups = [r for r in rows if r["grouping"] == by]
        assert [g["group"] for g in groups] == [g[by] for g in figures["groups"]]
        for row, reported in zip(groups, figures["groups"], strict=True):
            same_figures(row, reported)
    if not period:  # the hand-worked figures (tests/analytics/analytics_data.py)
        assert [overall[0][k] for k in FIGURES[:4]] == ["8", "3", "1", "4"]
        assert float(overall[0]["rate"]) == pytest.approx(3 / 7)
        months = {r["group"]: r["eligible"] for r in rows if r["grouping"] == "month"}
        assert months == {"2026-01": "2", "2026-02": "3", "2026-03": "3"}


def test_dose_and_reference_levels_by_procedure(
    engine: Engine, hand: dict[int, int], tmp_path: Path
) -> None:
    result = export(engine, QUALITY, tmp_path / "d", sections=("dose", "reference_levels"))
    dose = read_csv(result.path / "dose_by_procedure.csv")
    assert [(r["procedure"], r["quantity"]) for r in dose][:3] == [
        ("ILESI", "fluoro_time_s"), ("ILESI", "dap_gycm2"), ("ILESI", "air_kerma_mgy")]
    tfesi = {r["quantity"]: r for r in dose if r["procedure"] == "TFESI"}
    kap = tfesi["dap_gycm2"]  # 1, 2, 3, 4, 5, 6 Gy·cm² (the voided 100 does not count)
    assert (kap["unit"], kap["records"], kap["n"], kap["median"], kap["p75"]) == (
        "Gy·cm²", "6", "6", "3.5", "4.75")
    # 3 rooms of 1-2 records, under ICRP 135's thresholds: a typical value, the pooled median
    assert (kap["local_rooms"], kap["local_rooms_with_records"], kap["local_drl"],
            kap["achievable"], kap["typical"], kap["local_kind"], kap["local_figure"]) == (
        "0", "3", "", "", "3.5", "typical", "typical value")
    assert (kap["local_min_rooms"], kap["local_min_room_records"],
            kap["local_room_records_min"], kap["local_kap_corrected"]) == ("10", "20", "2", "true")
    assert kap["local_basis"].startswith("typical value (ICRP 135): median of all 6 records")
    assert "ICRP Publication 135" in kap["local_source"]
    assert "median 0.68 (Kim SJ, J Spinal Disord Tech 2014, n = 181)" in kap["published"]
    kerma = tfesi["air_kerma_mgy"]  # 10, 20, 30 mGy in two rooms: a typical value
    assert (kerma["n"], kerma["median"], kerma["local_kind"], kerma["typical"]) == (
        "3", "20", "typical", "20")
    ilesi_kerma = next(r for r in dose if r["procedure"] == "ILESI"
                       and r["quantity"] == "air_kerma_mgy")
    assert (ilesi_kerma["n"], ilesi_kerma["median"]) == ("0", "")

    levels = read_csv(result.path / "reference_levels.csv")
    kim = next(r for r in levels if r["procedure"] == "TFESI" and r["quantity"] == "dap_gycm2"
               and r["statistic"] == "median")
    assert (kim["kind"], kim["value"], kim["unit"], kim["sample_size"], kim["source"],
            kim["effective_from"]) == ("published", "0.68", "Gy·cm²", "181",
                                       "Kim SJ, J Spinal Disord Tech 2014", "2014-01-01")
    srdl = {r["quantity"]: r for r in levels if r["kind"] == "srdl"}
    assert srdl["air_kerma_mgy"]["value"] == "5000" and srdl["dap_gycm2"]["value"] == "500"
    assert srdl["fluoro_time_s"]["source"].startswith("setting srdl_fluoro_time_s: NCRP")
    assert all(r["source"] for r in levels)


def test_summaries_honour_the_filters(
    db_url: str, hand: dict[int, int], tmp_path: Path
) -> None:
    out = tmp_path / "f"
    done = cli(db_url, "export", "summary", "--out", str(out), "--procedure", "tfesi",
               "--physician", "Dr. A", "--from", "2026-02-01")
    assert done.returncode == 0, done.stderr
    compliance = read_csv(out / "compliance.csv")
    assert compliance[0]["eligible"] == "1"  # only #5: TFESI, Dr. A, from February
    assert {r["group"] for r in compliance if r["grouping"] == "physician"} == {"Dr. A"}
    dose = read_csv(out / "dose_by_procedure.csv")
    assert {r["procedure"] for r in dose} == {"TFESI"}
    kap = next(r for r in dose if r["quantity"] == "dap_gycm2")
    assert (kap["records"], kap["median"]) == ("1", "5")
    assert kap["local_records"] == "4"  # the local level: every room and physician, from Feb
    assert {r["procedure"] for r in read_csv(out / "reference_levels.csv")} == {"TFESI", "all"}
    alerts = read_csv(out / "alerts.csv")
    assert [(r["record_id"], r["physician"]) for r in alerts] == [("5", "Dr. A")]
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    assert manifest["filters"]["procedure_code"] == "TFESI"
    honoured = {s["name"]: s["filters"] for s in manifest["sections"]}
    assert honoured["reference_levels"] == ["procedure_code"]
    assert "physician" in honoured["compliance"]


def test_a_period_that_is_not_whole_days_is_refused_by_name(
    db_url: str, hand: dict[int, int], tmp_path: Path
) -> None:
    done = cli(db_url, "export", "summary", "--out", str(tmp_path / "x"), "--from",
               "2026-02-01T06:00:00-05:00")
    assert done.returncode == 1
    assert "error: from: 2026-02-01T11:00:00Z is not a UTC midnight" in done.stderr
    assert list(tmp_path.iterdir()) == []
    log_only = cli(db_url, "export", "log", "--out", str(tmp_path / "y"), "--from",
                   "2026-02-01T06:00:00-05:00")
    assert log_only.returncode == 0, log_only.stderr  # the log takes exact instants


# --- alerts ----------------------------------------------------------------------------------

def test_alerts_are_refreshed_and_carry_their_acknowledgement(
    engine: Engine, hand: dict[int, int], tmp_path: Path
) -> None:
    first = export(engine, QUALITY, tmp_path / "a", sections=("alerts",))
    rows = read_csv(first.path / "alerts.csv")  # never refreshed before: the export did it
    assert [r["record_id"] for r in rows] == [str(hand[n]) for n in (5, 10)]
    assert [(r["kind"], r["quantity"], r["unit"], r["status"]) for r in rows] == [
        ("investigation", "fluoro_time_s", "s", "open"),
        ("investigation", "dap_gycm2", "Gy·cm²", "open")]
    assert rows[0]["value"] == "60" and rows[0]["threshold"] == "50"
    assert "investigation_percentile = 80" in rows[0]["threshold_source"]
    assert rows[0]["record_ids"] == str(hand[5]) and rows[0]["acknowledgements"] == "0"
    assert count_rows(engine, QUALITY, sections=("alerts",)) == {"alerts": 2}

    note = '=HYPERLINK("x") patient informed; Ελένη booked a skin check'
    acknowledge(engine, RSO, [int(rows[0]["alert_id"])], note, patient_informed=True,
                skin_check_date=date(2026, 2, 20))
    second = export(engine, QUALITY, tmp_path / "b", sections=("alerts",))
    acked = read_csv(second.path / "alerts.csv")[0]
    assert (acked["status"], acked["acknowledged_by"], acked["patient_informed"],
            acked["skin_check_date"], acked["acknowledgements"]) == (
        "acknowledged", "rso1", "true", "2026-02-20", "1")
    assert acked["acknowledged_at"].endswith("Z")
    assert acked["note"].startswith("'=HYPERLINK") and restore(acked["note"]) == note
    assert verify_export(second.path).ok


def test_alerts_show_patients_as_patient_ref_unless_phi(
    engine: Engine, hand: dict[int, int], tmp_path: Path
) -> None:
    plain = export(engine, QUALITY, tmp_path / "a", sections=registry.KINDS["summary"])
    text = "".join(p.read_text("utf-8", errors="replace") for p in plain.path.iterdir())
    assert "HB0" not in text  # the data set's MRNs are HB001..HB010
    rows = read_csv(plain.path / "alerts.csv")
    assert "patient_id" not in rows[0] and rows[0]["patient_ref"].startswith("P")
    with_phi = export(engine, RSO, tmp_path / "b", sections=("alerts",), include_phi=True)
    rows = read_csv(with_phi.path / "alerts.csv")
    assert [r["patient_id"] for r in rows] == ["HB005", "HB010"]
    header = list(rows[0])
    assert header.index("patient_id") == header.index("patient_ref") + 1


# --- one consistent snapshot -----------------------------------------------------------------

def test_a_record_logged_during_the_alert_refresh_is_in_every_file(
    engine: Engine, hand: dict[int, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The frame read for the alert refresh is caught up to the export's snapshot, so the
    summaries count what procedures.csv holds."""
    service = ProcedureLog(engine)
    original = registry.SECTIONS["alerts"]

    def prepare_then_log(engine_: Engine, cache: dict[str, Any]) -> None:
        original.prepare_for(engine_, cache)
        service.log(valid_record(performed_at="2026-03-20T12:00:00Z", site="Riverside",
                                 room="R1", physician="Dr. A", patient_id="HB099"),
                    cli_actor(), confirm_warnings=True)

    monkeypatch.setitem(registry.SECTIONS, "alerts", replace(original, prepare=prepare_then_log))
    result = export(engine, QUALITY, tmp_path / "x",
                    sections=("procedures", "compliance", "dose", "alerts"))
    assert result.rows["procedures.csv"] == 10
    compliance = read_csv(result.path / "compliance.csv")
    assert compliance[0]["eligible"] == "9" and compliance[0]["compliant"] == "4"
    kap = next(r for r in read_csv(result.path / "dose_by_procedure.csv")
               if r["procedure"] == "TFESI" and r["quantity"] == "dap_gycm2")
    assert kap["records"] == "7"


def test_room_filters_match_the_dashboards_rooms(
    engine: Engine, hand: dict[int, int], tmp_path: Path
) -> None:
    start, stop = parse_period("2026-03-01", "2026-03-31")
    result = export(engine, QUALITY, tmp_path / "m", sections=("procedures", "compliance"),
                    filters=Filters(start, stop, rooms=("R1",)))
    assert result.rows["procedures.csv"] == 1  # #7 (#9 is voided)
    rows = read_csv(result.path / "compliance.csv")
    assert (rows[0]["eligible"], rows[0]["non_compliant"]) == ("1", "1")

    ProcedureLog(engine).log(valid_record(site="Elsewhere", room="R1", patient_id="X1"),
                             cli_actor(), create_missing=True, confirm_warnings=True)
    both = export(engine, QUALITY, tmp_path / "n", sections=("compliance",),
                  filters=Filters(rooms=("R1",)))  # R1 at two sites: both count
    assert read_csv(both.path / "compliance.csv")[0]["eligible"] == "4"
    one = export(engine, QUALITY, tmp_path / "o", sections=("compliance",),
                 filters=Filters(sites=("Elsewhere",), rooms=("R1",)))
    rows = read_csv(one.path / "compliance.csv")
    assert rows[0]["eligible"] == "1"
    assert [r["group"] for r in rows if r["grouping"] == "room"] == ["Elsewhere · R1"]
    ProcedureLog(engine).log(valid_record(site="Riverside", room="R9", patient_id="X2"),
                             cli_actor(), create_missing=True, confirm_warnings=True)
    with pytest.raises(ValidationFailed, match="no room named 'R9' at site 'Elsewhere'"):
        export(engine, QUALITY, tmp_path / "p", sections=("compliance",),
               filters=Filters(sites=("Elsewhere",), rooms=("R9",)))
