"""Fuzzing `fluoro-audit log` (issue 10): mutated records never end in a traceback, a partial
write or a non-finite stored number.

Each example is a batch of records, each a valid record with a few values replaced by extreme
numbers, broken text, wrong types, nested structures, odd dates and offsets, or keys deleted
or added. The batch, as JSON text, goes through what `fluoro-audit log` runs (read_records, then
ProcedureLog.log_many) on a real database. Checked per example: nothing is raised but the
refusals the command line reports as one error line (ValidationFailed, WarningsNotConfirmed,
CliError); a refused batch leaves the procedure and audit-event counts as they were, an
accepted one adds every record. At the end: no float column of any stored procedure holds inf
or NaN. tests/log/test_input_bounds.py sends the named extremes through audit.cli.main itself.
derandomize=True: the same examples on every run, so a CI failure reproduces.
"""

from __future__ import annotations

import json
import math
from datetime import timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, Float, func, select
from sqlalchemy.orm import Session

from audit.auth import cli_actor
from audit.cli.common import CliError
from audit.cli.records import read_records
from audit.errors import ValidationFailed, WarningsNotConfirmed
from audit.log.service import ProcedureLog
from audit.storage.models import AuditEvent, Procedure
from tests.conftest import valid_record

EXAMPLES = 250
NUMBER_FIELDS = ["patient_weight_kg", "fluoro_time_s", "fluoro_time", "dap_gycm2", "dap_value",
                 "air_kerma_mgy", "saved_images", "dsa_runs", "pulse_rate_pps",
                 "contrast_volume_ml"]
TEXT_FIELDS = ["site", "room", "physician", "technologist", "patient_id", "accession_number",
               "procedure_code", "contrast_agent", "notes", "dap_missing_reason",
               "contrast_exception_detail"]
FIELDS = [*valid_record(), *NUMBER_FIELDS, *TEXT_FIELDS, "patient_sex", "pulsed_fluoro"]
BIG = 10**400

NUMBERS: list[Any] = [
    BIG, -BIG, 2**63, -(2**63), 2**53 + 1, -1, 0, 10_001, float("inf"), float("-inf"),
    float("nan"), 1e308, -1e308, 5e-324, -0.0, "9" * 5000, "1" + "0" * 400, "1,250", "1,25",
    "1.250,5", "12,500", "inf", "-inf", "nan", "NaN", "Infinity", "1e400", "1e308", "-0",
    "1:75", "99999999:00", "1,250 min", "1e400 Gy", "1e400 min", "0x10", "\u0661\u0662",
    "1_000",
]
TEXTS: list[Any] = [
    "", " ", "\x00", "a\x00b", "\ud800", "x\udfffy", "x" * 5000, "\u202e\u200b", "\t\n",
    "\x07", "é" * 161, "L4;" * 200, "AP;" * 50, 10**39, -(10**45),
]
OTHERS: list[Any] = [
    "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-12:00", "2026-03-14T09:30:00+23:59",
    "2026-03-14T09:30:00-23:59", "2026-03-14T09:30:00", "2026-03-14", "1989-12-31T23:00:00Z",
    "2999-01-01T00:00:00Z", "pregnant", "M", True, None, ["L4"] * 1000, ["AP"] * 100, [["L4"]],
    [None], [BIG], [{}], [float("nan")], ["L4\x00"], {}, {"a": {"b": []}},
]
offsets = st.timedeltas(min_value=-timedelta(hours=23, minutes=59),
                        max_value=timedelta(hours=23, minutes=59)).map(
    lambda d: timezone(timedelta(minutes=d // timedelta(minutes=1))))
years = st.sampled_from([1, 2, 1989, 1990, 2026, 9998, 9999]) | st.integers(1, 9999)
moments = st.builds(lambda year, day, tz: day.replace(year=year, day=min(day.day, 28),
                                                      tzinfo=tz).isoformat(),
                    years, st.datetimes(), offsets)
scalars = st.one_of(st.integers(), st.floats(), st.text(max_size=300), st.booleans(), moments)
nested = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)
extreme = st.sampled_from(NUMBERS + TEXTS + OTHERS)
anything = st.one_of(extreme, scalars, nested)


@st.composite
def mutated_record(draw: st.DrawFn) -> dict[str, Any]:
    """A valid record with one to three mutations, most aimed where a crash would be: an
    extreme number in a number field, broken text in a text field, an odd date."""
    record = valid_record(patient_id=f"MRN{draw(st.integers(0, 10**6))}")
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["number", "number", "text", "date", "any", "delete",
                                       "add"]))
        if action == "number":
            record[draw(st.sampled_from(NUMBER_FIELDS))] = draw(
                st.sampled_from(NUMBERS) | st.integers() | st.floats())
        elif action == "text":
            record[draw(st.sampled_from(TEXT_FIELDS))] = draw(st.sampled_from(TEXTS) | st.text())
        elif action == "date":
            record["performed_at"] = draw(moments | st.sampled_from(OTHERS[:8]))
        elif action == "any":
            record[draw(st.sampled_from(FIELDS))] = draw(anything)
        elif action == "delete":
            record.pop(draw(st.sampled_from(FIELDS)), None)
        else:
            record[draw(st.text(max_size=20))] = draw(anything)
    return record


#: (record, whether it was mutated): mostly mutated; single-record batches let valid and
#: harmlessly mutated records through, so writes are checked too.
entries = st.integers(0, 4).flatmap(
    lambda pick: st.builds(valid_record).map(lambda r: (r, False)) if pick == 0
    else mutated_record().map(lambda r: (r, True)))
batches = st.integers(0, 3).flatmap(
    lambda pick: st.lists(entries, min_size=1, max_size=1) if pick == 0
    else st.lists(entries, min_size=6, max_size=12))


def counts(engine: Engine) -> tuple[int, int]:
    with Session(engine) as session:
        return (session.scalar(select(func.count()).select_from(Procedure)) or 0,
                session.scalar(select(func.count()).select_from(AuditEvent)) or 0)


def run_log(service: ProcedureLog, text: str, confirm: bool) -> tuple[int, str]:
    """What `fluoro-audit log --create-missing` does with `text` (audit.cli.records.cmd_log:
    read the JSON, log_many) on a shared service, so each example does not pay for a new
    process's engine and connections; the refusals main() maps to exit 1 are the only
    exceptions allowed, anything else fails the test."""
    try:
        records = read_records(text)
        service.log_many(records, cli_actor(), confirm_warnings=confirm, create_missing=True)
    except ValidationFailed as exc:
        return 1, "".join(f"error: {e}\n" for e in exc.errors)
    except (WarningsNotConfirmed, CliError) as exc:
        return 1, f"error: {exc}\n"
    return 0, ""


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_fuzzed_log_input_never_crashes_half_writes_or_stores_non_finite(
        service: ProcedureLog, engine: Engine) -> None:
    fed = {"records": 0, "mutated": 0, "accepted": 0}
    state = {"counts": counts(engine)}

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(entries=batches, confirm=st.booleans())
    def check(entries: list[tuple[dict[str, Any], bool]], confirm: bool) -> None:
        batch = [record for record, _ in entries]
        fed["mutated"] += sum(mutated for _, mutated in entries)
        text = json.dumps(batch, allow_nan=True)
        before = state["counts"]
        code, err = run_log(service, text, confirm)
        fed["records"] += len(batch)
        after = state["counts"] = counts(engine)
        if code == 0:
            fed["accepted"] += len(batch)
            assert after[0] == before[0] + len(batch), err
        else:
            assert err.startswith("error: "), err
            assert after == before, err

    check()
    assert fed["mutated"] >= 1000, fed
    assert fed["accepted"] > 0, fed  # the valid records in the mix do get written
    floats = [c for c in Procedure.__table__.columns if isinstance(c.type, Float)]
    with Session(engine) as session:
        stored = session.execute(select(*floats)).all()
    bad = [row for row in stored if any(v is not None and not math.isfinite(v) for v in row)]
    assert not bad, bad[:5]
