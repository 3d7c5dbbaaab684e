"""The site's keys, kept outside the database: the trail MAC key, the pseudonym key and the
export signing key.

Why outside: whoever holds the database alone (a dump, a stolen backup, the PostgreSQL owner
role) must not be able to recompute the audit trail's MACs, map a patient_ref back to its MRN,
or sign an export as the site. So the keys live in a key directory beside (never inside) the
database, each file readable by its owner only (0600 in a 0700 directory), or come from
environment variables on hosts that inject secrets that way.

Where the key directory is:
- ``$FLUORO_AUDIT_KEY_DIR`` when set (PostgreSQL sites with several app servers point it at
  one shared, backed-up directory);
- for a SQLite file, ``<database name>.keys/`` beside it (``var/fluoro-audit.sqlite3`` ->
  ``var/fluoro-audit.keys/``), so a copied database never silently carries its keys along;
- otherwise ``var/keys/`` under the working directory.

The keys are made once, by ``ensure_keys`` (called by ``migrate``). Afterwards a missing key is
an error, never silently replaced: a new trail key would make every earlier event fail its MAC,
and a new pseudonym key would give every patient a new reference. Back the directory up with
(but not inside) the database backup.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url

from audit.errors import AuditError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )
    from sqlalchemy import Engine

ENV_KEY_DIR = "FLUORO_AUDIT_KEY_DIR"
ENV_TRAIL_KEY = "FLUORO_AUDIT_TRAIL_KEY"
ENV_PSEUDONYM_KEY = "FLUORO_AUDIT_PSEUDONYM_KEY"
ENV_SIGNING_KEY = "FLUORO_AUDIT_SIGNING_KEY"

TRAIL_KEY_FILE = "trail.key"
PSEUDONYM_KEY_FILE = "pseudonym.key"
SIGNING_KEY_FILE = "signing.key"
CHECKPOINT_DIR = "checkpoints"

#: Environment variable -> file name, for the error that says where a key was looked for.
_SOURCES = {
    TRAIL_KEY_FILE: ENV_TRAIL_KEY,
    PSEUDONYM_KEY_FILE: ENV_PSEUDONYM_KEY,
    SIGNING_KEY_FILE: ENV_SIGNING_KEY,
}


class KeyMissing(AuditError):
    """A key the database needs is neither in the key directory nor in the environment."""


class KeyUnreadable(AuditError):
    """A key file exists but is malformed or has permissions others can read."""


def _url_parts(url: str | Engine) -> tuple[str, str]:
    """(backend, database) of a URL, a bare SQLite path or an engine."""
    if not isinstance(url, str):
        parsed = url.url
    else:
        from audit.storage.engine import normalise_url

        parsed = make_url(normalise_url(url))
    return parsed.get_backend_name(), parsed.database or ""


def key_dir(url: str | Engine) -> Path:
    """The key directory for a database (see the module docstring)."""
    env = os.environ.get(ENV_KEY_DIR)
    if env:
        return Path(env)
    backend, database = _url_parts(url)
    if backend == "sqlite" and database and database != ":memory:":
        path = Path(database)
        return path.with_name(path.stem + ".keys")
    return Path("var") / "keys"


def database_identity(url: str | Engine) -> str:
    """What names this database in the checkpoint directory: the SQLite file's absolute path,
    or PostgreSQL's host:port/database. Taken from the URL, never from the database's content,
    so nothing written into the database can choose which checkpoint it is checked against."""
    if isinstance(url, str):
        from audit.storage.engine import normalise_url

        parsed = make_url(normalise_url(url))
    else:
        parsed = url.url
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ":memory:"
        if database == ":memory:":
            return "sqlite::memory:"
        return "sqlite:" + str(Path(database).resolve())
    return f"{parsed.get_backend_name()}:{parsed.host or ''}:{parsed.port or ''}/{parsed.database}"


def checkpoint_path(url: str | Engine) -> Path | None:
    """The append-only file of chain heads seen for this database (None for in-memory)."""
    identity = database_identity(url)
    if identity == "sqlite::memory:":
        return None
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return key_dir(url) / CHECKPOINT_DIR / f"{digest}.heads"


# --- Files ----------------------------------------------------------------------------------------

def _write_new(path: Path, data: bytes) -> bool:
    """Create `path` with mode 0600 holding `data`; False if it already exists (never
    overwrites: two processes starting at once keep whichever key was written first)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def _read(path: Path) -> bytes:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError as exc:
        raise KeyMissing(_missing_message(path)) from exc
    if mode & 0o077:
        raise KeyUnreadable(
            f"{path} can be read by other users (mode {oct(mode & 0o777)}): "
            f"run `chmod 600 {path}`"
        )
    return path.read_bytes()


def _missing_message(path: Path) -> str:
    env = _SOURCES.get(path.name, "")
    return (
        f"key not found: {path} (nor ${env}). Restore the key directory from the backup "
        f"taken with the database; a new key would not match the existing records"
    )


# --- The keyring -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Keyring:
    """The keys of one site, loaded once per process."""

    directory: Path
    trail_key: bytes
    pseudonym_key: str
    signing_key_bytes: bytes

    @property
    def signing_key(self) -> Ed25519PrivateKey:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        return Ed25519PrivateKey.from_private_bytes(self.signing_key_bytes)

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.signing_key.public_key()

    def public_key_b64(self) -> str:
        """The raw 32-byte Ed25519 public key, base64: what `keys show` prints and an export
        carries."""
        return public_key_b64(self.public_key)

    def fingerprint(self) -> str:
        return fingerprint(self.public_key_b64())


def public_key_b64(key: Ed25519PublicKey) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return base64.b64encode(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def fingerprint(public_b64: str) -> str:
    """A short name for a public key, to read out over the phone: SHA-256, 16 hex digits in
    groups of four."""
    digest = hashlib.sha256(base64.b64decode(public_b64)).hexdigest()[:16].upper()
    return "-".join(digest[i:i + 4] for i in range(0, 16, 4))


def _env_or_file(env: str, path: Path) -> bytes:
    value = os.environ.get(env)
    if value:
        return value.encode()
    return _read(path).strip()


def _decode_signing(raw: bytes, where: str) -> bytes:
    try:
        key = base64.b64decode(raw, validate=True)
    except ValueError as exc:
        raise KeyUnreadable(f"{where}: not a base64 Ed25519 private key") from exc
    if len(key) != 32:
        raise KeyUnreadable(f"{where}: an Ed25519 private key is 32 bytes, found {len(key)}")
    return key


@lru_cache(maxsize=32)
def _load(directory: Path, trail_env: str, pseudonym_env: str, signing_env: str) -> Keyring:
    trail = _env_or_file(ENV_TRAIL_KEY, directory / TRAIL_KEY_FILE)
    pseudonym = _env_or_file(ENV_PSEUDONYM_KEY, directory / PSEUDONYM_KEY_FILE)
    signing_raw = _env_or_file(ENV_SIGNING_KEY, directory / SIGNING_KEY_FILE)
    where = f"${ENV_SIGNING_KEY}" if signing_env else str(directory / SIGNING_KEY_FILE)
    return Keyring(
        directory=directory,
        trail_key=trail,
        pseudonym_key=pseudonym.decode(),
        signing_key_bytes=_decode_signing(signing_raw, where),
    )


def load_keys(url: str | Engine) -> Keyring:
    """The keys for this database; KeyMissing if one was never made or has been lost."""
    directory = key_dir(url).resolve()
    return _load(
        directory,
        os.environ.get(ENV_TRAIL_KEY, ""),
        os.environ.get(ENV_PSEUDONYM_KEY, ""),
        os.environ.get(ENV_SIGNING_KEY, ""),
    )


def ensure_keys(url: str | Engine, *, pseudonym_key: str | None = None) -> list[Path]:
    """Make whichever keys do not exist yet (mode 0600 in a 0700 directory) and return the
    files made. An environment variable counts as existing. `pseudonym_key` is the key an
    older installation kept in its database, moved out by the migration so every patient keeps
    its reference."""
    directory = key_dir(url)
    made: list[Path] = []
    wanted = [
        (ENV_TRAIL_KEY, TRAIL_KEY_FILE, lambda: secrets.token_hex(32).encode()),
        (ENV_PSEUDONYM_KEY, PSEUDONYM_KEY_FILE,
         lambda: (pseudonym_key or secrets.token_hex(32)).encode()),
        (ENV_SIGNING_KEY, SIGNING_KEY_FILE, _new_signing_key),
    ]
    for env, name, make in wanted:
        if os.environ.get(env):
            continue
        path = directory / name
        if not path.exists() and _write_new(path, make()):
            made.append(path)
    if made:
        _load.cache_clear()
    return made


def _new_signing_key() -> bytes:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return base64.b64encode(raw)
