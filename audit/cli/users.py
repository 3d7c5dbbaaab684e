"""`users ...`: accounts from the command line, audited with the operating-system user as the
actor (the way back in when every admin is locked out).
"""

from __future__ import annotations

import argparse
import getpass
import sys

from audit.auth import add_user, cli_actor
from audit.bounds import has_surrogate, text_problem
from audit.cli.common import EXIT_OK, CliError, Subcommands, add_command, print_json
from audit.dictionary import REASON_MAX_LENGTH
from audit.storage.engine import make_engine
from audit.vocab import Role


def cmd_users_add(args: argparse.Namespace) -> int:
    password = None
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty() and not args.no_password:
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            raise CliError("the passwords differ")
    if password is not None and has_surrogate(password):
        raise CliError("password is not valid UTF-8 text")
    _check_text(args.display_name or "", "--display-name", 160)
    engine = make_engine(args.db)
    user = add_user(engine, cli_actor(), args.name, args.role, password, args.display_name)
    print_json({"user_id": user.id, "username": user.username, "role": user.role,
                "can_sign_in": user.can_sign_in})
    return EXIT_OK


def _check_text(text: str, what: str, limit: int = REASON_MAX_LENGTH) -> None:
    """Arguments are looked up and stored: text that is not valid Unicode (bytes that are not
    UTF-8 arrive as lone surrogates) or holds control characters is refused first."""
    problem = text_problem(text, limit)
    if problem:
        raise CliError(f"{what} {problem}")


def _read_new_password(args: argparse.Namespace, name: str) -> str:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"new password for {name}: ")
        if getpass.getpass("again: ") != password:
            raise CliError("the passwords differ")
    if has_surrogate(password):
        raise CliError("password is not valid UTF-8 text")
    return password


def cmd_users_list(args: argparse.Namespace) -> int:
    from audit.auth import list_users

    for user in list_users(make_engine(args.db), cli_actor()):
        print_json(user)
    return EXIT_OK


def cmd_users_change(args: argparse.Namespace) -> int:
    """deactivate / reactivate / reset-password / role: the admin page's actions, audited with
    the operating-system user as the actor (the way back in when every admin is locked out)."""
    from audit import auth

    _check_text(args.name, "username", 80)
    _check_text(getattr(args, "reason", None) or "", "--reason")
    engine = make_engine(args.db)
    actor = cli_actor()
    if args.users_command == "deactivate":
        auth.deactivate_user(engine, actor, args.name, reason=args.reason)
    elif args.users_command == "reactivate":
        auth.reactivate_user(engine, actor, args.name)
    elif args.users_command == "reset-password":
        auth.reset_password(engine, actor, args.name, _read_new_password(args, args.name))
    else:
        auth.change_role(engine, actor, args.name, args.role)
    print_json({"username": args.name, "done": args.users_command})
    return EXIT_OK


def add_users(sub: Subcommands) -> None:
    """Add `users add|list|deactivate|reactivate|reset-password|role` to the command line."""
    users = sub.add_parser("users", help="manage accounts").add_subparsers(
        dest="users_command", required=True, metavar="ACTION")
    p = add_command(users, "add", cmd_users_add, "add an account")
    p.add_argument("name", help="username")
    p.add_argument("--role", required=True, choices=Role.values())
    p.add_argument("--display-name")
    p.add_argument("--password-stdin", action="store_true",
                   help="read the password from the first line of standard input")
    p.add_argument("--no-password", action="store_true",
                   help="create an account that cannot sign in")
    add_command(users, "list", cmd_users_list,
                "list accounts (JSON lines; never the password hash)")
    p = add_command(users, "deactivate", cmd_users_change, "stop an account from signing in")
    p.add_argument("name")
    p.add_argument("--reason", default="deactivated from the command line")
    p = add_command(users, "reactivate", cmd_users_change,
                    "let a deactivated account sign in again")
    p.add_argument("name")
    p = add_command(users, "reset-password", cmd_users_change, "set a new password and unlock")
    p.add_argument("name")
    p.add_argument("--password-stdin", action="store_true",
                   help="read the password from the first line of standard input")
    p = add_command(users, "role", cmd_users_change, "change an account's role")
    p.add_argument("name")
    p.add_argument("role", choices=Role.values())
