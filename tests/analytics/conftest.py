"""Fixtures shared by the analytics tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from audit.auth import cli_actor
from audit.log.service import ProcedureLog
from audit.storage.engine import make_engine
from tests.analytics import analytics_data
from tests.conftest import Databases


@pytest.fixture(scope="module")
def pg_engine(databases: Databases) -> Iterator[Engine]:
    """A PostgreSQL database holding the hand-checked analytics records, one per test module."""
    engine = make_engine(databases.postgresql())
    analytics_data.load(ProcedureLog(engine), cli_actor())
    yield engine
    engine.dispose()


@pytest.fixture
def pg(databases: Databases) -> Iterator[Engine]:
    """An empty PostgreSQL database, migrated, one per test (a module that needs records in it
    defines its own `pg`)."""
    engine = make_engine(databases.postgresql())
    yield engine
    engine.dispose()
