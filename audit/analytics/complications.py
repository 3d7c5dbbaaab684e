"""Complication rates per procedure type, physician and month (issue 15), for the
Complications page and `fluoro-audit report complications`.

A rate is procedures with at least one complication over procedures (final records under the
filters), with a Wilson 95% interval as for compliance. A complication counts for the
procedure it was recorded on, whenever it was recorded: one noted at a follow-up call weeks
later raises the rate of the procedure's month, type and physician. Voided complications do
not count. Complications live in their own table (not in the analysis frame), so they are
read here and matched to the frame's records by id.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy import Engine, select

from audit.analytics.grouping import group_codes
from audit.analytics.quantiles import wilson
from audit.analytics.snapshot import Snapshot
from audit.filters import Filters
from audit.storage.models import Complication
from audit.vocab import ComplicationKind, ComplicationSeverity, RecordStatus

BY_CHOICES = ("procedure", "physician", "month")


def read_complications(engine: Engine) -> pd.DataFrame:
    """Every complication not voided: procedure_id, kind, severity, timing, complication_id
    (in the order they were recorded)."""
    with engine.connect() as conn:
        rows = conn.execute(select(Complication.procedure_id, Complication.kind,
                                   Complication.severity, Complication.timing, Complication.id)
                            .where(Complication.status == RecordStatus.FINAL.value)
                            .order_by(Complication.id)).all()
    return pd.DataFrame(rows, columns=["procedure_id", "kind", "severity", "timing",
                                       "complication_id"])


def complication_rates(snap: Snapshot, filters: Filters, complications: pd.DataFrame,
                       by: str | None = None) -> pd.DataFrame:
    """Per group (or overall): procedures, procedures with a complication, complications,
    severe ones, the rate with its 95% interval, and the count of each kind."""
    mask = filters.mask(snap)
    ids = snap.records["id"].to_numpy()
    codes, names = group_codes(snap, by)
    size = max(len(names), 1)
    procedures = np.bincount(codes[mask], minlength=size)[:size]
    events = complications[complications["procedure_id"].isin(ids[mask])]
    position = pd.Series(np.arange(len(ids)), index=ids)
    rows = position.reindex(events["procedure_id"].to_numpy()).to_numpy().astype(np.int64)
    event_codes = codes[rows]
    with_one = np.bincount(codes[np.unique(rows)], minlength=size)[:size]
    total = np.bincount(event_codes, minlength=size)[:size]
    severe = np.bincount(event_codes[(events["severity"] ==
                                      ComplicationSeverity.SEVERE.value).to_numpy()],
                         minlength=size)[:size]
    out = pd.DataFrame({by or "group": names, "procedures": procedures,
                        "with_complication": with_one, "complications": total,
                        "severe": severe})
    with np.errstate(invalid="ignore", divide="ignore"):
        out["complication_rate"] = np.where(procedures > 0,
                                            with_one / np.maximum(procedures, 1), np.nan)
    low, high = wilson(with_one.astype(np.float64), procedures.astype(np.float64))
    out["ci_low"], out["ci_high"] = low, high
    for kind in ComplicationKind:
        out[kind.value] = np.bincount(event_codes[(events["kind"] == kind.value).to_numpy()],
                                      minlength=size)[:size]
    return out[out["procedures"] > 0].reset_index(drop=True)


def complication_list(snap: Snapshot, filters: Filters, complications: pd.DataFrame,
                      limit: int | None = None) -> pd.DataFrame:
    """The complications behind the rates: record, date, procedure, physician, kind, severity,
    when recorded; oldest first, and with `limit` only the newest `limit` of them (by date,
    then record and complication number), as a page shows them."""
    from audit.analytics.grouping import record_names

    mask = filters.mask(snap)
    records = snap.records[mask]
    chosen = complications[complications["procedure_id"].isin(records["id"])]
    names = record_names(snap, records).drop(columns=["site", "room"])
    out = chosen.merge(names, left_on="procedure_id", right_on="record_id")
    out = out.sort_values(["performed_at", "record_id", "complication_id"], kind="stable")
    if limit is not None:
        out = out.tail(limit)
    return out[["record_id", "performed_at", "procedure", "physician", "kind", "severity",
                "timing"]].reset_index(drop=True)
