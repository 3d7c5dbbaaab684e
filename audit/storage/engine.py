"""Engines, sessions and schema migration.

SQLite is the embedded default: WAL (readers never block the writer), foreign keys on, a busy
timeout, and write transactions that start with BEGIN IMMEDIATE so two processes never both read
the audit chain's last hash and then race to extend it. PostgreSQL is reached by URL; there the
audit chain is serialised with a transaction-scoped advisory lock (see audit.trail).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, Table, create_engine, event, func, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

ENV_DB = "FLUORO_AUDIT_DB"
DEFAULT_SQLITE_PATH = Path("var") / "fluoro-audit.sqlite3"
SQLITE_BUSY_TIMEOUT_MS = 30_000

T = TypeVar("T")


def default_url() -> str:
    """The database URL: FLUORO_AUDIT_DB, else a SQLite file under ./var/."""
    url = os.environ.get(ENV_DB)
    if url:
        return url
    return f"sqlite:///{DEFAULT_SQLITE_PATH}"


def normalise_url(url: str) -> str:
    """Accept a bare file path or postgresql:// and name the driver we ship (psycopg 3)."""
    if "://" not in url:
        return f"sqlite:///{url}"
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _sqlite_connect_hooks(engine: Engine, foreign_keys: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below emit BEGIN, so we choose DEFERRED or IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def make_engine(url: str | None = None, *, foreign_keys: bool = True, **kwargs: Any) -> Engine:
    """An engine for `url` with the settings this application relies on.

    foreign_keys=False is for migrations only: SQLite's batch mode rebuilds tables, which
    foreign-key enforcement would block (the migration checks the keys afterwards instead).
    """
    url = normalise_url(url or default_url())
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **kwargs
        )
        _sqlite_connect_hooks(engine, foreign_keys)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def writer(engine: Engine) -> Engine:
    """The same engine, but transactions take SQLite's write lock up front."""
    if is_sqlite(engine):
        return engine.execution_options(sqlite_begin="IMMEDIATE")
    return engine


@contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """A session whose work commits as one transaction, or not at all."""
    factory = sessionmaker(writer(engine), expire_on_commit=False)
    with factory() as session, session.begin():
        yield session


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    factory = sessionmaker(engine, expire_on_commit=False)
    with factory() as session:
        yield session


def insert_numbered(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> list[int]:
    """INSERT `rows` into `table` (integer primary key `id`) in one bulk statement, in the
    caller's write transaction, and return their ids in the order of `rows`.

    Why not RETURNING everywhere: for ids in parameter order SQLAlchemy runs one statement per
    row on SQLite, which made a bulk import's write transaction 20x longer. There the write
    transaction holds SQLite's only write lock (BEGIN IMMEDIATE), so nobody else can take ids
    meanwhile: the rows are numbered from the table's largest id, as SQLite itself would, and
    written with one executemany. PostgreSQL's sequence is left to the database
    (RETURNING ... sort_by_parameter_order, batched there).
    """
    if not rows:
        return []
    if session.get_bind().dialect.name == "sqlite":
        start = (session.scalar(select(func.max(table.c.id))) or 0) + 1
        ids = list(range(start, start + len(rows)))
        session.execute(insert(table), [{**row, "id": i} for row, i in zip(rows, ids,
                                                                             strict=True)])
        return ids
    return list(session.execute(
        insert(table).returning(table.c.id, sort_by_parameter_order=True), rows).scalars())


def _transient(exc: DBAPIError) -> bool:
    """Errors worth retrying the whole transaction for: lock contention and serialization."""
    message = str(exc.orig).lower() if exc.orig is not None else str(exc).lower()
    if "database is locked" in message or "database is busy" in message:
        return True
    code = getattr(exc.orig, "sqlstate", None)
    return code in {"40001", "40P01"}


def retrying(work: Callable[[], T], attempts: int = 8) -> T:
    """Run a whole transaction again on lock contention, so no caller sees a transient error.

    IntegrityError from a concurrent "create missing" race is retried too: the second attempt
    finds the row the other process created.
    """
    delay = 0.02
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except (OperationalError, IntegrityError, DBAPIError) as exc:
            retry = isinstance(exc, IntegrityError) and attempt < 3
            if not (retry or _transient(exc)) or attempt == attempts:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 1.0)
    raise AssertionError("unreachable")


# --- Migrations --------------------------------------------------------------------------------

def migrations_dir() -> Path:
    """migrations/ in a checkout; audit/_migrations inside an installed wheel."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package.parent / "migrations", package / "_migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError("the Alembic migrations were not found next to the audit package")


def alembic_config(url: str | None = None) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("url_for_env", normalise_url(url or default_url()))
    config.attributes["configure_logger"] = False
    return config


def migrate(url: str | None = None, revision: str = "head") -> None:
    """Upgrade the schema (and seed data) to `revision`. Safe to call on every start."""
    from alembic import command

    _run_alembic(url, lambda config: command.upgrade(config, revision))


def downgrade(url: str, revision: str) -> None:
    from alembic import command

    _run_alembic(url, lambda config: command.downgrade(config, revision))


def _run_alembic(url: str | None, step: Callable[[Any], None]) -> None:
    config = alembic_config(url)
    engine = make_engine(url, foreign_keys=False)
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            step(config)
            if is_sqlite(engine):
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"migration left broken foreign keys: {broken[:5]}")
    finally:
        engine.dispose()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        try:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except DBAPIError:
            return None


@cache
def head_revision() -> str:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    head = script.get_current_head()
    assert head is not None
    return head
