"""What the open alerts add up to: rates per 100 procedures, and the open alerts per patient and
per physician.

Why: a count of open alerts says nothing without the number of procedures it comes from (5,008
alerts are 25 per 100 of 20,007 procedures, or 1 per 200 of a million), and a list of thousands
of alerts hides that most belong to a few patients or one physician's technique. The RSO acts
on a patient (inform, book a skin check) or on a physician (review technique), so the open
alerts are grouped the same ways. Counts are GROUP BYs over the alert table alone, filtered
like audit.alerts.store.alert_counts; procedures come from the figures' source under the same
filters (the analysis frame, or SQL where the figures come from SQL: audit.analytics.source).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, false, func, select

from audit import access
from audit.alerts.detection import KINDS_BY_PRIORITY
from audit.alerts.store import ALERTS, alert_counts
from audit.analytics.snapshot import Snapshot
from audit.analytics.source import FigureSource, FrameSource
from audit.auth import Actor, Permission, require
from audit.filters import Filters
from audit.storage.engine import read_session
from audit.storage.models import Alert, Patient
from audit.vocab import AlertStatus

RATE_COLUMNS = ["kind", "procedures", "open", "acknowledged", "withdrawn", "raised",
                "open_per_100", "raised_per_100"]
#: Columns of the per-patient and per-physician tables, after the name.
KIND_COLUMNS = list(KINDS_BY_PRIORITY)


def _per_100(count: np.ndarray | float, procedures: int) -> np.ndarray | float:
    return np.round(100.0 * np.asarray(count, dtype=np.float64) / procedures, 2) \
        if procedures else np.nan * np.asarray(count, dtype=np.float64)


def _figures(found: Snapshot | FigureSource) -> FigureSource:
    return FrameSource(found) if isinstance(found, Snapshot) else found


def alert_rates(engine: Engine, actor: Actor, snap: Snapshot | FigureSource,
                filters: Filters | None = None) -> pd.DataFrame:
    """Per alert kind (most urgent first) and in all: alerts by status and per 100 procedures
    under the filters. `raised` = open + acknowledged (what the records called for, withdrawn
    ones aside); `procedures` = the final records the filters select."""
    require(actor, Permission.VIEW_DASHBOARDS)
    filters = filters or Filters()
    procedures = _figures(snap).procedure_count(filters)
    counts = alert_counts(engine, actor, filters)
    statuses = AlertStatus.values()
    by_kind = (counts.groupby("kind")[statuses].sum() if len(counts)
               else pd.DataFrame(columns=statuses, dtype=int))
    table = by_kind.reindex(list(KINDS_BY_PRIORITY)).fillna(0).astype(int)
    table.loc["all"] = table.sum()
    table = table.rename_axis("kind").reset_index()
    table.insert(1, "procedures", procedures)
    table["raised"] = table["open"] + table["acknowledged"]
    table["open_per_100"] = _per_100(table["open"].to_numpy(), procedures)
    table["raised_per_100"] = _per_100(table["raised"].to_numpy(), procedures)
    return table[RATE_COLUMNS]


def _open_counts(engine: Engine, filters: Filters, key: Any, *,
                 patient: bool = False) -> pd.DataFrame:
    """Open alerts per (key, kind) and the latest performed_at, under the filters; `patient`
    joins the patient table (for a key on it)."""
    query = (select(key, Alert.kind, func.count().label("alerts"),
                    func.max(Alert.performed_at).label("latest"))
             .select_from(Alert).where(Alert.status == AlertStatus.OPEN.value))
    with read_session(engine) as session:
        found = filters.id_conditions(session, ALERTS)
        query = query.where(*filters.where(ALERTS, names=False),
                            *(found if found is not None else [false()]))
        if patient:
            query = query.join(Patient, Patient.id == Alert.patient_id)
        rows = session.execute(query.group_by(key, Alert.kind)).all()
    return pd.DataFrame(rows, columns=["key", "kind", "alerts", "latest"])


def _by_kind(rows: pd.DataFrame) -> pd.DataFrame:
    """(key, kind, alerts, latest) rows as one row per key: a column per kind, open, latest."""
    if rows.empty:
        return pd.DataFrame(columns=["key", *KIND_COLUMNS, "open", "latest"])
    wide = (rows.pivot_table(index="key", columns="kind", values="alerts", aggfunc="sum")
            .reindex(columns=KIND_COLUMNS).fillna(0).astype(int))
    wide.columns.name = None
    wide["open"] = wide[KIND_COLUMNS].sum(axis=1)
    wide["latest"] = rows.groupby("key")["latest"].max()
    return wide.reset_index()


def open_by_patient(engine: Engine, actor: Actor, filters: Filters | None = None,
                    limit: int | None = None) -> pd.DataFrame:
    """Open alerts per patient, most urgent first (SRDL, then cumulative, then how many): one
    conversation with a patient can follow up several alerts. The patient is the MRN for roles
    that may see it, else the pseudonym (audit.access)."""
    require(actor, Permission.VIEW_DASHBOARDS)
    column = access.patient_column(actor)
    table = _by_kind(_open_counts(engine, filters or Filters(), column,
                                        patient=True))
    table = table.rename(columns={"key": "patient"}).sort_values(
        [*KIND_COLUMNS[:2], "open", "latest", "patient"],
        ascending=[False, False, False, False, True], kind="stable")
    table = table.reset_index(drop=True)
    return table.head(limit) if limit is not None else table


def open_by_physician(engine: Engine, actor: Actor, snap: Snapshot | FigureSource,
                      filters: Filters | None = None) -> pd.DataFrame:
    """Open alerts per physician with their procedures under the filters and open alerts per
    100 of them, highest rate first: a physician whose cases keep reaching the investigation
    level needs one review of technique, not one acknowledgement per case. Physicians with
    procedures but no open alert are listed too (the comparison needs them)."""
    require(actor, Permission.VIEW_DASHBOARDS)
    filters = filters or Filters()
    source = _figures(snap)
    procedures = source.procedures_by(filters, "physician")
    counts = _by_kind(_open_counts(engine, filters, Alert.physician_id))
    physicians = source.lookups.physicians
    keys = sorted(set(procedures.index.tolist()) | set(counts["key"].astype(int).tolist()))
    table = counts.set_index(counts["key"].astype(int)).drop(columns="key").reindex(keys)
    table[[*KIND_COLUMNS, "open"]] = table[[*KIND_COLUMNS, "open"]].fillna(0).astype(int)
    table.insert(0, "procedures", procedures.reindex(keys).fillna(0).astype(int).to_numpy())
    table.insert(0, "physician", [str(physicians.get(k, f"#{k}")) for k in keys])
    table["open_per_100"] = [round(100.0 * o / n, 2) if n else np.nan
                             for o, n in zip(table["open"], table["procedures"], strict=True)]
    return (table.sort_values(["open_per_100", "open", "physician"],
                              ascending=[False, False, True], kind="stable", na_position="last")
            .reset_index(drop=True)[["physician", "procedures", *KIND_COLUMNS, "open",
                                     "open_per_100", "latest"]])
