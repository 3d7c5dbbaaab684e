"""Alembic environment: one code path for `alembic` on the command line and
audit.storage.engine.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import pool

from audit.storage.engine import make_engine, normalise_url, run_after_commit
from audit.storage.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite cannot ALTER most things: rebuild the table instead
        compare_type=True,
        compare_server_default=False,
    )


def run_migrations_offline() -> None:
    url = config.get_main_option("url_for_env") or config.get_main_option("sqlalchemy.url")
    context.configure(
        url=normalise_url(url or ""),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    # Called from the `alembic` command: alembic.ini's URL, or FLUORO_AUDIT_DB, or the default.
    from audit.storage.engine import default_url

    url = config.get_main_option("url_for_env") or default_url()
    engine = make_engine(url, foreign_keys=False, poolclass=pool.NullPool)
    with engine.begin() as conn:
        info = conn.info
        _configure(conn)
        with context.begin_transaction():
            context.run_migrations()
    run_after_commit(info)  # e.g. record the chain head a migration appended, once committed
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
