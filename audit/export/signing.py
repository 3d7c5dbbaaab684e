"""The export's signature: manifest.sig (Ed25519 over the exact bytes of manifest.json) and
signing_public_key.txt (the public half, its fingerprint, and how to check).

Why a signature on top of SHA256SUMS: sums only say the files are as the manifest lists them,
and whoever edits a file can recompute the sums and the manifest entry. The signature is made
with the site's private key (audit.keys, outside the database), so an edited manifest no longer
verifies, and the manifest, listing every file's SHA-256, vouches for every file.

Why over the file's bytes (not a canonical re-serialisation): a receiver can check it with
OpenSSL alone, no JSON canonicalisation to reproduce; the bytes are what was signed.

The shipped public key proves nothing by itself (a forger ships theirs): it is there so that
the receiver can compare its fingerprint with the one the site gives them by another channel,
or check against a key they already hold (`verify-export --public-key`).

No database here: audit.export.verify imports this module to check an export anywhere.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from audit.export.manifest import MANIFEST, PUBLIC_KEY_FILE, SIGNATURE_FILE, sha256_file
from audit.keys import fingerprint

if TYPE_CHECKING:
    from audit.export.cells import FileInfo
    from audit.keys import Keyring

ALGORITHM = "Ed25519"
_KEY_LINE = re.compile(r"^\s*public_key:\s*(\S+)\s*$", re.M)
_PEM = re.compile(r"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", re.S)


@dataclass(frozen=True)
class TrustedKey:
    """A public key the verifier trusts, and where it came from (said in every message)."""

    b64: str
    source: str
    #: The local site's own key (not one given): a mismatch may be another site's export.
    local: bool = False

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.b64)


def signing_entry(keyring: Keyring) -> dict[str, str]:
    """The manifest's "signing" object: which key signs it, and what exactly is signed."""
    return {"algorithm": ALGORITHM, "public_key": keyring.public_key_b64(),
            "fingerprint": keyring.fingerprint(), "signature_file": SIGNATURE_FILE,
            "signed": f"the exact bytes of {MANIFEST}"}


def write_public_key(folder: Path, keyring: Keyring) -> FileInfo:
    """signing_public_key.txt: the key in base64 and PEM, its fingerprint, how to check."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    pem = keyring.public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    lines = [
        "fluoro-audit export signing key",
        f"algorithm:   {ALGORITHM}",
        f"public_key:  {keyring.public_key_b64()}",
        f"fingerprint: {keyring.fingerprint()}",
        "",
        f"{SIGNATURE_FILE} holds the {ALGORITHM} signature (base64) of the exact bytes of "
        f"{MANIFEST},",
        "made with the private half of this key, which never leaves the site. Anyone can write",
        "a file like this one: trust the signature only when the fingerprint above is the one",
        "the site gave you by another channel (the site reads it from `fluoro-audit keys show`).",
        "",
        "Checking the signature",
        "  fluoro-audit:  fluoro-audit verify-export <folder or zip> --public-key <site's key>",
        f"  OpenSSL 3:     openssl base64 -d -in {SIGNATURE_FILE} -out /tmp/manifest.sig.bin",
        f"                 openssl pkeyutl -verify -pubin -inkey {PUBLIC_KEY_FILE} -rawin \\",
        f"                   -in {MANIFEST} -sigfile /tmp/manifest.sig.bin",
        "                 (says 'Signature Verified Successfully')",
        "",
        pem.decode("ascii").strip(),
    ]
    path = folder / PUBLIC_KEY_FILE
    with open(path, "x", encoding="ascii", newline="\n") as handle:
        handle.write("\n".join(lines) + "\n")
    return sha256_file(path)


def write_signature(folder: Path, keyring: Keyring) -> FileInfo:
    """manifest.sig: the signature of manifest.json as written, base64, one line."""
    signature = keyring.signing_key.sign((folder / MANIFEST).read_bytes())
    path = folder / SIGNATURE_FILE
    with open(path, "x", encoding="ascii", newline="\n") as handle:
        handle.write(base64.b64encode(signature).decode("ascii") + "\n")
    return sha256_file(path)


def signature_matches(public_b64: str, data: bytes, signature_b64: str) -> bool:
    """Whether `signature_b64` is `public_b64`'s Ed25519 signature of `data`."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = Ed25519PublicKey.from_public_bytes(_raw_key(public_b64))
        key.verify(base64.b64decode(signature_b64.strip(), validate=True), data)
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True


def normalise_key(public_b64: str) -> str:
    """The key as canonical base64 (ValueError unless base64 of 32 bytes), so that two
    spellings of one key compare equal."""
    try:
        return base64.b64encode(_raw_key(public_b64)).decode("ascii")
    except binascii.Error as exc:
        raise ValueError(str(exc)) from None


def _raw_key(public_b64: str) -> bytes:
    raw = base64.b64decode(public_b64.strip(), validate=True)
    if len(raw) != 32:
        raise ValueError(f"an {ALGORITHM} public key is 32 bytes, this one {len(raw)}")
    return raw


def read_public_key(value: str) -> str:
    """The base64 raw public key from `--public-key`: the base64 itself, or a file holding it
    (a signing_public_key.txt, a PEM public key, or the bare base64). ValueError says why not."""
    path = Path(value)
    text = value
    if path.is_file():
        text = path.read_text("utf-8", errors="replace")
        found = _KEY_LINE.search(text)
        pem = _PEM.search(text)
        if found:
            text = found[1]
        elif pem:
            return _from_pem(pem[0], value)
        else:
            text = text.strip()
    try:
        raw = _raw_key(text)
    except (ValueError, binascii.Error) as exc:
        raise ValueError(f"--public-key {value!r}: not an {ALGORITHM} public key (base64 of "
                         f"32 bytes, or a file holding one): {exc}") from None
    return base64.b64encode(raw).decode("ascii")


def _from_pem(pem: str, where: str) -> str:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        key = load_pem_public_key(pem.encode("ascii"))
    except ValueError as exc:
        raise ValueError(f"--public-key {where!r}: unreadable PEM ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"--public-key {where!r}: not an {ALGORITHM} key")
    from audit.keys import public_key_b64

    return public_key_b64(key)
