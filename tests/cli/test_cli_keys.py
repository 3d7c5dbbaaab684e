"""`fluoro-audit keys show`: the public half of the export-signing key, for the site to give a
receiver, and never a private key (both databases)."""

from __future__ import annotations

import base64
import json

import pytest

from audit.cli import main
from audit.keys import load_keys


def test_keys_show_prints_the_public_key_fingerprint_and_key_directory_only(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = load_keys(db_url)
    secrets = [base64.b64encode(keys.signing_key_bytes).decode(), keys.trail_key.decode(),
               keys.pseudonym_key]

    assert main(["--db", db_url, "keys", "show"]) == 0
    text = capsys.readouterr().out
    assert f"public key:    {keys.public_key_b64()}" in text
    assert f"fingerprint:   {keys.fingerprint()}" in text
    assert f"key directory: {keys.directory}" in text
    assert "verify-export EXPORT --public-key KEY" in text

    assert main(["--db", db_url, "keys", "show", "--json"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out) == {
        "algorithm": "Ed25519", "public_key": keys.public_key_b64(),
        "fingerprint": keys.fingerprint(), "key_dir": str(keys.directory),
        "signing_key_from": str(keys.directory)}
    for secret in secrets:
        assert secret not in text and secret not in out
