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

A row changed behind the app's back stays wrong until its patient changes: `fluoro-audit db
rebuild-facts` rebuilds this table too. PostgreSQL only, as the record facts.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, Integer, any_, bindparam, delete, select, text
from sqlalchemy.dialects import postgresql

from audit.analytics.derived import refresh_versioned
from audit.analytics.snapshot import INCREMENTAL_LIMIT, _changed_records
from audit.errors import NeedsPostgreSQL
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
    for done, lo in enumerate(range(0, len(patients), size), start=1):
        chosen = patients[lo:lo + size]
        if codes:
            part = read(engine, Filters(), codes, chosen)
            new = batch.evaluate_many(part.history, part.relief, part.levels, part.wanted,
                                      packs)
        else:
            new = pd.DataFrame({c: [] for c in batch.COLUMNS})
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
                     progress: Progress | None = None) -> int:
    """Bring the stored findings to the current data version (module doc); returns it.
    force: recompute every row whatever the state says (`db rebuild-facts`). `progress` is
    told after each batch of patients recomputed (a first build takes minutes at 5M)."""
    if batch_patients < 1:
        raise ValueError(f"batch size {batch_patients}: allowed: 1 or more patients")
    _check(engine)
    with read_session(engine) as session:
        rules = _rules(session)

    def redo(conn: Connection, synced: int | None, now: int) -> None:
        conn.execute(text("SET LOCAL jit = off"))
        patients = None if synced is None else _patients_to_redo(conn, synced, now)
        if patients is not None and not len(patients[0]):
            return
        with read_session(engine) as session:
            packs = load_packs(session)
        _recompute(engine, conn, packs, patients, batch_patients, progress)
        if patients is None:
            conn.execute(text("ANALYZE rule_finding"))
            conn.execute(text("ANALYZE rule_finding_count"))

    return refresh_versioned(engine, RuleFindingState, rules, _LOCK, redo, force=force)
