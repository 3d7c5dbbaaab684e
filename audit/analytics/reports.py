"""`fluoro-audit report`: the dashboards' figures as tables, CSV or JSON (docs/design.md §4).

Each report is built from the same library calls the pages make, so `--format json` gives the
numbers the pages show. A report is a few named DataFrames ("overall", "groups", ...); the
formats only render them.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
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

KINDS = ("compliance", "dose", "drl", "alerts", "events", "complications", "rules")
#: The columns `report drl` shows as a table (JSON and CSV carry every column, basis included).
DRL_TABLE_COLUMNS = ["procedure", "quantity", "figure", "level", "achievable", "rooms",
                     "rooms_with_records", "records", "room_records_min"]
BY_CHOICES = ("physician", "room", "procedure", "month", "weight_band", "bmi_band", "operator")
FORMATS = ("table", "csv", "json")


def build(kind: str, engine: Engine, snap: Snapshot, actor: Actor, filters: Filters,
          by: str | None = None,
          progress: Callable[[int, int], None] | None = None) -> dict[str, pd.DataFrame]:
    """The named tables of one report. `progress(done, total)`: the rule report's batches."""
    require(actor, Permission.VIEW_DASHBOARDS)
    filters.mask(snap)  # unknown names are reported before any work
    if by in ("weight_band", "bmi_band", "operator") and kind not in ("dose", "compliance"):
        raise ValidationFailed([FieldError(
            "by", f"{by} applies to report dose and report compliance, not {kind}")])
    if kind == "complications":
        return _complication_tables(engine, snap, filters, by)
    if kind == "rules":  # practice rules (issue 15): by physician and month always
        if by is not None:
            raise ValidationFailed([FieldError("by", "does not apply to report rules: it "
                                                     "gives each rule by physician and by "
                                                     "month")])
        from audit.rules.report import rule_report

        return rule_report(engine, actor, filters, progress=progress)
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
    if kind == "events":
        return _event_tables(engine, actor, filters, by)
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


def _complication_tables(engine: Engine, snap: Snapshot, filters: Filters,
                         by: str | None) -> dict[str, pd.DataFrame]:
    """`report complications`: the rate overall and per procedure type, physician and month
    (or the one `--by` names), as the Complications page shows them."""
    from audit.analytics import complications as c

    if by is not None and by not in c.BY_CHOICES:
        raise ValidationFailed([FieldError("by", f"report complications groups by "
                                                 f"{', '.join(c.BY_CHOICES)}; not {by}")])
    found = c.read_complications(engine)
    tables = {"overall": c.complication_rates(snap, filters, found)}
    for name in (by,) if by else c.BY_CHOICES:
        tables[f"by_{name}"] = c.complication_rates(snap, filters, found, name)
    return tables


def _event_tables(engine: Engine, actor: Actor, filters: Filters,
                  by: str | None) -> dict[str, pd.DataFrame]:
    """`report events`: the figures from the C-arm's irradiation events (period only: a dose
    report knows no physician, and its procedure type is grouped already)."""
    from audit.analytics import events

    if by:
        raise ValidationFailed([FieldError(
            "by", "does not apply to report events: its tables are per procedure type")])
    period = {"date_from": filters.start, "date_to": filters.before}
    return {"pulsed_use": events.pulsed_use(engine, actor, **period),
            "pulse_rates": events.pulse_rates(engine, actor, **period),
            "events_per_procedure": events.events_per_procedure(engine, actor, **period),
            "split_reports": events.split_reports(engine, actor, **period)}


#: Columns that count something (records, rooms, alerts, ids): written as integers in JSON and
#: CSV even where pandas made them floats (a missing value in an integer column makes it float,
#: and "12.0 records" reads as a measurement). Names ending in "_n" count records too.
COUNT_COLUMNS = frozenset({
    "eligible", "compliant", "excepted", "non_compliant", "records", "rooms",
    "rooms_with_records", "room_records_min", "min_rooms", "min_room_records", "procedures",
    "open", "acknowledged", "withdrawn", "total", "raised", "srdl", "cumulative",
    "investigation", "alerts", "alert_id", "procedure_id", "reports", "fluoro_events",
    "form_recorded", "events", "record_id", "with_complication", "complications", "severe",
    "radiation_free", "contrast_reaction", "vasovagal_reaction", "dural_puncture",
    "nerve_injury", "hematoma", "infection", "other"})


def _is_count(column: str) -> bool:
    return column in COUNT_COLUMNS or column.endswith("_n")


def _plain(value: Any) -> Any:
    """One cell as JSON: null for every missing value (NaN, NaT, pd.NA, inf), Python numbers,
    ISO 8601 times, lists and dicts cell by cell.

    Missing values are tested first: pd.NaT is an instance of datetime, and its isoformat()
    is the string "NaT", which a JSON reader takes for text."""
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_plain(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, pd.Timestamp | datetime | date):
        return value.isoformat()
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value


def with_integer_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with every count column (COUNT_COLUMNS) as a nullable integer: 12, not 12.0;
    a missing count stays missing. A column holding a fraction is left as it is."""
    frame = frame.copy()
    for column in frame.columns:
        if not _is_count(str(column)) or pd.api.types.is_integer_dtype(frame[column]):
            continue
        numbers = pd.to_numeric(frame[column], errors="coerce")
        present = numbers.notna()
        if present.sum() != frame[column].notna().sum():
            continue  # text in a count column: not ours to change
        if (numbers[present] % 1 == 0).all():
            frame[column] = numbers.astype("Int64")
    return frame


def records_of(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A DataFrame as JSON-ready records (nan/NaT -> null, numpy -> Python, counts as
    integers)."""
    return [{str(k): _plain(v) for k, v in row.items()}
            for row in with_integer_counts(frame).to_dict("records")]


def _csv_cell(value: Any) -> Any:
    """A cell as the CSV shows it: times in ISO 8601 (as in JSON), lists ";"-joined (as in
    exports), missing values empty."""
    if isinstance(value, list | tuple | np.ndarray):
        return ";".join(str(_plain(v)) for v in value)
    plain = _plain(value)
    return "" if plain is None else plain


def csv_text(frame: pd.DataFrame) -> str:
    """One table as CSV: a header, then its rows, counts as integers."""
    shown = with_integer_counts(frame)
    for column in shown.columns:
        if not (pd.api.types.is_numeric_dtype(shown[column])
                and not pd.api.types.is_bool_dtype(shown[column])):
            shown[column] = [_csv_cell(v) for v in shown[column]]
    out = io.StringIO()
    shown.to_csv(out, index=False, lineterminator="\n")
    return out.getvalue()


def csv_sections(tables: dict[str, pd.DataFrame]) -> str:
    """Every table as CSV, each its own: a report of one table is plain CSV; of several, each
    table follows a line "# NAME" and a blank line separates them. Never one table of all of
    them: their columns differ, and a union fills the gaps with NaN, which turns counts into
    floats and mixes rows of different meaning."""
    if len(tables) == 1:
        return csv_text(next(iter(tables.values())))
    return "\n".join(f"# {name}\n{csv_text(frame)}" for name, frame in tables.items())


def write_csv_files(kind: str, tables: dict[str, pd.DataFrame],
                    folder: Path) -> list[dict[str, Any]]:
    """Each table of a report in its own file, FOLDER/<kind>_<table>.csv, for a spreadsheet to
    open as it is. Each file is written beside its target and renamed into place, so a reader
    never sees half a file. Returns what was written: file, table, rows."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in tables.items():
        target = folder / f"{kind}_{name}.csv"
        partial = target.with_name(f".{target.name}.partial")
        partial.write_text(csv_text(frame), encoding="utf-8", newline="")
        os.replace(partial, target)
        written.append({"file": str(target), "table": name, "rows": len(frame)})
    return written


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
        # allow_nan=False: a NaN or Infinity that slipped past _plain fails here instead of
        # reaching a reader as invalid JSON.
        return json.dumps(payload, ensure_ascii=False, indent=1, allow_nan=False)
    if fmt == "csv":
        return csv_sections(tables)
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
