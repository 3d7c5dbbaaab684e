"""CSV an inspector's spreadsheet handles: the cell rules and the file writer.

One set of rules, in two implementations that tests hold equal:
- `sql_*` constructs render a cell inside the SELECT (SQLite and PostgreSQL), so the big exports
  go from the database cursor to `csv.writer.writerows` with no Python work per cell; on SQLite
  `sql_csv_line` / `sql_csv_record` go further and build the whole record, quoted as csv.writer
  quotes, so the cursor yields one string per row;
- `cell()` renders a Python value the same way, for small sections built in Python.

The rules:
- text (text, enum and list fields): a cell starting with =, +, -, @, tab, CR or LF gets a leading
  apostrophe, so a spreadsheet shows it as text instead of running it as a formula (OWASP "CSV
  Injection"). A cell that already starts with an apostrophe gets one more, so the rule can be
  undone exactly: `restore()` removes one leading apostrophe, and an importer reading our
  exports gets back the stored text whatever it was. In a list cell ("L4-L5;L5-S1") each item
  is neutralised, so the cell is too and `restore_list()` gives back every item. Only text
  cells are touched: numbers (including negative ones) stay numbers.
- numbers: plain decimal with '.' as the decimal mark whatever the locale, no thousands
  separator: 15 significant digits (what a spreadsheet keeps) from 0.0001 up, 9 decimals below
  (0.0071, 0.00005, 32, 1234.5); integers as integers; negative numbers stay numbers.
- booleans: true / false. Missing values: an empty cell.
- timestamps: ISO 8601 in UTC with a Z, to the second: 2026-03-14T14:30:00Z.
- files: UTF-8 with a byte-order mark (Excel then reads UTF-8), CRLF line ends, RFC 4180 quoting
  (csv.QUOTE_MINIMAL: only cells holding a comma, quote, CR or LF are quoted; quotes doubled).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

from sqlalchemy import Integer, String, literal, literal_column
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement, FunctionElement, case

#: First characters a spreadsheet may read as the start of a formula (OWASP).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")
#: The neutralising prefix; a cell that starts with it is escaped too, so the rule is reversible.
APOSTROPHE = "'"
NEEDS_PREFIX = (*FORMULA_START, APOSTROPHE)
LIST_SEPARATOR = ";"
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
SIGNIFICANT_DIGITS = 15
#: Below this magnitude numbers get SMALL_DECIMALS fixed decimals instead (never an exponent).
SMALL = 1e-4
SMALL_DECIMALS = 9


class Kind:
    """How a column is rendered; names match the data dictionary's types."""

    TEXT = "text"
    ENUM = "enum"
    LIST = "list"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    DATETIME = "datetime"
    JSON = "json"

    TEXTUAL = frozenset({TEXT, ENUM, LIST, JSON})


# --- Python rendering ------------------------------------------------------------------------

def neutralise(text: str) -> str:
    """Prefix an apostrophe to text a spreadsheet could take for a formula (see module doc)."""
    return APOSTROPHE + text if text.startswith(NEEDS_PREFIX) else text


def restore(text: str) -> str:
    """Undo `neutralise`: what an importer of our own exports applies to every text cell."""
    return text[1:] if text.startswith(APOSTROPHE) else text


def restore_list(text: str) -> list[str]:
    """The items of a list cell (';'-separated, each neutralised), as stored."""
    return [restore(item) for item in text.split(LIST_SEPARATOR)] if text else []


def number_text(value: float | int | Decimal) -> str:
    """A number as plain text: 15 significant digits from 0.0001 up, below that 9 decimals.

    The split mirrors what SQL can render cheaply (sql_number) and never needs an exponent in
    the range dose, time, weight and volume values live in (below 1e15).
    """
    if isinstance(value, bool):
        raise TypeError("a boolean is not a number here")
    if isinstance(value, int):
        return str(value)
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{value!r} cannot be written as a number")
    if abs(number) >= SMALL:
        return f"{number:.{SIGNIFICANT_DIGITS}g}"
    return f"{number:.{SMALL_DECIMALS}f}".rstrip("0").rstrip(".")


def timestamp_text(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("naive datetime: exports need timezone-aware values")
    return value.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return type(value).__name__ in {"NAType", "NaTType"}  # pandas' missing markers


def cell(value: Any, kind: str) -> str | int:
    """Render one Python value for a CSV cell of the given kind (see the module docstring)."""
    if _missing(value):
        return ""
    if hasattr(value, "item") and not isinstance(value, str | bytes):  # numpy scalars
        value = value.item()
    if kind == Kind.BOOLEAN:
        return "true" if bool(value) else "false"
    if kind in (Kind.INTEGER, Kind.NUMBER):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        return number_text(value if isinstance(value, float | Decimal) else float(value))
    if kind == Kind.DATETIME:
        if isinstance(value, datetime):
            return timestamp_text(value)
        if isinstance(value, date):
            return value.isoformat()
        return neutralise(str(value))
    if kind == Kind.LIST and isinstance(value, list | tuple):
        return LIST_SEPARATOR.join(neutralise(str(_plain(v))) for v in value)
    if kind == Kind.JSON and not isinstance(value, str):
        value = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return neutralise(str(_plain(value)))


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


# --- SQL rendering ---------------------------------------------------------------------------
# Each construct takes a column expression and yields the cell's text (NULL stays NULL, which
# the csv module writes as an empty cell). PostgreSQL and SQLite get their own SQL.

class sql_number(FunctionElement[str]):
    """A float column as plain decimal text with 15 significant digits."""

    type = String()
    inherit_cache = True
    name = "sql_number"


@compiles(sql_number, "sqlite")
def _number_sqlite(element: sql_number, compiler: Any, **kw: Any) -> str:
    x = compiler.process(next(iter(element.clauses)), **kw)
    # abs(NULL) is NULL, so NULL falls through both branches and stays NULL.
    return (f"CASE WHEN abs({x}) >= {SMALL!r} THEN printf('%.{SIGNIFICANT_DIGITS}g', {x}) "
            f"WHEN {x} IS NOT NULL THEN rtrim(rtrim(printf('%.{SMALL_DECIMALS}f', {x}), '0'), "
            "'.') END")


@compiles(sql_number, "postgresql")
def _number_pg(element: sql_number, compiler: Any, **kw: Any) -> str:
    # float8 -> numeric keeps 15 significant digits (DBL_DIG); numeric's text has no exponent.
    x = compiler.process(next(iter(element.clauses)), **kw)
    small = f"CAST(round(CAST({x} AS NUMERIC), {SMALL_DECIMALS}) AS TEXT)"
    return (f"CASE WHEN abs({x}) >= {SMALL!r} THEN CAST(CAST({x} AS NUMERIC) AS TEXT) "
            f"WHEN {x} IS NOT NULL THEN rtrim(rtrim({small}, '0'), '.') END")


class sql_timestamp(FunctionElement[str]):
    """A UTCDateTime column as 2026-03-14T14:30:00Z."""

    type = String()
    inherit_cache = True
    name = "sql_timestamp"


@compiles(sql_timestamp, "sqlite")
def _timestamp_sqlite(element: sql_timestamp, compiler: Any, **kw: Any) -> str:
    x = compiler.process(next(iter(element.clauses)), **kw)
    return f"strftime('%Y-%m-%dT%H:%M:%SZ', {x})"  # stored as naive UTC text


@compiles(sql_timestamp, "postgresql")
def _timestamp_pg(element: sql_timestamp, compiler: Any, **kw: Any) -> str:
    x = compiler.process(next(iter(element.clauses)), **kw)
    return f"to_char({x} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"


class sql_round(FunctionElement[float]):
    """round(x, digits) on both databases (PostgreSQL rounds only NUMERIC)."""

    inherit_cache = True
    name = "sql_round"


@compiles(sql_round, "sqlite")
def _round_sqlite(element: sql_round, compiler: Any, **kw: Any) -> str:
    x, digits = (compiler.process(c, **kw) for c in element.clauses)
    return f"round({x}, {digits})"


@compiles(sql_round, "postgresql")
def _round_pg(element: sql_round, compiler: Any, **kw: Any) -> str:
    x, digits = (compiler.process(c, **kw) for c in element.clauses)
    return f"CAST(round(CAST({x} AS NUMERIC), {digits}) AS DOUBLE PRECISION)"


class sql_first_code(FunctionElement[int]):
    """The code point of a text's first character (NULL for NULL or empty text)."""

    type = Integer()
    inherit_cache = True
    name = "sql_first_code"


@compiles(sql_first_code, "sqlite")
def _first_code_sqlite(element: sql_first_code, compiler: Any, **kw: Any) -> str:
    return f"unicode({compiler.process(next(iter(element.clauses)), **kw)})"


@compiles(sql_first_code, "postgresql")
def _first_code_pg(element: sql_first_code, compiler: Any, **kw: Any) -> str:
    # ascii() is the code point of the first character in a UTF-8 database (0 for '').
    return f"ascii({compiler.process(next(iter(element.clauses)), **kw)})"


#: Code points of NEEDS_PREFIX, compared as integers in SQL (cheaper than string compares).
_PREFIX_CODES = ", ".join(str(ord(c)) for c in NEEDS_PREFIX)


def neutralise_sql(fragment: str, dialect: str) -> str:
    """`neutralise` as raw SQL around an SQL fragment, for hand-written aggregates (the
    fragment is evaluated twice: give it a column, not a subquery)."""
    first = "unicode" if dialect == "sqlite" else "ascii"
    return (f"CASE WHEN {first}({fragment}) IN ({_PREFIX_CODES}) THEN '{APOSTROPHE * 2}' || "
            f"{fragment} ELSE {fragment} END")


def sql_text(expr: ColumnElement[Any]) -> ColumnElement[str]:
    """Text with formula-starting characters neutralised (the rule of `neutralise`)."""
    starts = sql_first_code(expr).op("IN")(literal_column(f"({_PREFIX_CODES})"))
    return case((starts, literal(APOSTROPHE, String()).op("||")(expr)), else_=expr)


def sql_boolean(expr: ColumnElement[Any]) -> ColumnElement[str]:
    """true / false / NULL. SQLite stores 0 and 1, PostgreSQL a boolean; both test as truth."""
    return case((expr, literal("true", String())), (~expr, literal("false", String())),
                else_=literal(None, String()))


def sql_cell(expr: ColumnElement[Any], kind: str) -> ColumnElement[Any]:
    """Render a column expression as the cell of `kind` (integers pass through)."""
    if kind == Kind.INTEGER:
        return expr
    if kind == Kind.NUMBER:
        return sql_number(expr)
    if kind == Kind.BOOLEAN:
        return sql_boolean(expr)
    if kind == Kind.DATETIME:
        return sql_timestamp(expr)
    if kind == Kind.ENUM:
        # Enumerations are stored under CHECK constraints built from audit.vocab, and no
        # vocabulary value starts with a formula character (a test holds every vocabulary to
        # that), so there is nothing to neutralise: skip the per-cell test.
        return expr
    return sql_text(expr)


class sql_csv_quoted(FunctionElement[str]):
    """A rendered text cell quoted as csv.writer (QUOTE_MINIMAL) would: wrapped in double quotes,
    inner quotes doubled, when it holds a comma, a quote, CR or LF. SQLite only (sql_csv_line)."""

    type = String()
    inherit_cache = True
    name = "sql_csv_quoted"


@compiles(sql_csv_quoted, "sqlite")
def _csv_quoted_sqlite(element: sql_csv_quoted, compiler: Any, **kw: Any) -> str:
    x = compiler.process(next(iter(element.clauses)), **kw)
    # One GLOB pass finds the four characters (the class holds a literal CR and LF).
    return (f"CASE WHEN {x} GLOB '*[,\"\r\n]*' THEN '\"' || replace({x}, '\"', '\"\"') || '\"' "
            f"ELSE {x} END")


class sql_csv_line(FunctionElement[str]):
    """A whole CSV record (no line end) from cells rendered by sql_cell, textual ones wrapped
    in sql_csv_quoted: cells joined by commas, NULL as an empty cell, integers as their digits,
    byte for byte what csv.writer writes for the same cells. SQLite only: one printf per row
    builds the record in a single allocation, so the export fetches one string per row
    instead of one Python object per cell and skips csv.writer."""

    type = String()
    inherit_cache = True
    name = "sql_csv_line"


@compiles(sql_csv_line, "sqlite")
def _csv_line_sqlite(element: sql_csv_line, compiler: Any, **kw: Any) -> str:
    cells = [compiler.process(c, **kw) for c in element.clauses]
    # printf's %s writes NULL as '' and an integer as its decimal digits (as str() does).
    return f"printf('{','.join(['%s'] * len(cells))}', {', '.join(cells)})"


class sql_csv_record(FunctionElement[str]):
    """sql_csv_record(plain, quoted, n): a CSV record of n cells. `plain` is the record with
    no cell quoted, `quoted` the record with every textual cell quoted as needed (both
    sql_csv_line; it may be a subquery: it is evaluated only when needed). When `plain` holds
    exactly n - 1 commas and no quote, CR or LF, no cell needs quoting and it is the record;
    otherwise `quoted` is. SQLite only.

    Why: testing each textual cell (about 25 a row) costs far more than four scans of the
    whole record, and records that need quoting are rare. `plain` is read five times: give
    a column of a subquery SQLite does not flatten, not an expression.
    """

    type = String()
    inherit_cache = True
    name = "sql_csv_record"


@compiles(sql_csv_record, "sqlite")
def _csv_record_sqlite(element: sql_csv_record, compiler: Any, **kw: Any) -> str:
    plain, quoted, cells = (compiler.process(c, **kw) for c in element.clauses)
    # length() and replace() count characters: the difference is the number of commas.
    return (f"CASE WHEN length({plain}) - length(replace({plain}, ',', '')) = {cells} - 1 "
            f"AND instr({plain}, '\"') = 0 AND instr({plain}, '\r') = 0 "
            f"AND instr({plain}, '\n') = 0 THEN {plain} ELSE {quoted} END")


# --- the file --------------------------------------------------------------------------------

@dataclass(frozen=True)
class FileInfo:
    """What the manifest records about one written file."""

    name: str
    rows: int | None  # CSV data records (the header not counted); None for other files
    bytes: int
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": self.name}
        if self.rows is not None:
            entry["rows"] = self.rows
        return entry | {"bytes": self.bytes, "sha256": self.sha256}


class _HashingSink(io.RawIOBase):
    """A binary file that hashes and counts what passes through it (no second read)."""

    def __init__(self, target: io.BufferedWriter):
        self.target = target
        self.digest = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self.target.write(view)
        self.digest.update(view)
        self.size += view.nbytes
        return view.nbytes


class CsvWriter:
    """Writes one CSV file by the rules above; `rows` are already rendered cells.

    Use as a context manager; `info` is set on a clean exit.
    """

    def __init__(self, path: Path, header: Sequence[str], buffer_size: int = 1 << 20):
        self.path = path
        self._file = open(path, "xb")  # noqa: SIM115 - closed in __exit__; never overwrite
        self._sink = _HashingSink(self._file)
        self._buffer = io.BufferedWriter(self._sink, buffer_size=buffer_size)
        self._sink.write(codecs.BOM_UTF8)
        self._text = io.TextIOWrapper(self._buffer, encoding="utf-8", newline="",
                                      errors="strict", write_through=False)
        self._csv = csv.writer(self._text, dialect="excel", quoting=csv.QUOTE_MINIMAL,
                               lineterminator="\r\n")
        self._csv.writerow(header)
        self.rows = 0
        self.info: FileInfo | None = None

    def write(self, rows: Sequence[Sequence[Any]]) -> None:
        self._csv.writerows(rows)
        self.rows += len(rows)

    def write_lines(self, lines: Sequence[str]) -> None:
        """Records already formatted by these rules (sql_csv_line), without their line end:
        one join and one write per chunk."""
        if lines:
            self._text.write("\r\n".join(lines) + "\r\n")
            self.rows += len(lines)

    def flush(self) -> None:
        """Push what was written so far to the file (the test hook's pause: rows on disk)."""
        self._text.flush()
        self._buffer.flush()
        self._file.flush()

    def __enter__(self) -> CsvWriter:
        return self

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        try:
            self._text.flush()
            self._buffer.flush()
            if kind is None:
                self.info = FileInfo(self.path.name, self.rows, self._sink.size,
                                     self._sink.digest.hexdigest())
        finally:
            self._text.detach()
            self._file.close()


def write_rows(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]],
               chunk: int = 1000) -> FileInfo:
    """Write a whole (small) table; for streams use CsvWriter with chunks."""
    with CsvWriter(path, header) as writer:
        batch: list[Sequence[Any]] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= chunk:
                writer.write(batch)
                batch = []
        writer.write(batch)
    assert writer.info is not None
    return writer.info


def count_records(path: Path) -> int:
    """Data records of a CSV file by the csv module (a quoted newline is not a new record)."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, dialect="excel", strict=True)
        if next(reader, None) is None:
            return 0
        return sum(1 for _ in reader)
