"""The committee report: every figure the PDF prints equals `report ... --format json` for the
same period (compliance, eligible records, each procedure's median and reference level, alert
counts); pseudonymised physicians; progress; audit; rendering; refused without dashboards."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from audit.analytics.snapshot import FrameCache, load_snapshot
from audit.auth import Actor
from audit.cli import main
from audit.demo.loading import generate
from audit.documents import write_committee_report
from audit.documents.committee import KIND_WORDS, dose_value, quantity_words
from audit.documents.committee_figures import gather
from audit.documents.words import count, number, percent
from audit.errors import PermissionDenied
from audit.storage.models import AuditEvent
from audit.vocab import Role
from tests.documents.conftest import assert_not_blank, first_page_png, keep_screenshot, pdf_text

PERIOD = ["--from", "2026-01-01", "--to", "2026-06-30"]
QUALITY = Actor("quality", Role.QUALITY_OFFICER)


@pytest.fixture
def demo(engine: Engine) -> Engine:
    generate(engine, procedures=1500, seed=5, until=date(2026, 11, 30))
    return engine


def report_json(db_url: str, kind: str, capsys: pytest.CaptureFixture[str]) -> Any:
    assert main(["--db", db_url, "report", kind, *PERIOD, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_every_figure_equals_the_report_commands(db_url: str, demo: Engine, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "committee.pdf"
    assert main(["--db", db_url, "report", "committee", *PERIOD, "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "[0/7] reading the records" in printed.err and "[7/7] done" in printed.err
    text = " ".join(pdf_text(out).split())
    compliance = report_json(db_url, "compliance", capsys)["overall"]
    assert (f"Compliance: {percent(compliance['rate'])} (95% interval "
            f"{percent(compliance['ci_low'])} to {percent(compliance['ci_high'])}); eligible "
            f"records: {count(compliance['eligible'])}") in text
    dose = {g["procedure"]: g for g in report_json(db_url, "dose", capsys)["groups"]}
    drl = report_json(db_url, "drl", capsys)["groups"]
    assert drl
    for row in drl:
        q, stats = row["quantity"], dose[row["procedure"]]
        expected = (f"{row['procedure']} {quantity_words(q)} {count(stats[f'{q}_n'])} "
                    f"{dose_value(q, stats[f'{q}_median'])} {dose_value(q, stats[f'{q}_p75'])} "
                    f"{dose_value(q, row['level'])}")
        assert expected in text, expected
    alerts = report_json(db_url, "alerts", capsys)
    for row in alerts["rates"]:
        assert (f"{KIND_WORDS[row['kind']]} {count(row['raised'])} "
                f"{number(row['raised_per_100'], 2)} {count(row['acknowledged'])} "
                f"{count(row['open'])} {count(row['withdrawn'])}") in text
    for row in alerts["overall"]:
        assert (f"{KIND_WORDS[row['kind']]} {quantity_words(row['quantity'])} "
                f"{count(row['open'])} {count(row['acknowledged'])} {count(row['withdrawn'])} "
                f"{count(row['total'])}") in text
    assert "Definitions and sources" in text and "ICRP Publication 135" in text
    png = first_page_png(out, tmp_path / "committee.png")
    assert_not_blank(png)
    keep_screenshot(png, "committee")


@pytest.mark.slow
def test_pseudonymised_report_names_no_physician(demo: Engine, tmp_path: Path) -> None:
    out = tmp_path / "committee.pdf"
    steps: list[tuple[str, int, int]] = []
    result = write_committee_report(demo, QUALITY, out, first=date(2026, 1, 1),
                                    last=date(2026, 6, 30), pseudonymise=True,
                                    progress=lambda *step: steps.append(step))
    text = pdf_text(out)
    assert "Physician A" in text and "Dr. Demo" not in text
    done_steps = [done for _, done, _ in steps]  # step 0 also reports the records read
    assert done_steps == sorted(done_steps) and sorted(set(done_steps)) == list(range(8))
    with Session(demo) as session:
        event = session.get(AuditEvent, result["audit_event_id"])
    assert event is not None and event.entity == "committee_report"
    assert event.actor == "quality" and event.entity_id == "2026-01-01 to 2026-06-30"
    assert event.after["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert event.after["pseudonymised"] is True


def test_a_technologist_gets_no_committee_report(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(PermissionDenied):
        write_committee_report(engine, Actor("tech1", Role.TECHNOLOGIST), tmp_path / "r.pdf",
                               first=date(2026, 1, 1), last=date(2026, 3, 31))
    assert not (tmp_path / "r.pdf").exists()


def test_cli_committee_needs_out_and_a_period(db_url: str, engine: Engine, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--db", db_url, "report", "committee", *PERIOD]) == 1
    assert "--out FILE.pdf" in capsys.readouterr().err
    assert main(["--db", db_url, "report", "committee", "--out",
                 str(tmp_path / "r.pdf")]) == 1
    assert "needs a period" in capsys.readouterr().err


def test_reading_the_records_shows_how_far_it_has_come(demo: Engine) -> None:
    """The first step (a full read, seconds at a million records) reports the records read so
    far within step 0, before compliance begins; the figures are those of a report with the
    frame already loaded, in which the alerts are up to date (no step reads them again)."""
    heard: list[tuple[str, int]] = []
    first = gather(demo, QUALITY, date(2026, 1, 1), date(2026, 6, 30),
                   progress=lambda step, done, total: heard.append((step, done)))
    reading = [step for step, done in heard if done == 0]
    assert reading[0] == "reading the records"
    assert reading[-1].startswith("reading the records: ") and reading[-1].endswith(
        f"of {count(len(load_snapshot(demo).records))}")
    assert [done for _, done in heard] == sorted(done for _, done in heard)
    frames = FrameCache(demo)
    frames.get()
    again = gather(demo, QUALITY, date(2026, 1, 1), date(2026, 6, 30), frames=frames)
    assert again.alerts.equals(first.alerts) and again.alert_rates.equals(first.alert_rates)
    assert again.compliance.equals(first.compliance) and again.drl.equals(first.drl)
