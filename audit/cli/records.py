"""Procedure records from the command line: `log` (JSON in) and `show`."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from audit import bounds
from audit.auth import cli_actor
from audit.cli.common import (
    EXIT_INVALID,
    EXIT_OK,
    CliError,
    Subcommands,
    add_command,
    print_error,
    print_json,
)
from audit.errors import NotFound, WarningsNotConfirmed
from audit.log.service import ProcedureLog
from audit.storage.engine import make_engine

#: The largest record number a database stores (a 64-bit integer key).
MAX_RECORD_ID = 2**63 - 1


def _loads(text: str, where: str = "") -> Any:
    """JSON within audit.bounds' size and depth limits; a limit is a CliError, bad JSON is
    json.JSONDecodeError (the caller may try JSON lines)."""
    try:
        return bounds.loads_bounded(text)
    except bounds.InputTooLarge as exc:
        raise CliError(f"{where}{exc}") from None


def read_records(text: str) -> list[dict[str, Any]]:
    """A JSON object, a JSON array of objects, or JSON lines."""
    stripped = text.strip()
    if not stripped:
        raise CliError("no input: give a JSON object, an array of objects, or JSON lines")
    try:
        value = _loads(stripped)
    except json.JSONDecodeError:
        value = None
        records = []
        for number, line in enumerate(stripped.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(_loads(line, f"line {number}: "))
            except json.JSONDecodeError as exc:
                raise CliError(f"line {number}: not JSON ({exc.msg} at column {exc.colno})"
                               ) from None
        value = records
    items = value if isinstance(value, list) else [value]
    for index, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            raise CliError(f"record {index}: expected a JSON object of dictionary fields, got "
                           f"{type(item).__name__}")
    return items


def read_input(file: str | None) -> str:
    """The JSON text from FILE or standard input: UTF-8, at most audit.bounds.MAX_JSON_CHARS
    characters (read no further than that, so a runaway pipe is refused, not swallowed)."""
    limit = bounds.MAX_JSON_CHARS
    where = "standard input" if file in (None, "-") else file
    try:
        if file in (None, "-"):
            text = sys.stdin.read(limit + 1)
        else:
            with open(file, encoding="utf-8-sig") as handle:
                text = handle.read(limit + 1)
    except OSError as exc:
        raise CliError(f"cannot read {file}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise CliError(f"{where} is not UTF-8 text (byte {exc.start}); save it as UTF-8"
                       ) from None
    if len(text) > limit:
        raise CliError(f"{where} is longer than {limit:,} characters; split it into smaller "
                       "files")
    return text


def cmd_log(args: argparse.Namespace) -> int:
    records = read_records(read_input(args.file))
    service = ProcedureLog(make_engine(args.db))
    try:
        results = service.log_many(records, cli_actor(), confirm_warnings=args.confirm_warnings,
                                   create_missing=args.create_missing)
    except WarningsNotConfirmed as exc:
        for warning in exc.warnings:
            print_error(f"{warning} (confirm with --confirm-warnings)")
        print_error("nothing was written")
        return EXIT_INVALID
    for result in results:
        print_json(result.as_dict())
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    if not 1 <= args.id <= MAX_RECORD_ID:
        raise NotFound(f"no record {bounds.shown(args.id)}")
    record = ProcedureLog(make_engine(args.db)).get(args.id, cli_actor())
    if args.json:
        print_json(record)
        return EXIT_OK
    width = max(len(k) for k in record)
    for key, value in record.items():
        if isinstance(value, list):
            value = "; ".join(v if isinstance(v, str) else
                              f"{v.get('field')}: {v.get('message')}" for v in value)
        print(f"{key:<{width}}  {'' if value is None else value}")
    return EXIT_OK


def add_log(sub: Subcommands) -> None:
    """Add `log` to the command line."""
    p = add_command(sub, "log", cmd_log, "log procedures from JSON (object, array or JSON lines)")
    p.add_argument("file", nargs="?", help="JSON file, or - for standard input (default)")
    p.add_argument("--confirm-warnings", action="store_true",
                   help="save records whose plausibility warnings you have checked")
    p.add_argument("--create-missing", action="store_true",
                   help="create unknown sites, rooms, physicians and technologists (audited)")


def add_show(sub: Subcommands) -> None:
    """Add `show` to the command line."""
    p = add_command(sub, "show", cmd_show, "show one record")
    p.add_argument("id", type=int)
    p.add_argument("--json", action="store_true")
