"""Compliance with the practice rules over a period: `fluoro-audit report rules` and the
Coverage and safeguards page call `rule_report`, so they show the same figures.

Every final record in the period is checked (CSV imports included: they were not blocked at
entry) against its patient's history, with the packs in force on its day. Set-based: one query
reads the period's records and their patients' earlier ones with their follow-ups, one more
their levels; the checks then run in memory as array operations (audit.rules.batch), with the
same findings as evaluate.check per record (tests/rules/test_batch_rules.py).

A rule's compliance rate is (eligible - exceptions) / eligible, with a Wilson 95% interval
(audit.analytics.quantiles.wilson), overall, by physician and by month (UTC).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, Select, String, select, type_coerce

from audit.analytics.quantiles import wilson
from audit.auth import Actor, Permission, require
from audit.filters import Filters
from audit.rules import batch
from audit.rules.history import LOOKBACK, history_query
from audit.rules.packs import RULE_PACK, RULE_TITLES
from audit.rules.store import load_packs
from audit.storage.engine import read_session
from audit.storage.models import Physician, Procedure, ProcedureLevel

GROUPS = ("physician", "month")
COLUMNS = ["record_id", "performed_at", "procedure", "physician", "month", "rule", "pack",
           "exception", "message"]
EXCEPTION_COLUMNS = ["record_id", "performed_at", "procedure", "physician", "rule", "pack",
                     "message"]


def findings(engine: Engine, filters: Filters) -> pd.DataFrame:
    """One row per (record in the period, rule that applies to it): record_id, performed_at,
    procedure, physician, month, rule, pack, exception (bool), message. Set-based
    (audit.rules.batch): the same findings as evaluate.check per record, without a Python
    loop per record."""
    chosen = select(Procedure.id).where(*filters.where())
    with read_session(engine) as session:
        packs = load_packs(session)
        if not any(p.enabled for p in packs.values()):
            return _frame([])
        query = period_history(filters, chosen, raw_time=True)
        connection = session.connection()
        history = pd.read_sql(query, connection)
        wanted = np.array(session.scalars(chosen).all(), dtype=np.int64)
        levels = pd.read_sql(select(ProcedureLevel.procedure_id, ProcedureLevel.position,
                                    ProcedureLevel.level)
                             .where(ProcedureLevel.procedure_id.in_(chosen)), connection)
    levels = levels.sort_values(["procedure_id", "position"], kind="stable")  # not in SQL
    relief = history[["id", "relief_percent", "relief_days"]].dropna() \
        .rename(columns={"id": "procedure_id"})
    history = history.drop_duplicates("id").drop(columns=["relief_percent", "relief_days"])
    found = batch.evaluate_many(history, relief, levels, wanted, packs)
    return found if len(found) else _frame([])


def period_history(filters: Filters, chosen: Select[Any], raw_time: bool = False) -> Select[Any]:
    """The final records of the chosen records' patients from LOOKBACK before the period to
    its end, with follow-ups (one row each) and the physician's name (unordered: a sort of
    the whole result costs the database more than numpy). raw_time: performed_at as the driver
    gives it (SQLite's text, parsed by pandas in one pass instead of a Python call a row)."""
    patients = select(Procedure.patient_id).where(Procedure.id.in_(chosen))
    query = history_query().add_columns(Physician.name.label("physician")) \
        .join(Physician, Physician.id == Procedure.physician_id) \
        .where(Procedure.patient_id.in_(patients))
    if raw_time:
        query = query.with_only_columns(*[type_coerce(Procedure.performed_at, String)
                                          .label("performed_at") if c.name == "performed_at"
                                          else c for c in query.selected_columns])
    if filters.start is not None:
        query = query.where(Procedure.performed_at >= filters.start - LOOKBACK)
    if filters.before is not None:
        query = query.where(Procedure.performed_at < filters.before)
    return query


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=COLUMNS)


def _rates(found: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    if found.empty:
        return pd.DataFrame(columns=[*keys, "eligible", "exceptions", "compliant",
                                     "compliance_rate", "ci_low", "ci_high"])
    grouped = found.groupby(keys, sort=True)["exception"].agg(["size", "sum"]).reset_index()
    grouped = grouped.rename(columns={"size": "eligible", "sum": "exceptions"})
    grouped["exceptions"] = grouped["exceptions"].astype(int)
    grouped["compliant"] = grouped["eligible"] - grouped["exceptions"]
    eligible = grouped["eligible"].to_numpy(dtype=np.float64)
    grouped["compliance_rate"] = grouped["compliant"] / eligible
    low, high = wilson(grouped["compliant"].to_numpy(dtype=np.float64), eligible)
    grouped["ci_low"], grouped["ci_high"] = low, high
    return grouped


def rule_report(engine: Engine, actor: Actor, filters: Filters) -> dict[str, pd.DataFrame]:
    """The tables of `report rules`: "rules" (each rule's eligible records, exceptions and
    compliance with its 95% interval), "by_physician", "by_month" and "exceptions" (the records
    behind them)."""
    require(actor, Permission.VIEW_DASHBOARDS)
    found = findings(engine, filters)
    overall = _rates(found, ["rule"])
    overall.insert(1, "pack", [RULE_PACK[r] for r in overall["rule"]])
    overall.insert(2, "title", [RULE_TITLES[r] for r in overall["rule"]])
    exceptions = found[found["exception"].astype(bool)].sort_values(["performed_at",
                                                                     "record_id"])
    return {"rules": overall.reset_index(drop=True),
            "by_physician": _rates(found, ["rule", "physician"]),
            "by_month": _rates(found, ["rule", "month"]),
            "exceptions": exceptions[EXCEPTION_COLUMNS].reset_index(drop=True)}
