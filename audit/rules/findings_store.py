"""The practice rules' findings stored (`rule_finding`), so the Coverage page and `report rules`
count them with one GROUP BY on PostgreSQL instead of checking every record (issue 16).

Why it can be kept incrementally: a record's findings depend only on its own patient's final
records, their follow-ups and levels (audit.rules.period), on the switched-on packs with their
parameters and dates, and on the catalog codes the rules read. So after a change only the
patients of the changed records need their findings recomputed, all of their final records
(a new or amended record changes the history its later records are judged against; a
follow-up changes the repeat rules of its record's later sessions).

How it stays current: by the shared refresh protocol (audit.analytics.derived). The audit
events after the table's version that name records (entity "procedure": create, amend, void,
merge, bulk load; entity "follow_up", whose entity_id is the procedure's id) give the record
ids; their patients now, and the patients the stored rows of those records had (a record moved
to another patient changes both), are recomputed in batches of BATCH_PATIENTS with the
report's batch code (audit.rules.period.read, audit.rules.batch.evaluate_many) and compared
with their stored rows: the rows of the records whose findings differ, and of the named
records (their keys or time may have changed), are rewritten, and the UTC days they were or
now are on recounted (audit.rules.finding_counts). An event naming no records, more than
INCREMENTAL_LIMIT of them, or a change of the rules' inputs (`_rules`: the packs, their
parameters and dates, the catalog's rule codes, RULES) rebuilds it all, in the same batches,
never every record in memory.

Each record is judged against its patient's whole stored history (the report's "All" period).
The batched report of a period reads the history from LOOKBACK before the period's start, so
two rules that count every earlier session (the diagnostic blocks before an RFA, the patient's
first lumbar TFESI) can differ for a record whose patient has such sessions more than five
years before that start; the stored findings do not depend on the filters.

A full build is long on a large database (minutes at 5M records), so it is never done in a
page's request: the Coverage page asks with build=False, gets FindingsNotReady, starts
`build_in_background` (one thread per process; a second process finds the lock taken and
leaves the build to the first) and checks the period's records batch by batch meanwhile, the
answer the stored findings will give. An incremental refresh (seconds) is waited for. While a
batch is written, the next one is read and checked in a worker thread: the write waits on
PostgreSQL, the check on Python, and the two overlap.

A row changed behind the app's back stays wrong until its patient changes: `fluoro-audit db
rebuild-facts` rebuilds this table too. PostgreSQL only, as the record facts.
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, Integer, any_, bindparam, delete, select, text
from sqlalchemy.dialects import postgresql

from audit.analytics.derived import RefreshBusy, refresh_versioned
from audit.analytics.snapshot import INCREMENTAL_LIMIT, _changed_records
from audit.errors import AuditError, NeedsPostgreSQL
from audit.filters import Filters
from audit.rules import batch, finding_counts
from audit.rules.follow_up import ENTITY as FOLLOW_UP
from audit.rules.packs import ESI_CODES, FACET_CODES
from audit.rules.period import BATCH_PATIENTS, SAFEGUARD_CODES, checked_codes, read
from audit.rules.store import ActivePack, load_packs
from audit.storage.engine import read_session
from audit.storage.models import (
    AuditEvent,
    Procedure,
    ProcedureType,
    RuleFinding,
    RuleFindingState,
)
from audit.vocab import RecordStatus

#: Bumped when what a row holds changes meaning (or the rules' code does): the next refresh
#: rebuilds the table.
RULES = 1
_LOCK = 0x52756C46  # "RulF"
#: Every code a rule reads (the catalog's ids of these are part of `_rules`).
RULE_CODES = frozenset(ESI_CODES | FACET_CODES | SAFEGUARD_CODES)
LOG = logging.getLogger(__name__)


class FindingsNotReady(AuditError):
    """The stored findings need a full build (never built, or the packs, their parameters or
    the catalog's codes changed since) and the caller would not do it (build=False): check
    the records batch by batch meanwhile (audit.rules.report, stored=False)."""


NOT_BUILT = "the stored rule findings are not built for the rule packs as they are now"

_INSERT = text("""
    INSERT INTO rule_finding (record_id, rule, exception, message, patient_id, performed_at,
                              month, site_id, room_id, procedure_type_id, physician_id,
                              technologist_id)
    SELECT f.record_id, f.rule, f.exception, f.message, p.patient_id, p.performed_at,
           CAST(date_trunc('month', timezone('UTC', p.performed_at)) AS date), p.site_id,
           p.room_id, p.procedure_type_id, p.physician_id, p.technologist_id
    FROM unnest(:ids, :rules, :flags, :messages) AS f(record_id, rule, exception, message)
    JOIN procedure p ON p.id = f.record_id
""").bindparams(bindparam("ids", type_=postgresql.ARRAY(Integer)),
                bindparam("rules", type_=postgresql.ARRAY(postgresql.TEXT)),
                bindparam("flags", type_=postgresql.ARRAY(postgresql.BOOLEAN)),
                bindparam("messages", type_=postgresql.ARRAY(postgresql.TEXT)))


def _check(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        raise NeedsPostgreSQL(f"the rule findings are stored on PostgreSQL only; "
                              f"{engine.dialect.name} checks the records for each report")


def _rules(session: Any) -> int:
    """RULES, every pack as the checks see it and the catalog ids of the codes the rules read,
    as one number: a change of any of them rebuilds the table."""
    packs = load_packs(session)
    types = session.execute(select(ProcedureType.id, ProcedureType.code)
                            .where(ProcedureType.code.in_(sorted(RULE_CODES)))).all()
    inputs = (RULES, sorted((p.key, p.enabled, sorted(p.parameters.items()),
                             str(p.effective_from), str(p.effective_to))
                            for p in packs.values()),
              sorted((int(i), str(c)) for i, c in types))
    return zlib.crc32(repr(inputs).encode()) & 0x7FFFFFFF


def _any_of(ids: Iterable[int]) -> Any:
    """= ANY(one array parameter): thousands of ids without thousands of placeholders."""
    return any_(bindparam(None, [int(i) for i in ids], type_=postgresql.ARRAY(Integer)))


@dataclass(frozen=True)
class Named:
    """The records the events name: ids and inclusive id ranges (a bulk load)."""

    ids: np.ndarray
    ranges: list[tuple[int, int]]

    def covers(self, record_ids: np.ndarray) -> np.ndarray:
        hit = np.isin(record_ids, self.ids)
        for lo, hi in self.ranges:
            hit |= (record_ids >= lo) & (record_ids <= hi)
        return hit


def _patients_to_redo(conn: Connection, synced: int,
                      now: int) -> tuple[np.ndarray, Named] | None:
    """The patients whose findings the events in (synced, now] may change (sorted ids) and
    the records the events name, or None: rebuild all (an event naming no records, or too
    many events)."""
    rows = conn.execute(
        select(AuditEvent.entity, AuditEvent.entity_id)
        .where(AuditEvent.id > synced, AuditEvent.id <= now,
               AuditEvent.entity.in_(("procedure", FOLLOW_UP)))
        .limit(INCREMENTAL_LIMIT + 1)).all()
    if len(rows) > INCREMENTAL_LIMIT:
        return None
    named = _changed_records([("procedure", i) for _, i in rows])
    if named is None:
        return None
    ids, ranges = named
    patients: set[int] = set()
    for table, key in ((Procedure.__table__, "id"), (RuleFinding.__table__, "record_id")):
        column = table.c[key]
        chosen = [column == _any_of(sorted(ids))] if ids else []
        chosen += [column.between(lo, hi) for lo, hi in ranges]
        for part in chosen:
            patients.update(conn.scalars(select(table.c.patient_id).distinct().where(part)))
    return (np.array(sorted(patients), dtype=np.int64),
            Named(np.array(sorted(ids), dtype=np.int64), ranges))


def _all_patients(conn: Connection, codes: frozenset[str]) -> np.ndarray:
    """Every patient with a final record of a checked code, sorted."""
    query = select(Procedure.patient_id).distinct().where(
        Procedure.status == RecordStatus.FINAL.value,
        Procedure.procedure_type_id.in_(
            select(ProcedureType.id).where(ProcedureType.code.in_(sorted(codes))))
    ).order_by(Procedure.patient_id)
    return np.fromiter(conn.scalars(query), dtype=np.int64)


def _store(conn: Connection, found: pd.DataFrame) -> None:
    """Insert a batch's findings with the records' keys (one statement, arrays as
    parameters)."""
    if not len(found):
        return
    messages = [None if m is None or m is pd.NA or (isinstance(m, float) and np.isnan(m))
                else str(m) for m in found["message"].to_numpy(dtype=object)]
    conn.execute(_INSERT, {"ids": found["record_id"].to_numpy(dtype=np.int64).tolist(),
                           "rules": [str(r) for r in found["rule"]],
                           "flags": found["exception"].to_numpy(dtype=bool).tolist(),
                           "messages": messages})


def _stored_rows(conn: Connection, patients: np.ndarray) -> pd.DataFrame:
    f = RuleFinding
    return pd.read_sql(select(f.record_id, f.rule, f.exception, f.message, f.performed_at)
                       .where(f.patient_id == _any_of(patients.tolist())), conn)


def _changed(old: pd.DataFrame, new: pd.DataFrame, named: Named) -> np.ndarray:
    """The records whose rows must be rewritten: those the events name (their keys or time
    may have changed) and those whose findings differ from the stored ones."""
    keys = ["record_id", "rule"]
    both = old[[*keys, "exception", "message"]].astype({"rule": object, "message": object}) \
        .merge(new[[*keys, "exception", "message"]].astype({"rule": object, "message": object}),
               on=keys, how="outer", suffixes=("_old", "_new"), indicator=True)
    differs = (both["_merge"] != "both").to_numpy() \
        | (both["exception_old"].astype(bool) != both["exception_new"].astype(bool)).to_numpy() \
        | (both["message_old"].fillna("").astype(str)
           != both["message_new"].fillna("").astype(str)).to_numpy()
    ids = both["record_id"].to_numpy(dtype=np.int64)
    return np.unique(ids[differs | named.covers(ids)])


def _days(at: pd.Series) -> set[date]:
    moments = pd.to_datetime(at, utc=True)
    return {d.date() for d in moments.dt.floor("D")}


#: progress(batches done, batches in all) of a refresh that recomputes findings.
Progress = Callable[[int, int], None]


def _checked(engine: Engine, packs: dict[str, ActivePack], codes: frozenset[str],
             patients: np.ndarray, size: int) -> Iterator[tuple[np.ndarray, pd.DataFrame]]:
    """Each batch of `size` patients with its findings, in order; the next batch is read and
    checked in a worker thread while the caller writes this one (read() opens a connection
    of its own)."""
    def check(chosen: np.ndarray) -> pd.DataFrame:
        if not codes:
            return pd.DataFrame({c: [] for c in batch.COLUMNS})
        part = read(engine, Filters(), codes, chosen)
        return batch.evaluate_many(part.history, part.relief, part.levels, part.wanted, packs)

    chunks = [patients[lo:lo + size] for lo in range(0, len(patients), size)]
    with ThreadPoolExecutor(1, thread_name_prefix="rule-findings-check") as pool:
        ahead: Future[pd.DataFrame] | None = pool.submit(check, chunks[0]) if chunks else None
        for index, chosen in enumerate(chunks):
            assert ahead is not None
            found = ahead.result()
            ahead = pool.submit(check, chunks[index + 1]) if index + 1 < len(chunks) else None
            yield chosen, found


def _recompute(engine: Engine, conn: Connection, packs: dict[str, ActivePack],
               redo: tuple[np.ndarray, Named] | None, size: int,
               progress: Progress | None) -> None:
    """Recompute the findings of these patients (None: every patient) batch by batch; rewrite
    the rows of the records that changed (all of them for a rebuild), then recount the UTC
    days those rows were or now are on (audit.rules.finding_counts)."""
    codes = checked_codes(packs)
    days: set[date] = set()
    if redo is None:
        conn.execute(delete(RuleFinding))
        patients = _all_patients(conn, codes) if codes else np.empty(0, dtype=np.int64)
    else:
        patients = redo[0]
    total = (len(patients) + size - 1) // size
    for done, (chosen, new) in enumerate(_checked(engine, packs, codes, patients, size),
                                         start=1):
        if redo is not None:
            old = _stored_rows(conn, chosen)
            changed = _changed(old, new, redo[1])
            new = new[new["record_id"].isin(changed)]
            old = old[old["record_id"].isin(changed)]
            days |= _days(old["performed_at"]) | _days(new["performed_at"])
            conn.execute(delete(RuleFinding).where(
                RuleFinding.record_id == _any_of(changed.tolist())))
        _store(conn, new)
        if progress is not None:
            progress(done, total)
    finding_counts.recount(conn, None if redo is None else sorted(days))


def findings_built(engine: Engine) -> bool:
    """Whether the stored findings were ever built here (their state row exists): the warmer
    keeps them current only then, so a site that never opened the Coverage page does not pay a
    first build (minutes at 5M) in the background."""
    if engine.dialect.name != "postgresql":
        return False
    with read_session(engine) as session:
        return session.get(RuleFindingState, 1) is not None


def refresh_findings(engine: Engine, force: bool = False,
                     batch_patients: int = BATCH_PATIENTS,
                     progress: Progress | None = None, *, build: bool = True,
                     wait: bool = True) -> int:
    """Bring the stored findings to the current data version (module doc); returns it.
    force: recompute every row whatever the state says (`db rebuild-facts`). `progress` is
    told after each batch of patients recomputed (a first build takes minutes at 5M).
    build=False: FindingsNotReady instead of a full build (nothing is written); wait=False:
    RefreshBusy instead of waiting while another process refreshes them."""
    if batch_patients < 1:
        raise ValueError(f"batch size {batch_patients}: allowed: 1 or more patients")
    _check(engine)
    with read_session(engine) as session:
        rules = _rules(session)
        if not build and not _current_rules(session, rules):
            raise FindingsNotReady(NOT_BUILT)

    def redo(conn: Connection, synced: int | None, now: int) -> None:
        if synced is None and not build:  # the packs changed since the check above
            raise FindingsNotReady(NOT_BUILT)
        conn.execute(text("SET LOCAL jit = off"))
        patients = None if synced is None else _patients_to_redo(conn, synced, now)
        if patients is None and not build:  # so many events that it is all redone
            raise FindingsNotReady("the stored rule findings need a full rebuild: more than "
                                   f"{INCREMENTAL_LIMIT:,} changes since they were kept")
        if patients is not None and not len(patients[0]):
            return
        with read_session(engine) as session:
            packs = load_packs(session)
        _recompute(engine, conn, packs, patients, batch_patients, progress)
        if patients is None:
            conn.execute(text("ANALYZE rule_finding"))
            conn.execute(text("ANALYZE rule_finding_count"))

    return refresh_versioned(engine, RuleFindingState, rules, _LOCK, redo, force=force,
                             wait=wait)


def findings_ready(engine: Engine) -> bool:
    """Whether the stored findings are built for the rule packs as they are now (a refresh
    then only catches up with the records: seconds)."""
    if engine.dialect.name != "postgresql":
        return False
    with read_session(engine) as session:
        return _current_rules(session, _rules(session))


def _current_rules(session: Any, rules: int) -> bool:
    found = session.get(RuleFindingState, 1)
    return found is not None and found.rules == rules


_building = threading.Lock()
_builder: threading.Thread | None = None
_progress: tuple[int, int] | None = None


def build_in_background(engine: Engine) -> bool:
    """Build (or rebuild) the stored findings in a daemon thread of this process, unless one
    already runs here; returns whether one was started. Another process already building
    holds the lock: the thread then leaves it to that one (RefreshBusy) and ends."""
    global _builder
    with _building:
        if _builder is not None and _builder.is_alive():
            return False
        _builder = threading.Thread(target=_build_quietly, args=(engine,), daemon=True,
                                    name="rule-findings-build")
        _builder.start()
        return True


def _build_quietly(engine: Engine) -> None:
    global _progress

    def note(done: int, total: int) -> None:
        global _progress
        _progress = (done, total)

    try:
        refresh_findings(engine, progress=note, wait=False)
    except RefreshBusy:
        LOG.info("another process is building the stored rule findings")
    except Exception as exc:  # a daemon thread: log it; the pages check batch-wise meanwhile
        LOG.warning("building the stored rule findings failed: %s", exc)
    finally:
        _progress = None


def build_progress() -> tuple[int, int] | None:
    """(batches done, batches in all) of this process's background build, None when none
    runs here."""
    return _progress


def build_status(engine: Engine) -> tuple[int, int] | None:
    """None when the findings are ready and no build runs in this process; else (batches
    done, in all) of this process's build, (0, 0) when it runs elsewhere or has not begun."""
    progress = _progress
    if progress is None and findings_ready(engine):
        return None
    return progress or (0, 0)


def wait_for_build(timeout: float | None = None) -> bool:
    """Wait for this process's background build; returns whether none runs any more."""
    thread = _builder
    if thread is not None:
        thread.join(timeout)
        return not thread.is_alive()
    return True
