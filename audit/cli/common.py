"""What every command module shares: exit codes, the refusal exception, output helpers and the
helper that adds a command to the parser.

A module of its own (not the package __init__) so that the command modules can import it while
audit.cli imports them to assemble the parser, without an import cycle.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from typing import Any, TextIO

from audit.storage.engine import normalise_url

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2

#: A command's function: parsed arguments in, exit code out.
Handler = Callable[[argparse.Namespace], int]
#: What ArgumentParser.add_subparsers returns: the parent each command's parser is added to
#: (argparse's _SubParsersAction, which is private, hence Any).
Subcommands = Any


class CliError(Exception):
    """A refusal to report on stderr with exit code 1."""


def print_json(obj: Any, stream: TextIO | None = None) -> None:
    """One JSON object on one line: the output meant for scripts."""
    print(json.dumps(obj, ensure_ascii=False, default=str), file=stream or sys.stdout)


def print_error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def display_url(url: str) -> str:
    """The database URL as shown to people: the password hidden."""
    from sqlalchemy.engine import make_url

    return make_url(normalise_url(url)).render_as_string(hide_password=True)


def add_command(parent: Subcommands, name: str, handler: Handler,
                help_text: str) -> argparse.ArgumentParser:
    """Add command `name` under `parent`, with help_text as both its help line and its
    description, and `handler` as what runs when it is chosen."""
    p: argparse.ArgumentParser = parent.add_parser(name, help=help_text, description=help_text)
    p.set_defaults(handler=handler)
    return p


def bounded(kind: type[int] | type[float], low: float, high: float) -> Callable[[str], Any]:
    """An argparse type: a finite number of `kind` from low to high, else a usage error
    naming the range (10**400 or nan as --interval would otherwise fail far from the
    option)."""
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a number") from None
        if (isinstance(value, float) and not math.isfinite(value)) or not low <= value <= high:
            shown = (f"{int(low)} to {int(high)}" if kind is int else f"{low:g} to {high:g}")
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is out of range; allowed: {shown}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse
