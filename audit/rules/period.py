"""A period's records for the rule report, read patient-batch by patient-batch (issue 16).

Why batches of patients: a record's findings depend only on its own patient's records, their
follow-ups and levels (audit.rules.batch groups every history rule by patient, or by patient
and region; nothing reads another patient), so the report can check a few thousand patients,
keep their counts and exceptions, and drop their rows before reading the next ones. The
process then holds one batch, not a year of records with five years of history (1.45 GB for a
year at 1,000,000 records read at once).

How: one query lists the patients with a record under the filters that some pack switched on
can check (sorted ids: 4 bytes a patient); they are cut into batches of `size` patients, and for
each batch one query reads those patients' final records from LOOKBACK before the period to its
end with their follow-ups (flagged `checked` where the record itself is under the filters), one
more the checked records' levels.

Pre-selection by procedure code, because no rule looks at any other: a record of a code no
switched-on pack speaks of has no finding (the LCD packs check their codes, the safeguards
TFESI and ILESI), and the history rules read earlier records of those same codes only (ESI
sessions and repeats, MBB blocks before an RFA, RFA and facet sessions, the first lumbar TFESI).
So neither the patients nor their history need the other codes (a quarter of the demo).
tests/rules/test_batch_rules.py checks the findings against evaluate.check per record, which
reads every code.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    Engine,
    Integer,
    Select,
    String,
    and_,
    any_,
    bindparam,
    case,
    select,
    text,
    type_coerce,
)
from sqlalchemy.dialects import postgresql

from audit.filters import Filters
from audit.rules.history import LOOKBACK, history_query
from audit.rules.packs import ESI_CODES, FACET_CODES
from audit.rules.store import ActivePack, load_packs
from audit.storage.engine import read_session
from audit.storage.models import Physician, Procedure, ProcedureLevel, ProcedureType

#: Patients per batch: about 25,000 history rows on the 5M demo, under 100 MB of the process;
#: 10,000 turned PostgreSQL's plan to a scan of the table per batch (docs/design.md).
BATCH_PATIENTS = 5000
#: The codes the safeguards of 2015 check (audit.rules.batch._safeguards).
SAFEGUARD_CODES = frozenset({"TFESI", "ILESI"})
_PACK_CODES = {"lcd_esi": ESI_CODES, "lcd_facet": FACET_CODES,
               "safeguards_2015": SAFEGUARD_CODES}


def checked_codes(packs: Mapping[str, ActivePack]) -> frozenset[str]:
    """The procedure codes a switched-on pack checks (empty: nothing to check)."""
    return frozenset().union(*(codes for key, codes in _PACK_CODES.items()
                               if key in packs and packs[key].enabled))


@dataclass(frozen=True)
class Batch:
    """One batch of patients, as audit.rules.batch.evaluate_many takes it."""

    history: pd.DataFrame
    relief: pd.DataFrame
    levels: pd.DataFrame
    wanted: np.ndarray


@dataclass(frozen=True)
class Period:
    """The packs, the codes they check and the batches of patients of a period."""

    packs: dict[str, ActivePack]
    codes: frozenset[str]
    batches: list[np.ndarray]


def plan(engine: Engine, filters: Filters, size: int = BATCH_PATIENTS) -> Period:
    """The packs and the period's patients (those with a record a pack checks) in batches of
    `size`, by patient id."""
    if size < 1:
        raise ValueError(f"batch size {size}: allowed: 1 or more patients")
    with read_session(engine) as session:
        packs = load_packs(session)
        codes = checked_codes(packs)
        if not codes:
            return Period(packs, codes, [])
        patients = select(Procedure.patient_id).distinct() \
            .where(*filters.where(), _of_codes(codes)).order_by(Procedure.patient_id)
        ids = np.fromiter(session.scalars(patients), dtype=np.int64)
    return Period(packs, codes, [ids[i:i + size] for i in range(0, len(ids), size)])


def _of_codes(codes: frozenset[str]) -> Any:
    return Procedure.procedure_type_id.in_(
        select(ProcedureType.id).where(ProcedureType.code.in_(sorted(codes))))


def period_history(filters: Filters, chosen: Select[Any] | None = None,
                   raw_time: bool = False) -> Select[Any]:
    """The final records from LOOKBACK before the period to its end, with follow-ups (one row
    each) and the physician's name; with `chosen`, only the chosen records' patients'
    (unordered: a sort of the whole result costs the database more than numpy). raw_time:
    performed_at as the driver gives it (SQLite's text, parsed by pandas in one pass instead
    of a Python call a row)."""
    query = history_query().add_columns(Physician.name.label("physician")) \
        .join(Physician, Physician.id == Procedure.physician_id)
    if chosen is not None:
        query = query.where(Procedure.patient_id.in_(
            select(Procedure.patient_id).where(Procedure.id.in_(chosen))))
    if raw_time:
        query = query.with_only_columns(*[type_coerce(Procedure.performed_at, String)
                                          .label("performed_at") if c.name == "performed_at"
                                          else c for c in query.selected_columns])
    if filters.start is not None:
        query = query.where(Procedure.performed_at >= filters.start - LOOKBACK)
    if filters.before is not None:
        query = query.where(Procedure.performed_at < filters.before)
    return query


def _one_of(column: Any, ids: np.ndarray, dialect: str) -> Any:
    """column IN (ids): on PostgreSQL one array parameter (= ANY), as thousands of
    placeholders cost the driver 0.1 s a query to parse; SQLite takes them (up to 32,766)."""
    values = [int(i) for i in ids]
    if dialect == "postgresql":
        return column == any_(bindparam(None, values, type_=postgresql.ARRAY(Integer)))
    return column.in_(values)


def read(engine: Engine, filters: Filters, codes: frozenset[str],
         patients: np.ndarray) -> Batch:
    """These patients' history (records of `codes` only) with follow-ups and physician, which
    records are checked, and the checked records' levels."""
    checked = and_(*filters.where(), _of_codes(codes))
    with read_session(engine) as session:
        connection = session.connection()
        dialect = connection.dialect.name
        if dialect == "postgresql":  # compiling this plan cost 0.3 s a batch
            connection.execute(text("SET LOCAL jit = off"))
        query = period_history(filters, raw_time=True).add_columns(
            case((checked, 1), else_=0).label("checked")).where(
            _one_of(Procedure.patient_id, patients, dialect))
        history = pd.read_sql(query, connection)
        # the other codes are dropped here, not in SQL: a condition on the type there led
        # PostgreSQL to scan the (type, time) index over every patient (20 s a batch)
        history = history[history["code"].isin(codes)]
        wanted = np.unique(history["id"][history["checked"] == 1].to_numpy(dtype=np.int64))
        levels = pd.read_sql(select(ProcedureLevel.procedure_id, ProcedureLevel.position,
                                    ProcedureLevel.level)
                             .where(_one_of(ProcedureLevel.procedure_id, wanted, dialect)),
                             connection)
    levels = levels.sort_values(["procedure_id", "position"], kind="stable")  # not in SQL
    relief = history[["id", "relief_percent", "relief_days"]].dropna() \
        .rename(columns={"id": "procedure_id"})
    history = history.drop_duplicates("id").drop(
        columns=["relief_percent", "relief_days", "checked"])
    return Batch(history, relief, levels, wanted)


def batches(engine: Engine, filters: Filters, period: Period) -> Iterator[Batch]:
    """Each batch of the period's patients, read when asked for."""
    for patients in period.batches:
        yield read(engine, filters, period.codes, patients)
