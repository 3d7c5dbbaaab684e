"""`fluoro-audit report`: the dashboards' figures as tables, CSV or JSON (docs/design.md §4).

Each report is built from the same library calls the pages make, so `--format json` gives the
numbers the pages show. A report is a few named DataFrames ("overall", "groups", ...); the
formats only render them.
"""

from __future__ import annotations

import io
import json
import math
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from audit.alerts.store import alert_counts, list_alerts, refresh_alerts
from audit.alerts.summary import alert_rates, open_by_patient, open_by_physician
from audit.analytics.compliance import compliance
from audit.analytics.dose_stats import dose_stats
from audit.analytics.reference_levels import local_drls
from audit.analytics.snapshot import Snapshot
from audit.auth import Actor, Permission, require
from audit.errors import FieldError, ValidationFailed
from audit.filters import Filters

KINDS = ("compliance", "dose", "drl", "alerts")
#: The columns `report drl` shows as a table (JSON and CSV carry every column, basis included).
DRL_TABLE_COLUMNS = ["procedure", "quantity", "figure", "level", "achievable", "rooms",
                     "rooms_with_records", "records", "room_records_min"]
BY_CHOICES = ("physician", "room", "procedure", "month", "weight_band")
FORMATS = ("table", "csv", "json")


def build(kind: str, engine: Engine, snap: Snapshot, actor: Actor, filters: Filters,
          by: str | None = None) -> dict[str, pd.DataFrame]:
    """The named tables of one report."""
    require(actor, Permission.VIEW_DASHBOARDS)
    filters.mask(snap)  # unknown names are reported before any work
    if by == "weight_band" and kind not in ("dose", "compliance"):
        raise ValidationFailed([FieldError(
            "by", f"weight_band applies to report dose and report compliance, not {kind}")])
    if kind == "compliance":
        tables = {"overall": compliance(snap, filters)}
        if by:
            tables["groups"] = compliance(snap, filters, by)
        return tables
    if kind == "dose":
        keys = ("procedure",) if by in (None, "procedure") else ("procedure", by)
        return {"groups": dose_stats(snap, filters, by=keys)}
    if kind == "drl":
        if by:
            raise ValidationFailed([FieldError(
                "by", "does not apply to report drl: local DRLs are per procedure, over every "
                      "room in the period")])
        return {"groups": local_drls(snap, filters).drop(columns=["type_id"])}
    if kind == "alerts":
        refresh_alerts(engine, snap)
        alerts = list_alerts(engine, actor, filters)
        tables = {"overall": alert_counts(engine, actor, filters),
                  "rates": alert_rates(engine, actor, snap, filters),
                  "by_physician": open_by_physician(engine, actor, snap, filters),
                  "by_patient": open_by_patient(engine, actor, filters)}
        if by:
            months = [f"{t:%Y-%m}" for t in alerts["performed_at"]]  # alerts, not records
            tables["groups"] = (alerts.assign(month=months).groupby([by, "kind", "status"])
                                .size().rename("alerts").reset_index())
        else:
            tables["alerts"] = alerts.drop(columns=["threshold_source"])
        return tables
    raise ValidationFailed([FieldError("report", f"unknown report {kind!r}; allowed: "
                                                 f"{', '.join(KINDS)}")])


def _plain(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, pd.Timestamp | datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple | np.ndarray):
        return [_plain(v) for v in value]
    if value is pd.NaT or value is None:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value


def records_of(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A DataFrame as JSON-ready records (nan/NaT -> null, numpy -> Python)."""
    return [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict("records")]


def render(kind: str, tables: dict[str, pd.DataFrame], fmt: str, filters: Filters,
           by: str | None) -> str:
    if fmt == "json":
        payload: dict[str, Any] = {
            "report": kind, "by": by,
            "filters": {"from": _plain(filters.first_day), "to": _plain(filters.last_day),
                        "sites": list(filters.sites), "rooms": list(filters.rooms),
                        "physicians": list(filters.physicians),
                        "procedures": list(filters.procedures)},
        }
        for name, frame in tables.items():
            rows = records_of(frame)
            payload[name] = rows[0] if name == "overall" and kind == "compliance" else rows
        return json.dumps(payload, ensure_ascii=False, indent=1)
    if fmt == "csv":
        frames = []
        for name, frame in tables.items():
            frames.append(frame.assign(table=name) if len(tables) > 1 else frame)
        out = io.StringIO()
        pd.concat(frames, ignore_index=True).to_csv(out, index=False, lineterminator="\n")
        return out.getvalue()
    parts = [f"{kind} report: {filters.describe()}"]
    for name, frame in tables.items():
        shown = frame[DRL_TABLE_COLUMNS] if kind == "drl" and len(frame) else frame
        parts.append(f"\n{name}:")
        parts.append(shown.to_string(index=False, float_format=lambda x: f"{x:.4g}")
                     if len(frame) else "(none)")
        if kind == "drl" and len(frame):
            parts.append(_drl_notes(frame))
    return "\n".join(parts) + "\n"


def _drl_notes(frame: pd.DataFrame) -> str:
    """Below `report drl`'s table: each figure's basis and published values, the thresholds."""
    lines = ["", "basis (ICRP 135; local DRL = 75th percentile of room medians, typical value = "
             "median of the pooled records):"]
    for row in frame.itertuples():
        published = f"\n    published: {row.published}" if row.published else ""
        lines.append(f"  {row.procedure} {row.quantity}: {row.basis}{published}")
    lines.append(f"thresholds: {'; '.join(sorted(set(frame['source'])))}")
    return "\n".join(lines)
