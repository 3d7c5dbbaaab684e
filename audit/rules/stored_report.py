"""The rule report from the stored findings (audit.rules.findings_store), on PostgreSQL: the
same tables as the batched report (audit.rules.report), read with a few SQL queries.

Why: at 5M records the batched report checked every record of the period against its
patient's history (32 s a month, 465 s for every record). The findings are stored once and
kept current with their counts per UTC day and month (audit.rules.finding_counts), so the
report is one GROUP BY GROUPING SETS over a few thousand count rows (each rule; rule x
physician; rule x UTC month; over every finding where the counts cannot answer the filters)
and, for the exceptions, the newest `exceptions_per_rule` of each
rule by the partial index on (rule, performed_at, record_id) of the exceptions (a LATERAL ...
LIMIT per rule), after bringing the table current. The rates, Wilson intervals and the tables'
order and types are made by the batched report's own code (report._Tally, report._in_order),
so both give equal frames (tests/rules/test_findings_store.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    Connection,
    Date,
    Engine,
    Select,
    String,
    case,
    cast,
    column,
    func,
    select,
    true,
    tuple_,
    values,
)

from audit.analytics.daily_summary import period_rows
from audit.filters import Filters, Target
from audit.rules import finding_counts
from audit.rules.findings_store import Progress, refresh_findings
from audit.rules.packs import RULE_PACK
from audit.storage.models import Physician, ProcedureType, RuleFinding, RuleFindingCount

F = RuleFinding
#: The columns Filters apply to (no status: the table holds final records only).
TARGET = Target(F.performed_at, F.record_id, F.site_id, F.room_id, F.physician_id,
                F.procedure_type_id, F.technologist_id, F.patient_id)
#: The day and month counts' keys (finding_counts.answerable: no technologist or patient).
C = RuleFindingCount
COUNTED = Target(C.day, None, C.site_id, C.room_id, C.physician_id, C.procedure_type_id)


def _text(values: Any) -> pd.Series:
    return pd.Series(pd.array([str(v) for v in values], dtype="str"))


def _grouped(conn: Connection, filters: Filters, found: list[Any]) -> Select[Any]:
    """(g, rule, physician_id, month, size, sum) per rule, rule x physician, rule x month:
    from the day and month counts where they hold the filters, else from every finding."""
    if finding_counts.answerable(filters):
        c = RuleFindingCount
        month = cast(func.date_trunc("month", c.day), Date)
        return (select(func.grouping(c.physician_id, month), c.rule, c.physician_id, month,
                       func.sum(c.eligible), func.sum(c.exceptions))
                .where(period_rows(filters, c), *found)
                .group_by(func.grouping_sets(tuple_(c.rule), tuple_(c.rule, c.physician_id),
                                             tuple_(c.rule, month))))
    return (select(func.grouping(F.physician_id, F.month), F.rule, F.physician_id, F.month,
                   func.count(), func.sum(case((F.exception, 1), else_=0)))
            .where(*filters.where(TARGET, names=False), *found)
            .group_by(func.grouping_sets(tuple_(F.rule), tuple_(F.rule, F.physician_id),
                                         tuple_(F.rule, F.month))))


def counts(engine: Engine, filters: Filters) -> dict[str, pd.DataFrame]:
    """Eligible and exception counts per rule, rule x physician (name) and rule x month
    ("YYYY-MM"), as report._Tally.counts holds them (indexed by the keys, size and sum)."""
    with engine.connect() as conn:
        found = filters.id_conditions(conn, COUNTED if finding_counts.answerable(filters)
                                      else TARGET)
        rows: list[Any] = []
        if found is not None:
            rows = conn.execute(_grouped(conn, filters, found)).all()
            names = dict(conn.execute(select(Physician.id, Physician.name)).all())
    frame = pd.DataFrame([tuple(r) for r in rows],
                         columns=["g", "rule", "physician_id", "month", "size", "sum"])
    out: dict[str, pd.DataFrame] = {}
    for name, g, key, label in (("rules", 3, None, None),
                                ("by_physician", 1, "physician_id", "physician"),
                                ("by_month", 2, "month", "month")):
        part = frame[frame["g"] == g]
        columns: dict[str, Any] = {"rule": _text(part["rule"])}
        if key == "physician_id":
            columns[label] = _text(names[int(i)] for i in part[key])
        elif key == "month":
            columns[label] = _text(pd.Timestamp(m).strftime("%Y-%m") for m in part[key])
        columns["size"] = part["size"].to_numpy(dtype=np.int64)
        columns["sum"] = part["sum"].to_numpy(dtype=np.int64)
        keys = [k for k in ("rule", label) if k is not None]
        table = pd.DataFrame(columns)
        # two physicians of one name (never, names are unique) would add up, as in pandas
        out[name] = None if table.empty else table.groupby(keys, sort=False)[["size", "sum"]] \
            .sum().astype(np.int64)
    return out


def exceptions(engine: Engine, filters: Filters, limit: int | None,
               rules: list[str] | None = None) -> pd.DataFrame:
    """The exception rows (report.EXCEPTION_COLUMNS, unordered): every one, or the newest
    `limit` of each rule (of `rules`: those with an exception under the filters, as the counts
    tell; None: every rule). Asking only those matters: a rule without one under the filters
    would read every exception of the rule in the index for none (3 s at 5M records for a
    room and the TFESI, whose facet rules never apply)."""
    columns = [F.record_id, F.performed_at, F.procedure_type_id, F.physician_id, F.rule,
               F.message]
    with engine.connect() as conn:
        found = filters.id_conditions(conn, TARGET)
        if found is None:
            return _exception_frame([])
        # the bare column, as the partial index's predicate says it (IS TRUE misses it)
        where = [F.exception, *filters.where(TARGET, names=False), *found]
        if limit is None:
            inner = select(*columns).where(*where).subquery()
        else:
            wanted = list(RULE_PACK) if rules is None else rules
            if not wanted:
                return _exception_frame([])
            rules_table = values(column("key", String), name="wanted").data(
                [(r,) for r in wanted])
            newest = (select(*columns).where(F.rule == rules_table.c.key, *where)
                      .order_by(F.performed_at.desc(), F.record_id.desc()).limit(limit)
                      .lateral("newest"))
            inner = select(newest).select_from(rules_table).join(newest, true()) \
                .subquery()
        query = (select(inner.c.record_id, inner.c.performed_at,
                        ProcedureType.code.label("procedure"), Physician.name.label("physician"),
                        inner.c.rule, inner.c.message)
                 .join(ProcedureType, ProcedureType.id == inner.c.procedure_type_id)
                 .join(Physician, Physician.id == inner.c.physician_id))
        return _exception_frame(conn.execute(query).all())


def _exception_frame(rows: list[Any]) -> pd.DataFrame:
    frame = pd.DataFrame([tuple(r) for r in rows],
                         columns=["record_id", "performed_at", "procedure", "physician", "rule",
                                  "message"])
    at = pd.to_datetime(frame["performed_at"], utc=True).astype("datetime64[us, UTC]")
    return pd.DataFrame({
        "record_id": frame["record_id"].to_numpy(dtype=np.int64), "performed_at": at,
        "procedure": _text(frame["procedure"]), "physician": _text(frame["physician"]),
        "rule": _text(frame["rule"]), "pack": _text(RULE_PACK[r] for r in frame["rule"]),
        "message": _text(frame["message"])})


def stored(engine: Engine, filters: Filters, limit: int | None,
           progress: Progress | None = None,
           build: bool = True) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """The counts (as counts()) and the exceptions of the stored findings, brought current
    first (`progress`: the batches of patients that recomputes, if any; build=False:
    FindingsNotReady rather than a full build)."""
    refresh_findings(engine, progress=progress, build=build)
    counted = counts(engine, filters)
    overall = counted["rules"]
    rules = [] if overall is None else \
        [str(r) for r, n in zip(overall.index, overall["sum"], strict=True) if n > 0]
    return counted, exceptions(engine, filters, limit, rules)
