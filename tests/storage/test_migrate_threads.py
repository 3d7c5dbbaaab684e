"""Two threads of one process migrating at once (a dashboard's background warm-up bringing a
database to head while the test process builds its template): Alembic keeps its `op` and
`context` proxies in module globals, so without a lock one migration's statements ran on the
other's connection (CREATE TABLE in an aborted transaction, KeyError 'script')."""

from __future__ import annotations

from sqlalchemy import inspect

from audit.storage.engine import make_engine, migrate
from audit.storage.models import Base
from tests.conftest import Databases, race


def test_two_threads_migrate_two_databases_at_once(databases: Databases, backend: str) -> None:
    urls = [databases.empty(backend), databases.empty(backend)]
    outcomes = race([lambda url=url: migrate(url) for url in urls], timeout=240)
    assert outcomes == [None, None]
    for url in urls:
        engine = make_engine(url)
        try:
            assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
        finally:
            engine.dispose()
