"""`keys show`: the site's public export-signing key, its fingerprint and the key directory.

Why a command: a receiver trusts an export's signature only as far as they trust the public
key it is checked against, and the key shipped inside an export proves nothing by itself. The
site reads its fingerprint here and gives it (or the key) to the receiver by another channel.
Only the public half is ever printed; the private keys stay in the key directory.
"""

from __future__ import annotations

import argparse
import os

from audit.cli.common import EXIT_OK, Subcommands, add_command, print_json


def cmd_keys_show(args: argparse.Namespace) -> int:
    from audit.keys import ENV_SIGNING_KEY, load_keys

    keyring = load_keys(args.db)
    source = (f"${ENV_SIGNING_KEY}" if os.environ.get(ENV_SIGNING_KEY)
              else str(keyring.directory))
    if args.json:
        print_json({"algorithm": "Ed25519", "public_key": keyring.public_key_b64(),
                    "fingerprint": keyring.fingerprint(), "key_dir": str(keyring.directory),
                    "signing_key_from": source})
        return EXIT_OK
    print(f"export signing key (Ed25519), public half\n"
          f"  public key:    {keyring.public_key_b64()}\n"
          f"  fingerprint:   {keyring.fingerprint()}\n"
          f"  key directory: {keyring.directory}"
          + ("" if source == str(keyring.directory) else f" (signing key from {source})")
          + "\n\nGive the receiver of an export this fingerprint (or the public key) by "
          "another channel than\nthe export itself; they check with `fluoro-audit "
          "verify-export EXPORT --public-key KEY`.")
    return EXIT_OK


def add_keys(sub: Subcommands) -> None:
    """Add `keys show` to the command line."""
    keys = sub.add_parser("keys", help="the site's keys (public halves only)").add_subparsers(
        dest="keys_command", required=True, metavar="ACTION")
    p = add_command(keys, "show", cmd_keys_show,
                    "print the public export-signing key, its fingerprint and the key "
                    "directory (never a private key)")
    p.add_argument("--json", action="store_true", help="one JSON object")
