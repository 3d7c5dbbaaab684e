"""Engines, sessions and schema migration.

SQLite is the embedded default: WAL (readers never block the writer), foreign keys on, a busy
timeout, and write transactions that start with BEGIN IMMEDIATE so two processes never both read
the audit chain's last hash and then race to extend it. PostgreSQL is reached by URL; there the
audit chain is serialised with a transaction-scoped advisory lock (see audit.trail).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from sqlalchemy import (
    Connection,
    Engine,
    Table,
    create_engine,
    event,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    IntegrityError,
    OperationalError,
    ProgrammingError,
)
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from audit.errors import NotMigrated

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
    if "poolclass" not in kwargs:  # a NullPool (migrations) keeps none
        kwargs.setdefault("pool_size", PG_POOL_SIZE)
    engine = create_engine(url, **kwargs)
    _postgresql_connect_hooks(engine)
    return engine


#: Connections a PostgreSQL engine keeps open between requests (SQLAlchemy's default is 5, with
#: 10 more opened and closed as needed). One page's figures ask up to 12 at once (the Dose
#: page's Physicians tab: two scorecards, each quantity in a snapshot of its own, the counts in
#: threads beside them); with 5 kept, every filter change opened and closed 5 new server
#: connections (a backend started and a password exchange each: 25-30 ms of the tab's 0.32 s
#: at 10M records). 16 leaves room for a second person's request; SQLAlchemy's 10 more are
#: opened under a burst (at most 26 per app process: PostgreSQL's default max_connections is
#: 100). Fewer is no saving: a figure holds its snapshot's connection while its threads open
#: theirs, so a pool that cannot give a page all it asks stalls it until the pool's timeout.
PG_POOL_SIZE = 16

#: How often a PostgreSQL server checks, during a long statement, that the process that sent it
#: is still there (client_connection_check_interval, PostgreSQL 14+; ms).
CLIENT_CHECK_MS = 2_000


def _postgresql_connect_hooks(engine: Engine) -> None:
    """Each connection asks the server to cancel its statement when this process is gone.
    Without it a statement runs to its end after the process that sent it died (a dashboard
    restarted during the first alert refresh, or during a dose figure's scan): the 10M bench
    showed a refresh's INSERT still running minutes after its process was killed, keeping the
    alert lock, so the next refresh waited behind it. Set outside a transaction (a SET inside
    the first transaction would be undone by its rollback); PostgreSQL 13 and older have no
    such check and are left as they are."""
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        if dbapi_connection.info.server_version < 140000:
            return
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True
        try:
            cursor = dbapi_connection.cursor()
            cursor.execute(f"SET client_connection_check_interval = {CLIENT_CHECK_MS}")
            cursor.close()
        finally:
            dbapi_connection.autocommit = autocommit


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


def without_jit(conn: Connection | Session) -> None:
    """No JIT compilation for the rest of this transaction (PostgreSQL; nothing elsewhere).
    For reads of the small summary tables: their OR'ed period conditions make PostgreSQL
    expect 15 times the rows it reads (415,021 against 28,800 month rows of a year at 10M
    records), so it compiled the statement: 64 ms of a 206 ms read."""
    bind = conn.get_bind() if isinstance(conn, Session) else conn
    if bind.dialect.name == "postgresql":
        conn.execute(text("SET LOCAL jit = off"))


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


# --- Is there a database? ----------------------------------------------------------------------

MIGRATE_HINT = "run `fluoro-audit migrate` first (or check --db / FLUORO_AUDIT_DB for a typo)"


def require_migrated(url: str | None = None) -> None:
    """Raise NotMigrated unless `url` names a database that `migrate` has set up, creating
    nothing: no SQLite file, no folder (make_engine would create both), no PostgreSQL table."""
    try:
        parsed = make_url(normalise_url(url or default_url()))
    except (ArgumentError, ValueError):
        raise NotMigrated(f"{url!r} is neither a database URL nor a SQLite file") from None
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise NotMigrated(f"{shown}: fluoro-audit keeps its log in a SQLite file or a "
                          "PostgreSQL database (postgresql://...)")
    if parsed.get_backend_name() == "sqlite":
        has_schema = _sqlite_has_schema(parsed.database or "")
    else:
        has_schema = _server_has_schema(parsed)
    if not has_schema:
        raise NotMigrated(f"the database at {shown} has no fluoro-audit schema (not migrated): "
                          f"{MIGRATE_HINT}")


def _sqlite_has_schema(database: str) -> bool:
    """Whether the SQLite file has the migration table, read through a read-only connection
    (an ordinary one would create a missing file, and turn an empty one into a database)."""
    path = Path(database)
    if not database or database == ":memory:" or not path.is_file():
        raise NotMigrated(f"no fluoro-audit database at {database or ':memory:'}: {MIGRATE_HINT}")
    try:
        connection = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise NotMigrated(f"cannot open {database}: {exc}") from None
    try:
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.DatabaseError as exc:
        if "no such table" in str(exc):
            return False
        raise NotMigrated(f"{database} is not a fluoro-audit database ({exc})") from None
    finally:
        connection.close()
    return row is not None


def _server_has_schema(parsed: Any) -> bool:
    """Whether the server database has a migration row; a missing table reads as no schema.
    One connection, closed at once (NullPool): this runs before every command."""
    engine = create_engine(parsed, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            try:
                row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
            except ProgrammingError:  # no such table
                return False
            return row is not None
    except DBAPIError as exc:
        reason = str(exc.orig or exc).strip().splitlines()[0]
        raise NotMigrated(f"cannot open the database at "
                          f"{parsed.render_as_string(hide_password=True)}: {reason}") from None
    finally:
        engine.dispose()


# --- Migrations --------------------------------------------------------------------------------

def migrations_dir() -> Path:
    """migrations/ in a checkout; audit/_migrations inside an installed wheel."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package.parent / "migrations", package / "_migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError("the Alembic migrations were not found next to the audit package")


def alembic_config(url: str | None = None) -> Any:
    import sys

    from alembic.config import Config

    # Alembic's own default is the sys.stdout of the moment alembic.config was first imported
    # (a default argument): a stream since closed when that import ran under a redirected
    # stdout (a background thread, a test's capture), and `alembic check` then fails to print
    config = Config(stdout=sys.stdout)
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


#: Connection.info key: what to do once a migration's transaction has committed (a migration
#: that appends an audit event records the chain head there: audit.checkpoints.note_pending).
AFTER_COMMIT = "audit.after_commit"


def run_after_commit(info: dict[str, Any]) -> None:
    """Run what a committed migration left to do after its commit."""
    for action in info.pop(AFTER_COMMIT, []):
        action()


#: One Alembic run at a time per process: Alembic keeps its `op` and `context` proxies in module
#: globals, so two threads migrating at once (a dashboard's background warm-up bringing its
#: database to head while another thread migrates another) ran one's statements on the other's
#: connection.
_ALEMBIC_LOCK = threading.Lock()


def _run_alembic(url: str | None, step: Callable[[Any], None]) -> None:
    """Run `step` in one transaction, then what it left for after the commit."""
    with _ALEMBIC_LOCK:
        _run_alembic_alone(url, step)


def _run_alembic_alone(url: str | None, step: Callable[[Any], None]) -> None:
    config = alembic_config(url)
    engine = make_engine(url, foreign_keys=False)
    info: dict[str, Any] = {}
    try:
        with engine.begin() as connection:
            info = connection.info
            config.attributes["connection"] = connection
            step(config)
            if is_sqlite(engine):
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"migration left broken foreign keys: {broken[:5]}")
        run_after_commit(info)
    finally:
        info.pop(AFTER_COMMIT, None)
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
