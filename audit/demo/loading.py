"""Loading demo data: the patients, then the records in chunks with the driver's fastest bulk
path, one audit event (bulk_create, actor "demo") per chunk's range of ids.

Everything is vectorised with numpy and written with executemany (COPY on PostgreSQL) in chunks:
no per-row queries. Deterministic for a given seed and end date. Which database it may write to
is decided before this runs (audit.demo.guard): generate() itself writes where it is told.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Engine, func, select

from audit.demo import case_mix, follow_ups
from audit.demo.cast import DEMO_ACTOR, DEMO_REASON, MRN_PREFIX, ensure_cast
from audit.demo.distributions import OUTLIER, SRDL, planted_kinds
from audit.demo.records import build_chunk
from audit.log.pseudonym import pseudonym, site_secret
from audit.storage.engine import read_session, write_session
from audit.storage.models import (
    Complication,
    FollowUp,
    Patient,
    Procedure,
    ProcedureLevel,
    utcnow,
)
from audit.trail import record_event
from audit.vocab import AuditAction

CHUNK = 20_000
ProgressFn = Callable[[int, int], None]


def generate(
    engine: Engine,
    procedures: int = 5000,
    seed: int = 1,
    until: date | None = None,
    months: int = 24,
    progress: bool | ProgressFn = False,
) -> dict[str, Any]:
    """Insert `procedures` synthetic records ending at `until` (default today); return what was
    loaded, with the number of planted outliers (audit.demo.distributions) of each kind."""
    if procedures < 1:
        raise ValueError("procedures must be at least 1")
    ref = ensure_cast(engine)
    rng = np.random.default_rng(seed)
    end = datetime.combine(until or datetime.now(UTC).date(), datetime.min.time(), tzinfo=UTC)
    start = end - timedelta(days=int(months * 30.4))
    n = procedures
    n_patients = max(1, n // 3)  # about one patient per three procedures: many repeats
    patients = {
        "weight": np.round(np.clip(rng.lognormal(np.log(82), 0.2, n_patients), 40, 200), 1),
        "sex": rng.choice(np.array(["F", "M"], dtype=object), n_patients),
    }
    patients["height"] = case_mix.heights(seed, patients["sex"])
    mrns = [f"{MRN_PREFIX}{seed:03d}{i:07d}" for i in range(n_patients)]
    secret = site_secret(engine)
    _insert_patients(engine, mrns, [pseudonym(secret, m) for m in mrns])
    with read_session(engine) as s:
        ids = dict(s.execute(select(Patient.mrn, Patient.id)
                             .where(Patient.mrn.like(f"{MRN_PREFIX}{seed:03d}%"))).all())
        first_id = (s.scalar(select(func.max(Procedure.id))) or 0) + 1
    patients["id"] = np.array([ids[m] for m in mrns])

    kinds = planted_kinds(seed, n)
    complications = 0
    writer = _Writer(engine)
    tick = _progress(progress, n)
    now = utcnow()
    for lo in range(0, n, CHUNK):
        hi = min(n, lo + CHUNK)
        columns, levels = build_chunk(rng, first_id + lo, hi - lo, ref, patients, start, end,
                                      now, kinds[lo:hi])
        found = _complications(ref, columns, now)  # before the writer converts the times
        outcomes = _follow_ups(ref, columns, now)
        with write_session(engine) as s:
            writer.write(s, columns, levels)
            record_event(s, actor=DEMO_ACTOR, action=AuditAction.BULK_CREATE,
                         entity="procedure", entity_id=f"{first_id + lo}-{first_id + hi - 1}",
                         after={"records": hi - lo, "seed": seed}, reason=DEMO_REASON)
            complications += _write_complications(s, found, f"{first_id + lo}-{first_id + hi - 1}")
            _write_follow_ups(s, outcomes, f"{first_id + lo}-{first_id + hi - 1}")
        tick(hi)
    if engine.dialect.name == "postgresql":  # fresh statistics, or the planner guesses badly
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE procedure, procedure_level, patient")
    return {"procedures": n, "patients": n_patients, "seed": seed,
            "first_record_id": first_id, "last_record_id": first_id + n - 1,
            "from": start.date().isoformat(), "to": end.date().isoformat(),
            "planted_outliers": int((kinds == OUTLIER).sum()),
            "planted_srdl": int((kinds == SRDL).sum()), "complications": complications}


def _complications(ref: dict[str, Any], columns: dict[str, list[Any]],
                   now: datetime) -> dict[str, list[Any]]:
    """The chunk's complications (audit.demo.case_mix) as columns of `complication`."""
    code_of = {e.id: c for c, e in ref["catalog"].entries.items()}
    ids = np.array(columns["id"])
    return case_mix.complications(
        int(ids[0]), ids, np.array([code_of[t] for t in columns["procedure_type_id"]]),
        np.array([a is not None for a in columns["contrast_agent"]]),
        columns["performed_at"], now, DEMO_ACTOR)


def _follow_ups(ref: dict[str, Any], columns: dict[str, list[Any]],
                now: datetime) -> dict[str, list[Any]]:
    """The chunk's follow-ups (audit.demo.follow_ups) as columns of `follow_up`."""
    code_of = {e.id: c for c, e in ref["catalog"].entries.items()}
    return follow_ups.follow_ups(np.array(columns["id"]),
                                 np.array([code_of[t] for t in columns["procedure_type_id"]]),
                                 columns["performed_at"], now, DEMO_ACTOR,
                                 np.array(columns["patient_id"]),
                                 np.array(columns["region"], dtype=object))


def _write_follow_ups(session: Any, found: dict[str, list[Any]], span: str) -> None:
    """Insert them with one bulk audit event naming the chunk's procedures."""
    if found["procedure_id"]:
        rows = [dict(zip(found, values, strict=True)) for values in zip(*found.values(),
                                                                         strict=True)]
        session.execute(FollowUp.__table__.insert(), rows)
        record_event(session, actor=DEMO_ACTOR, action=AuditAction.BULK_CREATE,
                     entity="follow_up", entity_id=span,
                     after={"follow_ups": len(rows)}, reason=DEMO_REASON)


def _write_complications(session: Any, found: dict[str, list[Any]], span: str) -> int:
    """Insert them with one bulk audit event naming the chunk's procedures; how many."""
    if found["procedure_id"]:
        rows = [dict(zip(found, values, strict=True)) for values in zip(*found.values(),
                                                                         strict=True)]
        session.execute(Complication.__table__.insert(), rows)
        record_event(session, actor=DEMO_ACTOR, action=AuditAction.BULK_CREATE,
                     entity="complication", entity_id=span,
                     after={"complications": len(rows)}, reason=DEMO_REASON)
    return len(found["procedure_id"])


def _progress(progress: bool | ProgressFn, total: int) -> ProgressFn:
    if callable(progress):
        return progress
    if not progress:
        return lambda done, total_=total: None
    from tqdm import tqdm

    bar = tqdm(total=total, unit="records", desc="demo data", leave=True)

    def tick(done: int, _total: int = total) -> None:
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return tick


def _insert_patients(engine: Engine, mrns: list[str], pseudonyms: list[str]) -> None:
    """Insert the demo patients that are not there yet (a seed run again reuses its patients,
    and a larger run of the same seed adds only the new ones)."""
    prefix = mrns[0][:len(MRN_PREFIX) + 3]  # "DEMO" + the seed: every MRN of this seed
    with read_session(engine) as s:
        existing = set(s.scalars(select(Patient.mrn).where(Patient.mrn.like(f"{prefix}%"))))
    missing = [(m, p) for m, p in zip(mrns, pseudonyms, strict=True) if m not in existing]
    now = utcnow()
    step = CHUNK * 2
    for lo in range(0, len(missing), step):
        with write_session(engine) as s:
            s.connection().execute(Patient.__table__.insert(), [
                {"mrn": m, "pseudonym": p, "created_at": now} for m, p in missing[lo:lo + step]])


class _Writer:
    """Writes column lists with the driver's fastest bulk path: executemany of tuples on
    SQLite (the same call a hand-written loader would make), COPY on PostgreSQL."""

    def __init__(self, engine: Engine):
        self.dialect = engine.dialect.name
        self.proc_cols = [c.name for c in Procedure.__table__.columns]
        self.level_cols = [c.name for c in ProcedureLevel.__table__.columns]

    def write(self, session: Any, columns: dict[str, list[Any]],
              levels: dict[str, list[Any]]) -> None:
        conn = session.connection()
        if self.dialect == "postgresql":
            self._copy(conn, "procedure", self.proc_cols, columns)
            self._copy(conn, "procedure_level", self.level_cols, levels)
            # COPY with explicit ids leaves the id sequence behind: without this, the next
            # record logged by hand would be given an id the demo already took.
            conn.exec_driver_sql("SELECT setval(pg_get_serial_sequence('procedure', 'id'), "
                                 "(SELECT max(id) FROM procedure))")
            return
        if self.dialect == "sqlite":
            columns["performed_at"] = [_sqlite_datetime(v) for v in columns["performed_at"]]
            for key in ("created_at", "updated_at"):  # one value per chunk: convert it once
                stamp = _sqlite_datetime(columns[key][0])
                columns[key] = [stamp] * len(columns[key])
        self._executemany(conn, "procedure", self.proc_cols, columns)
        self._executemany(conn, "procedure_level", self.level_cols, levels)

    def _executemany(self, conn: Any, table: str, names: list[str],
                     columns: dict[str, list[Any]]) -> None:
        marks = ", ".join("?" if self.dialect == "sqlite" else "%s" for _ in names)
        sql = f"INSERT INTO {table} ({', '.join(names)}) VALUES ({marks})"  # noqa: S608
        conn.exec_driver_sql(sql, list(zip(*(columns[c] for c in names), strict=True)))

    @staticmethod
    def _copy(conn: Any, table: str, names: list[str], columns: dict[str, list[Any]]) -> None:
        cursor = conn.connection.driver_connection.cursor()
        with cursor.copy(f"COPY {table} ({', '.join(names)}) FROM STDIN") as copy:
            for row in zip(*(columns[c] for c in names), strict=True):
                copy.write_row(row)


def _sqlite_datetime(value: datetime) -> str:
    """The text SQLAlchemy's SQLite DateTime stores (UTC, naive), so reads parse it back."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


