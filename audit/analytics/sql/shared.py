"""Figure results shared by every app process: the `figure_result` table (migration 0021).

Why: on PostgreSQL a figure is a scan and a sort of the filtered records, and exact quantiles
cannot be pre-aggregated, so each figure is computed once per figures version
(audit.analytics.figure_changes) and kept where every app process (and the next one after a
restart) finds it. SqlSource looks in its own memory, then here, then computes and stores
(INSERT ... ON CONFLICT DO NOTHING: two processes computing the same figure at once keep the
first).

Why a MAC: a row holds a pickled result, and unpickling runs code of the pickle's choosing.
Whoever can write this table (the database's owner role, a stolen backup restored elsewhere)
must not be able to make an app process run theirs. Each row carries an HMAC-SHA-256 over its
version, key, payload and recipe under a key derived from the site's trail key (kept outside the
database, audit.keys), and a row whose MAC does not verify is never unpickled: it is logged,
computed again and replaced.

Each row also carries its recipe: the public SqlSource call that asked for it (method, arguments
and keyword arguments as JSON, never a pickle), so that after the version moves the warmer
(audit.analytics.sql.warm) replays what people looked at. `asked_at` says a person asked (the
warmer's own rows have none until someone opens them), so the warmer replays only figures
someone looked at, not its own previous work forever.

Rows of older versions are deleted (`prune`, the latest KEEP_VERSIONS kept, and of older ones
each key's newest row for STALE_KEEP_DAYS: what a dashboard page shows "as of" while the figure
is computed again, audit.analytics.sql.stale): this is a cache; "no hard deletes" is about
clinical records.
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import hmac
import json
import logging
import pickle
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, delete, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert

from audit._version import __version__
from audit.filters import Filters
from audit.keys import load_keys
from audit.storage.models import FigureResult

LOG = logging.getLogger("fluoro_audit.figures")
#: Bumped when a stored result's shape changes: older rows are then never found.
FORMAT = 1
#: Versions kept by `prune` (the warmer replays what was asked under the previous ones).
KEEP_VERSIONS = 3
#: Of older versions, each key's newest row is kept this many days after it was computed: the
#: last finished figure a dashboard page may show "as of" (audit.analytics.sql.stale).
STALE_KEEP_DAYS = 30
#: pg_advisory_lock(class, key) class of "one process computes this figure" ("Figr"): the
#: two-key locks never collide with the one-key locks of the trail chain and the warmer.
KEY_LOCK_CLASS = 0x46696772
#: The label the MAC key is derived under (HMAC of the trail key).
KEY_LABEL = b"fluoro-audit figure-results v1"

#: The public calls a recipe may name (filled by @public): the warmer replays nothing else.
PUBLIC_METHODS: set[str] = set()
_ASKING: contextvars.ContextVar[str | None] = contextvars.ContextVar("figure_call",
                                                                     default=None)
_NOT_REPLAYABLE = ""  # an outer call whose arguments JSON cannot say: nested calls keep it

F = TypeVar("F", bound=Callable[..., Any])


# --- recipes: a public call as JSON ---------------------------------------------------------
def _encode(value: Any) -> Any:
    if isinstance(value, Filters):
        return {"$filters": {f.name: _encode(getattr(value, f.name)) for f in fields(value)}}
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"not a recipe value: {type(value).__name__}")


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_decode(v) for v in value)
    if isinstance(value, dict):
        if "$filters" in value:
            return Filters(**{k: _decode(v) for k, v in value["$filters"].items()})
        if "$datetime" in value:
            return datetime.fromisoformat(value["$datetime"])
        if "$date" in value:
            return date.fromisoformat(value["$date"])
        raise ValueError(f"not a recipe value: {sorted(value)}")
    return value


def canonical(value: Any) -> str:
    return json.dumps(_encode(value), sort_keys=True, separators=(",", ":"))


def recipe_of(method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """The call as canonical JSON, or "" when an argument is not plain data."""
    try:
        return json.dumps({"method": method, "args": _encode(args),
                           "kwargs": {k: _encode(v) for k, v in kwargs.items()}},
                          sort_keys=True, separators=(",", ":"))
    except TypeError:
        return _NOT_REPLAYABLE


def public(method: F) -> F:
    """Marks a SqlSource method as a public call: while it runs (and only the outermost one),
    its recipe is what every result it stores carries."""
    PUBLIC_METHODS.add(method.__name__)

    @functools.wraps(method)
    def asking(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _ASKING.get() is not None:
            return method(self, *args, **kwargs)
        token = _ASKING.set(recipe_of(method.__name__, args, kwargs))
        try:
            return method(self, *args, **kwargs)
        finally:
            _ASKING.reset(token)
    return asking  # type: ignore[return-value]


def current_recipe() -> str | None:
    return _ASKING.get() or None


def replay(source: Any, recipe: str) -> Any:
    """Call again on `source` the public call a recipe names (nothing else)."""
    found = json.loads(recipe)
    method = found["method"]
    if method not in PUBLIC_METHODS:
        raise ValueError(f"a figure recipe names {method!r}, not a public figure call")
    kwargs = {k: _decode(v) for k, v in found["kwargs"].items()}
    return getattr(source, method)(*_decode(found["args"]), **kwargs)


def key_digest(key: tuple[Any, ...]) -> str:
    """The SHA-256 of a result's key (the figure, its filters, its arguments), with the result
    format and the code's digest: an app whose code changed (an upgrade, a fix to a figure's
    rule) never reads the results an older one stored, though the figures version is the
    same."""
    text = canonical((FORMAT, code_digest(), *key))
    return hashlib.sha256(text.encode()).hexdigest()


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """The SHA-256 of the library's Python sources (read once per process, a few ms), with its
    version and those of Python, pandas and numpy (a pickle is read back by them): where the
    sources are not files (a zip), the versions alone."""
    import numpy
    import pandas

    package = Path(__file__).resolve().parents[2]
    digest = hashlib.sha256(" ".join((__version__, sys.version, pandas.__version__,
                                      numpy.__version__)).encode())
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


# --- the table ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Found:
    """What the table holds for a key: nothing, a verified value, or a row that failed its MAC
    (`forged`: ignored, to be replaced)."""

    value: Any = None
    hit: bool = False
    asked: bool = False
    forged: bool = False


class SharedResults:
    """The figure_result table of one database, under the site's MAC key."""

    def __init__(self, engine: Engine) -> None:
        trail_key = load_keys(engine).trail_key
        self._key = hmac.new(trail_key, KEY_LABEL, hashlib.sha256).digest()

    def mac(self, version: int, digest: str, payload_sha256: str, recipe: str | None) -> str:
        message = json.dumps([version, digest, payload_sha256, recipe]).encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def verified(self, version: int, digest: str, payload_sha256: str, recipe: str | None,
                 mac: str) -> bool:
        expected = self.mac(version, digest, payload_sha256, recipe)
        if hmac.compare_digest(expected, mac):
            return True
        LOG.warning("figure result %s at figures version %d fails its MAC: ignored (it is "
                    "computed again and replaced); someone wrote figure_result outside the app",
                    digest, version)
        return False

    def read(self, conn: Connection, version: int, digest: str) -> Found:
        r = FigureResult
        row = conn.execute(select(r.payload, r.mac, r.recipe, r.asked_at).where(
            r.figures_version == version, r.key_sha256 == digest)).first()
        if row is None:
            return Found()
        payload = bytes(row.payload)
        if not self.verified(version, digest, hashlib.sha256(payload).hexdigest(), row.recipe,
                             row.mac):
            return Found(forged=True)
        try:
            value = pickle.loads(payload)
        except Exception as exc:  # a genuine row the running libraries cannot read back
            LOG.warning("figure result %s at figures version %d cannot be read back (%s): "
                        "computed again and replaced", digest, version, exc)
            return Found(forged=True)
        return Found(value=value, hit=True, asked=row.asked_at is not None)

    def newest_before(self, conn: Connection, version: int, digest: str,
                      above: int = -1) -> tuple[int, Any] | None:
        """The key's last finished result under a version before `version` (and after `above`),
        as (its version, its value); None when there is none or the newest fails its MAC (an
        older figure is served only when verified: audit.analytics.sql.stale)."""
        r = FigureResult
        older = conn.execute(select(r.figures_version).where(
            r.key_sha256 == digest, r.figures_version < version, r.figures_version > above)
            .order_by(r.figures_version.desc()).limit(1)).scalar()
        if older is None:
            return None
        found = self.read(conn, older, digest)
        return (older, found.value) if found.hit else None

    def store(self, conn: Connection, version: int, digest: str, value: Any,
              recipe: str | None, seconds: float, *, asked: bool, replace: bool) -> None:
        """Keep a result (the first one stored wins; a forged row is replaced)."""
        payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        now = datetime.now(UTC)
        row = {"figures_version": version, "key_sha256": digest, "payload": payload,
               "mac": self.mac(version, digest, hashlib.sha256(payload).hexdigest(), recipe),
               "recipe": recipe, "computed_at": now, "seconds": seconds,
               "asked_at": now if asked else None}
        statement = insert(FigureResult).values(**row)
        if replace:
            statement = statement.on_conflict_do_update(
                index_elements=["figures_version", "key_sha256"],
                set_={k: v for k, v in row.items() if k not in ("figures_version",
                                                                  "key_sha256")})
        else:
            statement = statement.on_conflict_do_nothing()
        conn.execute(statement)
        conn.commit()

    @contextmanager
    def one_at_a_time(self, conn: Connection, digest: str) -> Iterator[None]:
        """While this connection computes a key, another process asking for the same key waits
        (a PostgreSQL advisory lock on the key), then reads what it stored: after a write, the
        app processes and the warmer that all open the same page compute each figure once."""
        ident = {"c": KEY_LOCK_CLASS, "o": int(digest[:8], 16) - 2**31}
        conn.execute(text("SELECT pg_advisory_lock(:c, :o)"), ident)
        try:
            yield
        finally:
            conn.rollback()  # a failed figure leaves no aborted transaction behind the unlock
            conn.execute(text("SELECT pg_advisory_unlock(:c, :o)"), ident)
            conn.commit()

    def mark_asked(self, conn: Connection, version: int, digest: str) -> None:
        """A person opened a figure the warmer computed: replay it after the next write."""
        r = FigureResult
        conn.execute(update(r).where(r.figures_version == version, r.key_sha256 == digest,
                                     r.asked_at.is_(None)).values(asked_at=datetime.now(UTC)))
        conn.commit()

    def asked_before(self, conn: Connection, version: int, limit: int) -> list[str]:
        """The recipes people asked for under versions before `version`, most recent first,
        each once, at most `limit`; a row failing its MAC is left out (and logged)."""
        r = FigureResult
        rows = conn.execute(
            select(r.figures_version, r.key_sha256, r.recipe, r.mac,
                   func.encode(func.sha256(r.payload), "hex").label("payload_sha256"))
            .where(r.figures_version < version, r.asked_at.is_not(None),
                   r.recipe.is_not(None))
            .order_by(r.figures_version.desc(), r.asked_at.desc())
            .limit(limit * 4)).all()
        recipes: list[str] = []
        for row in rows:
            if row.recipe in recipes or not self.verified(
                    row.figures_version, row.key_sha256, row.payload_sha256, row.recipe,
                    row.mac):
                continue
            recipes.append(row.recipe)
            if len(recipes) == limit:
                break
        return recipes


def prune(conn: Connection, keep: int = KEEP_VERSIONS,
          stale_days: int = STALE_KEEP_DAYS) -> int:
    """Delete the rows of every version but the latest `keep`, except each key's newest row
    computed in the last `stale_days` (what a dashboard page shows "as of" while its figure is
    computed again, audit.analytics.sql.stale); the number deleted."""
    r = FigureResult
    newer = r.__table__.alias("newer")
    kept = (select(r.figures_version).distinct().order_by(r.figures_version.desc())
            .offset(keep - 1).limit(1).scalar_subquery())
    superseded = select(newer.c.key_sha256).where(
        newer.c.key_sha256 == r.key_sha256,
        newer.c.figures_version > r.figures_version).exists()
    cutoff = datetime.now(UTC) - timedelta(days=stale_days)
    deleted = conn.execute(delete(r).where(
        r.figures_version < kept, or_(superseded, r.computed_at < cutoff))).rowcount
    conn.commit()
    return int(deleted or 0)
