"""CSV cell rules: the Python and SQL renderings, the writer's bytes, record counting."""

from __future__ import annotations

import csv
import inspect
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Boolean, Engine, Float, String, literal, select

from audit import vocab
from audit.export.cells import (
    CsvWriter,
    Kind,
    cell,
    count_records,
    neutralise,
    number_text,
    restore,
    restore_list,
    sql_boolean,
    sql_number,
    sql_text,
    sql_timestamp,
    write_rows,
)
from audit.log.service import ProcedureLog
from audit.storage.models import Procedure
from tests.conftest import valid_record

HOSTILE = [
    "=cmd|' /C calc'!A0",
    "+1",
    "-2+3",
    "@SUM(A1)",
    "\t=1+1",
    "\r=1+1",
    "\n=1+1",
    "'already quoted",
    "''two",
    'say "hi", then go',
    "line one\nline two",
    "windows\r\nline",
    "Łukasz Żółć",
    "山田太郎",
    "Ελένη",
    "plain",
    "",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_neutralise_then_restore_gives_back_the_text(value: str) -> None:
    assert restore(neutralise(value)) == value


@pytest.mark.parametrize("value", ["=1+1", "+1", "-2+3", "@SUM(A1)", "\tx", "\rx", "\nx"])
def test_formula_starts_get_an_apostrophe(value: str) -> None:
    assert neutralise(value) == "'" + value


@pytest.mark.parametrize("value", ["plain", "Łukasz", "1+1", " =1", "a=b"])
def test_ordinary_text_is_untouched(value: str) -> None:
    assert neutralise(value) == value


def test_a_leading_apostrophe_is_doubled_so_the_rule_can_be_undone() -> None:
    assert neutralise("'t Hooft") == "''t Hooft"
    assert restore("''t Hooft") == "'t Hooft"


@pytest.mark.parametrize(("value", "expected"), [
    (0.0070999999999999995, "0.0071"),  # 0.71 cGy·cm² in Gy·cm²: the float's noise is not shown
    (0.00005, "0.00005"),
    (32.0, "32"),
    (0.0, "0"),
    (-2.5, "-2.5"),
    (1234567.25, "1234567.25"),
    (1 / 3, "0.333333333333333"),
    (0.0001, "0.0001"),
    (0.000012345678912, "0.000012346"),
    (7, "7"),
    (Decimal("1.50"), "1.5"),
])
def test_numbers_are_plain_decimals(value: Any, expected: str) -> None:
    assert number_text(value) == expected


def test_cells_by_kind() -> None:
    moment = datetime(2026, 3, 14, 9, 30, 0, 123456, tzinfo=timezone(timedelta(hours=-5)))
    assert cell(moment, Kind.DATETIME) == "2026-03-14T14:30:00Z"
    assert cell(True, Kind.BOOLEAN) == "true"
    assert cell(False, Kind.BOOLEAN) == "false"
    assert cell(None, Kind.BOOLEAN) == ""
    assert cell(-3, Kind.INTEGER) == -3
    assert cell(-2.5, Kind.NUMBER) == "-2.5"  # a negative number is a number, not a formula
    assert cell("-2.5", Kind.TEXT) == "'-2.5"  # the same characters as text are neutralised
    assert cell(["L4", "L5"], Kind.LIST) == "L4;L5"
    assert cell(["=a", "'b", "c"], Kind.LIST) == "'=a;''b;c"  # each item, so it reverses
    assert restore_list("'=a;''b;c") == ["=a", "'b", "c"] and restore_list("") == []
    assert cell(float("nan"), Kind.NUMBER) == ""
    assert cell({"b": 1, "a": "x"}, Kind.JSON) == '{"a":"x","b":1}'
    assert cell(vocab.Region.LUMBAR, Kind.ENUM) == "lumbar"


def test_no_vocabulary_value_starts_like_a_formula() -> None:
    """The SQL rendering passes CHECK-constrained enum columns through untouched; that is safe
    only while no vocabulary value starts with a formula character."""
    enums = [obj for _, obj in inspect.getmembers(vocab, inspect.isclass)
             if issubclass(obj, vocab.Vocabulary) and obj is not vocab.Vocabulary]
    assert len(enums) > 10
    values = [v for enum in enums for v in enum.values()] + list(vocab.ALL_LEVELS)
    assert [v for v in values if neutralise(v) != v] == []


# --- the SQL rendering equals the Python one, on both databases ------------------------------

def _sql(engine: Engine, expr: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(expr)).scalar()


@pytest.mark.parametrize("value", [v for v in HOSTILE if v] + [None])
def test_sql_text_matches_python(engine: Engine, value: str | None) -> None:
    rendered = _sql(engine, sql_text(literal(value, String())))
    assert rendered == (None if value is None else neutralise(value))


@pytest.mark.parametrize("value", [0.0070999999999999995, 0.00005, 32.0, 0.0, -2.5, 81.9,
                                   1234567.25, 1 / 3, 0.0001, 0.000012345678912, 1e-12, None])
def test_sql_number_matches_python(engine: Engine, value: float | None) -> None:
    rendered = _sql(engine, sql_number(literal(value, Float())))
    assert rendered == (None if value is None else number_text(value))


@pytest.mark.parametrize("value", [True, False, None])
def test_sql_boolean_matches_python(engine: Engine, value: bool | None) -> None:
    rendered = _sql(engine, sql_boolean(literal(value, Boolean())))
    assert rendered == (None if value is None else cell(value, Kind.BOOLEAN))


def test_sql_timestamp_matches_python_on_a_stored_record(
    service: ProcedureLog, admin: Any, engine: Engine
) -> None:
    record_id = service.log(valid_record(performed_at="2026-03-14T09:30:59.999-05:00"), admin,
                            create_missing=True).record_id
    with engine.connect() as conn:
        stored, rendered = conn.execute(
            select(Procedure.performed_at, sql_timestamp(Procedure.performed_at))
            .where(Procedure.id == record_id)).one()
    assert rendered == cell(stored, Kind.DATETIME) == "2026-03-14T14:30:59Z"


def test_sql_text_on_an_empty_string(engine: Engine) -> None:
    assert _sql(engine, sql_text(literal("", String()))) == ""


# --- the file --------------------------------------------------------------------------------

def test_file_bytes_bom_crlf_and_rfc4180_quoting(tmp_path: Path) -> None:
    info = write_rows(tmp_path / "t.csv", ["a", "b"],
                      [["x", 'say "hi"'], ["two\nlines", "c,d"], ["", 1.5]])
    data = (tmp_path / "t.csv").read_bytes()
    assert data.startswith(b"\xef\xbb\xbfa,b\r\n")
    assert data == ('\ufeffa,b\r\nx,"say ""hi"""\r\n"two\nlines","c,d"\r\n,1.5\r\n'
                    ).encode("utf-8")
    assert info.rows == 3 and info.bytes == len(data)


def test_records_are_counted_by_the_csv_module_not_by_lines(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    write_rows(path, ["note"], [["a\r\nb"], ["c\nd\ne"], ["f"]])
    assert path.read_bytes().count(b"\n") == 7
    assert count_records(path) == 3


def test_writer_hash_is_the_sha256_of_the_file(tmp_path: Path) -> None:
    import hashlib

    with CsvWriter(tmp_path / "t.csv", ["x"]) as writer:
        writer.write([["Ελένη"], ["山田太郎"]])
    assert writer.info is not None
    assert writer.info.sha256 == hashlib.sha256((tmp_path / "t.csv").read_bytes()).hexdigest()
    with open(tmp_path / "t.csv", encoding="utf-8-sig", newline="") as handle:
        assert list(csv.reader(handle)) == [["x"], ["Ελένη"], ["山田太郎"]]


def test_writer_never_overwrites(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("keep")
    with pytest.raises(FileExistsError):
        CsvWriter(tmp_path / "t.csv", ["x"])
    assert (tmp_path / "t.csv").read_text() == "keep"


def test_timestamps_need_a_zone() -> None:
    with pytest.raises(ValueError, match="naive"):
        cell(datetime(2026, 1, 1), Kind.DATETIME)
    assert cell(datetime(2026, 1, 1, tzinfo=UTC), Kind.DATETIME) == "2026-01-01T00:00:00Z"
