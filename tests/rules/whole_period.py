"""The rule report as it was before issue 16 (session 8): the whole period read at once, the
findings of every record in one frame, the rates grouped from it. Kept here, unchanged, as the
reference the batched report (audit.rules.report) must equal."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy import Engine, select

from audit.analytics.quantiles import wilson
from audit.filters import Filters
from audit.rules import batch
from audit.rules.packs import RULE_PACK, RULE_TITLES
from audit.rules.period import period_history
from audit.rules.report import EXCEPTION_COLUMNS
from audit.rules.store import load_packs
from audit.storage.engine import read_session
from audit.storage.models import Procedure, ProcedureLevel


def findings(engine: Engine, filters: Filters) -> pd.DataFrame:
    chosen = select(Procedure.id).where(*filters.where())
    with read_session(engine) as session:
        packs = load_packs(session)
        if not any(p.enabled for p in packs.values()):
            return pd.DataFrame(columns=batch.COLUMNS)
        connection = session.connection()
        history = pd.read_sql(period_history(filters, chosen, raw_time=True), connection)
        wanted = np.array(session.scalars(chosen).all(), dtype=np.int64)
        levels = pd.read_sql(select(ProcedureLevel.procedure_id, ProcedureLevel.position,
                                    ProcedureLevel.level)
                             .where(ProcedureLevel.procedure_id.in_(chosen)), connection)
    levels = levels.sort_values(["procedure_id", "position"], kind="stable")
    relief = history[["id", "relief_percent", "relief_days"]].dropna() \
        .rename(columns={"id": "procedure_id"})
    history = history.drop_duplicates("id").drop(columns=["relief_percent", "relief_days"])
    found = batch.evaluate_many(history, relief, levels, wanted, packs)
    return found if len(found) else pd.DataFrame(columns=batch.COLUMNS)


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


def rule_report(engine: Engine, filters: Filters) -> dict[str, pd.DataFrame]:
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
