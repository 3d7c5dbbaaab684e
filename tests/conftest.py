"""Shared fixtures: every database test runs on a real SQLite file and a real PostgreSQL.

PostgreSQL comes from FLUORO_AUDIT_TEST_PG, an admin URL such as
postgresql://fluoro:fluoro@127.0.0.1:5432/postgres; else `make test` (and so .ci/run) starts a
throwaway cluster through .ci/throwaway_pg.sh when the server binaries are installed). Without
it the PostgreSQL half is skipped locally, and fails under CI=true: CI must never pass by
skipping.

Each test gets a fresh database copied from a template migrated once per session, so tests are
isolated without paying for a migration each time.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from audit.auth import Actor, cli_actor
from audit.keys import ENV_KEY_DIR
from audit.log.service import ProcedureLog
from audit.storage.engine import make_engine, migrate
from audit.vocab import Role

PG_ENV = "FLUORO_AUDIT_TEST_PG"
# One key directory per test process (audit.keys), shared by every database it makes: the
# databases are copies of one migrated template, so they share its keys, as a site's restored
# backup shares the site's. Tests of where keys live unset it.
os.environ.setdefault(ENV_KEY_DIR, tempfile.mkdtemp(prefix="fluoro-keys-"))
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
BACKENDS = ["sqlite", "postgresql"]


def pg_admin_url() -> str | None:
    url = os.environ.get(PG_ENV)
    if not url:
        if IN_CI:
            pytest.fail(f"{PG_ENV} is not set: under CI=true the PostgreSQL tests must run")
        return None
    return url


def _pg_admin_engine(url: str) -> Engine:
    parsed = make_url(url).set(drivername="postgresql+psycopg")
    return create_engine(parsed, isolation_level="AUTOCOMMIT", pool_pre_ping=True)


def rule_packs_off(url: str) -> None:
    """Switch every rule pack off in the template (issue 15's practice rules): the shared
    fixtures log the same patient's TFESIs again and again, which the packs would warn about;
    the rules' own tests switch them on (tests/rules/)."""
    eng = make_engine(url)
    with eng.begin() as conn:
        conn.execute(text("UPDATE rule_pack SET enabled = false"))
    eng.dispose()


class Databases:
    """Creates fresh databases from a migrated template, per backend."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.worker = os.environ.get("PYTEST_XDIST_WORKER", "gw")
        self._sqlite_template: Path | None = None
        self._pg_template: str | None = None
        self._pg_dbs: list[str] = []

    def sqlite(self) -> str:
        if self._sqlite_template is None:
            self._sqlite_template = self.tmp / "template.sqlite3"
            migrate(f"sqlite:///{self._sqlite_template}")
            rule_packs_off(f"sqlite:///{self._sqlite_template}")
        path = self.tmp / f"{uuid.uuid4().hex[:12]}.sqlite3"
        shutil.copyfile(self._sqlite_template, path)
        return f"sqlite:///{path}"

    def postgresql(self) -> str:
        admin_url = pg_admin_url()
        if admin_url is None:
            pytest.skip(f"PostgreSQL not configured ({PG_ENV} unset)")
        admin = _pg_admin_engine(admin_url)
        try:
            with admin.connect() as conn:
                if self._pg_template is None:
                    name = f"fa_tmpl_{self.worker}_{uuid.uuid4().hex[:6]}"
                    conn.execute(text(f'CREATE DATABASE "{name}"'))
                    self._pg_dbs.append(name)
                    migrate(self._url(admin_url, name))
                    rule_packs_off(self._url(admin_url, name))
                    self._pg_template = name
                name = f"fa_{self.worker}_{uuid.uuid4().hex[:10]}"
                conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{self._pg_template}"'))
                self._pg_dbs.append(name)
        finally:
            admin.dispose()
        return self._url(admin_url, name)

    def empty(self, backend: str) -> str:
        """An empty database (no schema), for migration tests."""
        if backend == "sqlite":
            return f"sqlite:///{self.tmp / (uuid.uuid4().hex[:12] + '.sqlite3')}"
        admin_url = pg_admin_url()
        if admin_url is None:
            pytest.skip(f"PostgreSQL not configured ({PG_ENV} unset)")
        admin = _pg_admin_engine(admin_url)
        name = f"fa_{self.worker}_{uuid.uuid4().hex[:10]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        self._pg_dbs.append(name)
        return self._url(admin_url, name)

    @staticmethod
    def _url(admin_url: str, name: str) -> str:
        return make_url(admin_url).set(drivername="postgresql+psycopg", database=name) \
            .render_as_string(hide_password=False)

    def cleanup(self) -> None:
        admin_url = os.environ.get(PG_ENV)
        if not admin_url or not self._pg_dbs:
            return
        admin = _pg_admin_engine(admin_url)
        with admin.connect() as conn:
            for name in reversed(self._pg_dbs):
                try:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                except DBAPIError as exc:  # e.g. an autovacuum worker we may not terminate
                    warnings.warn(f"could not drop test database {name}: {exc.orig}",
                                  stacklevel=1)
        admin.dispose()


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Databases]:
    dbs = Databases(tmp_path_factory.mktemp("db"))
    yield dbs
    dbs.cleanup()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(databases: Databases, backend: str) -> str:
    return databases.sqlite() if backend == "sqlite" else databases.postgresql()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def service(engine: Engine) -> ProcedureLog:
    return ProcedureLog(engine)


@pytest.fixture
def admin() -> Actor:
    return cli_actor()


@pytest.fixture
def tech() -> Actor:
    return Actor("tech1", Role.TECHNOLOGIST)


def valid_record(**overrides: Any) -> dict[str, Any]:
    """A complete, valid lumbar TFESI in dictionary field names."""
    record: dict[str, Any] = {
        "performed_at": "2026-03-14T09:30:00-05:00",
        "site": "Riverside",
        "room": "OR 1",
        "physician": "Dr. Chen",
        "technologist": "tech1",
        "patient_id": "MRN0001",
        "pregnancy_status": "not_pregnant",
        "procedure_code": "TFESI",
        "levels": ["L4", "L5"],
        "laterality": "left",
        "guidance": "fluoroscopy",
        "fluoro_time_s": 32,
        "dap_value": 0.71,
        "dap_unit": "Gy·cm²",
        "air_kerma_mgy": 5.2,
        "saved_images": 2,
        "contrast_agent": "iohexol 240",
        "contrast_volume_ml": 1.5,
        "contrast_confirmation": "confirmed",
        "confirmation_views": ["AP", "LAT"],
        "realtime_contrast": True,
        "injectate": "dexamethasone",
    }
    record.update(overrides)
    return {k: v for k, v in record.items() if v is not None}


@pytest.fixture
def logged(service: ProcedureLog, admin: Actor) -> int:
    """One record logged (creating the site, room, physician and technologist)."""
    return service.log(valid_record(), admin, create_missing=True).record_id


def race(calls: list[Callable[[], Any]], timeout: float = 60) -> list[BaseException | None]:
    """Run each call in its own thread, all released at once by a barrier, and return what each
    raised (None for a success).

    Why threads and a barrier: a race between two transactions only shows when both are open at
    once, each on its own pooled connection; one after the other they never conflict.
    """
    barrier = threading.Barrier(len(calls))
    outcomes: list[BaseException | None] = [None] * len(calls)

    def run(index: int, call: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            call()
        except BaseException as exc:  # the caller asserts on every outcome
            outcomes[index] = exc

    threads = [threading.Thread(target=run, args=(i, c), daemon=True)
               for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(t.is_alive() for t in threads), "a racing call did not finish"
    return outcomes


@pytest.fixture
def patient(service: ProcedureLog, admin: Actor) -> str:
    """MRN0001 with three procedures: a lumbar TFESI with contrast, a cervical one where
    contrast was contraindicated (allergy), and an ILESI; MRN0002 with one (not in the
    history)."""
    service.log_many([
        valid_record(),
        valid_record(performed_at="2026-04-02T10:00:00Z", procedure_code="TFESI",
                     levels=["C6"], laterality="right", contrast_agent=None,
                     contrast_volume_ml=None, contrast_confirmation="contraindicated",
                     contrast_exception_reason="allergy", confirmation_views=None,
                     realtime_contrast=None, fluoro_time_s=41, dap_value=0.4),
        valid_record(performed_at="2026-05-05T10:00:00Z", procedure_code="ILESI",
                     levels=["L4-L5"], laterality="midline", fluoro_time_s=20, dap_value=0.5),
        valid_record(patient_id="MRN0002", performed_at="2026-05-06T10:00:00Z"),
    ], admin, create_missing=True)
    return "MRN0001"
