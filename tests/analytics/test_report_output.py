"""`fluoro-audit report` output a program can read: JSON with null (never NaN or "NaT") for a
missing value, and CSV with one table per section (or per file with --out) whose counts are
integers ("12", never "12.0"), for every report kind.

The data are the hand-built set (tests/analytics/analytics_data.py), whose gaps are real: Ka,r
missing on most records (NaN medians), too few rooms for a DRL (NaN drl), and, beside
cumulative alerts that have a window, investigation alerts that have none (NaT window_start:
the column is a datetime column, which is what printed "NaT").
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from audit.auth import cli_actor
from audit.cli import main
from audit.log.service import ProcedureLog
from audit.settings import update_setting
from audit.storage.engine import make_engine
from tests.analytics import analytics_data

#: The columns that count something, per report: each must be an integer in JSON and CSV.
COUNTS = {
    "compliance": {"eligible", "compliant", "excepted", "non_compliant"},
    "dose": {"records", "fluoro_time_s_n", "dap_gycm2_n", "air_kerma_mgy_n"},
    "drl": {"rooms", "rooms_with_records", "records", "room_records_min", "min_rooms",
            "min_room_records"},
    "alerts": {"open", "acknowledged", "withdrawn", "total", "procedures", "raised", "srdl",
               "cumulative", "investigation", "alert_id", "procedure_id", "records", "alerts"},
}
#: (report, --by) pairs covering every table each report can hold.
CASES = [("compliance", None), ("compliance", "month"), ("dose", None), ("dose", "physician"),
         ("drl", None), ("alerts", None), ("alerts", "physician")]
INTEGER = re.compile(r"-?\d+")


@pytest.fixture
def hand_url(db_url: str) -> str:
    """The hand-built records, with alert levels low enough to raise both kinds: investigation
    (as in test_cli_report.test_alerts_report: #5 and #10) and cumulative (KAP 5 Gy·cm²: #5
    and #10 alone reach it)."""
    engine = make_engine(db_url)
    analytics_data.load(ProcedureLog(engine), cli_actor())
    for key, value in (("investigation_min_records", 5), ("investigation_percentile", 90),
                       ("investigation_factor", 1), ("cumulative_kap_gycm2", 5)):
        update_setting(engine, cli_actor(), key, value)
    engine.dispose()
    return db_url


def report(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> str:
    code = main(["--db", url, "report", *args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def strict_json(text: str) -> Any:
    """json.loads that refuses NaN, Infinity and -Infinity (which Python's reader accepts by
    default, and most others do not)."""
    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} in the JSON output")
    return json.loads(text, parse_constant=refuse)


def leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in leaves(v)]
    return [value]


def csv_sections(text: str) -> dict[str, list[dict[str, str]]]:
    """The tables of a CSV report: one plain table (named ""), or sections "# NAME" separated
    by a blank line."""
    if not text.startswith("# "):
        return {"": list(csv.DictReader(io.StringIO(text)))}
    tables = {}
    for block in text.split("\n\n"):
        title, _, body = block.partition("\n")
        assert title.startswith("# "), block
        tables[title[2:]] = list(csv.DictReader(io.StringIO(body)))
    return tables


def count_cells(kind: str, rows: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    return [(column, row[column]) for row in rows for column in COUNTS[kind] & set(row)]


@pytest.mark.parametrize(("kind", "by"), CASES)
def test_json_has_null_for_every_missing_value_and_integer_counts(
        capsys: pytest.CaptureFixture[str], hand_url: str, kind: str, by: str | None) -> None:
    out = report(capsys, hand_url, kind, *(("--by", by) if by else ()), "--format", "json")
    parsed = strict_json(out)
    values = leaves(parsed)
    assert not [v for v in values if isinstance(v, str) and v in {"NaT", "NaN", "nan", "None"}]
    assert None in values  # the gaps are there, as null
    tables = [rows if isinstance(rows, list) else [rows] for name, rows in parsed.items()
              if name not in {"report", "by", "filters"}]
    counts = [cell for rows in tables for cell in count_cells(kind, rows)]
    assert counts, "no count column found: the check would prove nothing"
    wrong = [(c, v) for c, v in counts
             if v is not None and not (isinstance(v, int) and not isinstance(v, bool))]
    assert not wrong, wrong


def test_alerts_json_times_are_iso_or_null(capsys: pytest.CaptureFixture[str],
                                           hand_url: str) -> None:
    """The case that printed "NaT": an investigation alert has no cumulative window."""
    parsed = strict_json(report(capsys, hand_url, "alerts", "--format", "json"))
    kinds = {alert["kind"] for alert in parsed["alerts"]}
    assert kinds == {"investigation", "cumulative"}, kinds
    for alert in parsed["alerts"]:
        windowed = alert["kind"] == "cumulative"
        for end in ("window_start", "window_end"):
            assert (alert[end] is not None) == windowed, alert
            assert alert[end] is None or alert[end].startswith("2026-")
        assert alert["performed_at"].startswith("2026-")
    latest = {row["physician"]: row["latest"] for row in parsed["by_physician"]}
    assert all(v is None or v.startswith("2026-") for v in latest.values())


@pytest.mark.parametrize(("kind", "by"), CASES)
def test_csv_is_one_table_per_section_with_integer_counts(
        capsys: pytest.CaptureFixture[str], hand_url: str, kind: str, by: str | None) -> None:
    as_json = strict_json(report(capsys, hand_url, kind, *(("--by", by) if by else ()),
                                 "--format", "json"))
    names = [n for n in as_json if n not in {"report", "by", "filters"}]
    out = report(capsys, hand_url, kind, *(("--by", by) if by else ()), "--format", "csv")
    tables = csv_sections(out)
    assert list(tables) == (names if len(names) > 1 else [""])
    for name, rows in zip(names, tables.values(), strict=True):
        expected = as_json[name] if isinstance(as_json[name], list) else [as_json[name]]
        assert len(rows) == len(expected), name
        if rows:  # each table has its own columns, no "table" column and no others' columns
            assert list(rows[0]) == list(expected[0]), name
    cells = [cell for rows in tables.values() for cell in count_cells(kind, rows)]
    assert cells, "no count column found: the check would prove nothing"
    wrong = [(c, v) for c, v in cells if v != "" and not INTEGER.fullmatch(v)]
    assert not wrong, wrong
    assert not re.search(r"(^|,)(nan|NaN|NaT|None)(,|$)", out, re.M)


def test_csv_out_writes_each_table_to_its_own_file(
        capsys: pytest.CaptureFixture[str], hand_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "reports"
    out = report(capsys, hand_url, "alerts", "--out", str(folder))
    written = [strict_json(line) for line in out.splitlines()]
    assert [w["table"] for w in written] == ["overall", "rates", "by_physician", "by_patient",
                                             "alerts"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"alerts_{w['table']}.csv" for w in written)  # no partial file left behind
    for entry in written:
        rows = list(csv.DictReader(io.StringIO(Path(entry["file"]).read_text("utf-8"))))
        assert len(rows) == entry["rows"]
        cells = count_cells("alerts", rows)
        assert cells and all(INTEGER.fullmatch(v) for _, v in cells if v != ""), entry
    compliance = report(capsys, hand_url, "compliance", "--by", "month", "--format", "csv",
                        "--out", str(folder))
    assert [strict_json(line)["table"] for line in compliance.splitlines()] == [
        "overall", "groups"]
    assert (folder / "compliance_groups.csv").read_text("utf-8").startswith("month,eligible,")


def test_out_goes_with_csv_only(capsys: pytest.CaptureFixture[str], hand_url: str,
                                tmp_path: Path) -> None:
    code = main(["--db", hand_url, "report", "dose", "--format", "json", "--out",
                 str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 1 and "--out writes one CSV file per table" in err
    assert not (tmp_path / "x").exists()
