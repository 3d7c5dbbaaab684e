"""`setting list` and `setting set KEY VALUE`: an administrator's view and change of the
settings from the command line (the receiver's among them), each change audited by
audit.settings.update_setting with the old and new value.
"""

from __future__ import annotations

import argparse
import json

from audit.auth import cli_actor
from audit.cli.common import EXIT_OK, Subcommands, add_command, print_json
from audit.storage.engine import make_engine, read_session


def _value(text: str) -> object:
    """JSON when it parses (true, 11112, 0.1, "x"), else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def cmd_setting_list(args: argparse.Namespace) -> int:
    from audit.settings import list_settings

    with read_session(make_engine(args.db)) as session:
        for row in list_settings(session):
            print_json({"key": row.key, "value": row.value, "source": row.source,
                        "updated_by": row.updated_by})
    return EXIT_OK


def cmd_setting_set(args: argparse.Namespace) -> int:
    from audit.errors import FieldError, ValidationFailed
    from audit.settings import Settings, update_setting

    value = _value(args.value)
    if isinstance(getattr(Settings(), args.key, None), bool) and not isinstance(value, bool):
        raise ValidationFailed([FieldError(args.key, f"expected true or false, got "
                                           f"{args.value!r}")])
    if args.key == "receiver_allowed":  # refuse a list the receiver could not use
        from audit.dicom_net.access import parse_rules

        parse_rules(str(value))
    update_setting(make_engine(args.db), cli_actor(), args.key, value, source=args.source)
    print(f"{args.key} = {json.dumps(value, ensure_ascii=False)}")
    return EXIT_OK


def add_setting(sub: Subcommands) -> None:
    """Add `setting list|set` to the command line."""
    group = sub.add_parser("setting", help="list or change settings (audited)",
                           description="list or change settings (audited)"
                           ).add_subparsers(dest="setting_command", required=True,
                                            metavar="ACTION")
    add_command(group, "list", cmd_setting_list, "every setting with its value and source, as "
                "JSON lines")
    p = add_command(group, "set", cmd_setting_set,
                    "change one setting (audited); VALUE is JSON when it parses (true, 11112, "
                    "\"text\"), else text")
    p.add_argument("key", metavar="KEY")
    p.add_argument("value", metavar="VALUE")
    p.add_argument("--source", metavar="TEXT", help="where the new value comes from")
