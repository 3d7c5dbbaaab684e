"""`settings list|set`: the site's settings with their sources; a change is audited
(audit.settings.update_setting). The patient letter's practice name, contact and image
archive are set here (issue 14), and the DICOM receiver's (issue 13): a yes/no setting takes only
true or false, and a receiver allow list the receiver could not read is refused."""

from __future__ import annotations

import argparse
import json
from typing import Any

from audit.cli.common import EXIT_OK, Subcommands, add_command, print_json
from audit.storage.engine import make_engine, read_session


def _value(text: str) -> Any:
    """A number, true/false or a JSON map as such; anything else is text as typed."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, int | float | bool | dict | list) else text


def cmd_settings_list(args: argparse.Namespace) -> int:
    from audit.settings import list_settings

    with read_session(make_engine(args.db)) as session:
        for setting in list_settings(session):
            print_json({"key": setting.key, "value": setting.value, "source": setting.source,
                        "updated_by": setting.updated_by})
    return EXIT_OK


def cmd_settings_set(args: argparse.Namespace) -> int:
    from audit.cli.documents import actor_of
    from audit.settings import list_settings, update_setting

    engine = make_engine(args.db)
    with read_session(engine) as session:
        current = {s.key: s.value for s in list_settings(session)}
    # a text setting takes the text as typed: a telephone number stays text
    value = args.value if isinstance(current.get(args.key), str) else _value(args.value)
    _check(args.key, value, args.value)
    update_setting(engine, actor_of(args, engine), args.key, value, args.source)
    print_json({"key": args.key, "value": value})
    return EXIT_OK


def _check(key: str, value: Any, typed: str) -> None:
    """Refuse, before anything is written, a value its user could not use: text for a yes/no
    setting, or a receiver allow list the DICOM receiver could not read."""
    from audit.errors import FieldError, ValidationFailed
    from audit.settings import Settings

    if isinstance(getattr(Settings(), key, None), bool) and not isinstance(value, bool):
        raise ValidationFailed([FieldError(key, f"expected true or false, got {typed!r}")])
    if key == "receiver_allowed":
        from audit.dicom_net.access import parse_rules

        parse_rules(str(value))


def add_settings(sub: Subcommands) -> None:
    """Add `settings list|set` to the command line."""
    from audit.cli.documents import add_as

    group = sub.add_parser("settings", help="the site's settings and their sources (a change "
                           "is audited)").add_subparsers(dest="what", required=True,
                                                         metavar="WHAT")
    add_command(group, "list", cmd_settings_list,
                "every setting with its value and source, one JSON line each")
    p = add_command(group, "set", cmd_settings_set,
                    "change one setting (administrators); audited with before and after")
    p.add_argument("key", metavar="KEY")
    p.add_argument("value", metavar="VALUE",
                   help="a number, true/false or a JSON map as such; anything else is text")
    p.add_argument("--source", metavar="TEXT", help="where the new value comes from")
    add_as(p)
