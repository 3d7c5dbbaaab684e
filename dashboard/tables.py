"""Every table of the audit pages goes through `show()` (issue 12): headers in words with units,
numbers for people, enumerated values as their labels, times without "+00:00", and nothing
where a value is missing.

How: the frame keeps its internal column names (the tests and the library speak them); what is
drawn is set by st.column_config. `prepare()` changes the values that no column format can
(enum values to labels, times to local text, shares to percentages, setting names in library
text to words); `column_config()` names and formats each column from dashboard.labels. Numbers
use printf formats with fixed decimals per quantity and thousands separators ("%,.2f"), never
"%g" (which writes 3.05e+04); missing values show as nothing (`placeholder=""`), not "None".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import streamlit as st

from audit import vocab
from dashboard import labels, state

#: What a missing value shows (Streamlit's default is a grey "None").
EMPTY = ""
#: Columns holding moments (datetime values; text is already as shown), and days.
TIME_COLUMNS = frozenset({"performed_at", "latest", "acknowledged_at", "window_start",
                          "window_end", "created_at", "updated_at", "occurred_at"})
DATE_COLUMNS = frozenset({"skin_check_date", "effective_from"})
#: Record numbers are not quantities: no thousands separator.
ID_COLUMNS = frozenset({"record_id", "alert_id", "version"})
#: Library text that may quote setting or quantity names (humanised).
LIBRARY_TEXT = frozenset({"source", "basis", "threshold_source", "details", "figure", "note",
                          "published", "withdrawn_reason"})
#: Columns whose header has a glossary tooltip.
COLUMN_HELP: dict[str, str] = {
    "drl": "DRL", "typical": "Typical value", "achievable": "Achievable dose",
    "published_median": "Published value", "dap_gycm2": "KAP", "air_kerma_mgy": "Ka,r",
    "srdl": "SRDL", "investigation": "Investigation level", "cumulative": "Cumulative dose",
    "lcl": "Control limits", "ucl": "Control limits", "ci_low": "95% CI", "ci_high": "95% CI",
    "p75": "Percentile", "p5": "Percentile", "p95": "Percentile",
}


def display_zone() -> tuple[ZoneInfo | None, str]:
    """The zone times are shown in: the browser's, as on the Records page; else UTC."""
    zone = state.user_zone()
    return (zone, zone.key) if zone is not None else (None, "UTC")


def local_text(value: Any, zone: ZoneInfo | None, *, day: bool = False) -> str | None:
    """A moment as "2026-03-01 08:30" in `zone` (UTC when None; a moment without a zone is
    UTC, as stored), a day as "2026-03-01"; text as it is; missing -> None."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, datetime):
        if day:
            return value.date().isoformat()
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(zone or UTC).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def format_quantity(value: Any, quantity: str | None) -> str | None:
    """One dose value as text with its unit ("527.00 Gy·cm²"), for tables whose rows mix
    quantities; missing -> None."""
    if value is None or pd.isna(value):
        return None
    key = labels.quantity_key(quantity)
    decimals = labels.DECIMALS.get(key or "", 2)
    unit = labels.unit_of(key)
    text = f"{float(value):,.{decimals}f}"
    return f"{text} {unit}" if unit else text


def with_units(frame: pd.DataFrame, columns: Iterable[str],
               quantity_column: str = "quantity") -> pd.DataFrame:
    """`columns` as text with each row's unit, where the rows are of different quantities."""
    out = frame.copy()
    for column in columns:
        if column in out.columns:
            out[column] = [format_quantity(v, q) for v, q in
                           zip(out[column], out[quantity_column], strict=True)]
    return out


def _is_text(series: pd.Series) -> bool:
    """Python objects or pandas' string dtype (the default for text in pandas 3)."""
    return series.dtype == object or pd.api.types.is_string_dtype(series.dtype)


def _numbers_only(series: pd.Series) -> bool:
    return all(v is None or (isinstance(v, int | float) and not isinstance(v, bool))
               for v in series)


def _is_time(series: pd.Series) -> bool:
    if pd.api.types.is_datetime64_any_dtype(series):
        return True
    if series.dtype == object and series.name in TIME_COLUMNS | DATE_COLUMNS:
        return any(isinstance(v, date) for v in series)
    return False


def prepare(frame: pd.DataFrame, *, enums: Mapping[str, Any] | None = None,
            zone: ZoneInfo | None = None) -> pd.DataFrame:
    """The values as drawn. `enums` maps a column to its vocabulary (or a dict of labels, or a
    function), beyond the columns dashboard.labels.ENUM_COLUMNS knows."""
    out = frame.copy()
    chosen = {**labels.ENUM_COLUMNS, **(enums or {})}
    for column in out.columns:
        series = out[column]
        how = chosen.get(column)
        if how is not None and _is_text(series):
            if isinstance(how, type) and issubclass(how, vocab.Vocabulary):
                out[column] = series.map(lambda v, e=how: labels.value_label(e, v))
            elif isinstance(how, Mapping):
                out[column] = series.map(lambda v, m=how: m.get(v, v))
            else:
                out[column] = series.map(how)
        elif _is_time(series):
            day = column in DATE_COLUMNS
            out[column] = [local_text(v, zone, day=day) for v in series]
        elif series.dtype == object and _numbers_only(series) and (
                column in labels.COUNT_COLUMNS or column in labels.DECIMALS):
            out[column] = pd.to_numeric(series)  # e.g. a count with None where unknown
        elif column in labels.SHARE_COLUMNS and pd.api.types.is_numeric_dtype(series):
            out[column] = series * 100
        elif column in LIBRARY_TEXT and _is_text(series):
            out[column] = series.map(labels.humanize)
    return out


def number_format(column: str, dtype: Any, quantity: str | None = None) -> str:
    """A printf format for a numeric column: fixed decimals, thousands separators."""
    if column in ID_COLUMNS:
        return "%d"
    if column in labels.SHARE_COLUMNS:
        return "%.1f%%"
    if column in labels.RATIO_COLUMNS:
        return "%.2f×"
    if column.endswith("_per_100"):
        return "%.2f"
    if column in labels.COUNT_COLUMNS or pd.api.types.is_integer_dtype(dtype):
        return "%,d"
    key = labels.quantity_key(column)
    if key not in labels.DECIMALS:
        for q in labels.QUANTITIES:  # dose_stats columns: dap_gycm2_median, ...
            if column.startswith(f"{q}_"):
                key = q
        if column in labels.QUANTITY_COLUMNS:
            key = labels.quantity_key(quantity)
    decimals = labels.DECIMALS.get(key or "", 2)
    return f"%,.{decimals}f"


def column_config(frame: pd.DataFrame, *, quantity: str | None = None,
                  names: Mapping[str, str] | None = None,
                  formats: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Every column's header, format and glossary tooltip."""
    config: dict[str, Any] = {}
    for column in frame.columns:
        name = str(column)
        label = (names or {}).get(name) or labels.column_label(name, quantity)
        term = COLUMN_HELP.get(name)
        tip = labels.glossary(term) if term else None
        dtype = frame[column].dtype
        if pd.api.types.is_bool_dtype(dtype):
            config[name] = st.column_config.CheckboxColumn(label, help=tip)
        elif pd.api.types.is_numeric_dtype(dtype):
            fmt = (formats or {}).get(name) or number_format(name, dtype, quantity)
            config[name] = st.column_config.NumberColumn(label, help=tip, format=fmt)
        else:
            config[name] = st.column_config.TextColumn(label, help=tip)
    return config


def show(frame: pd.DataFrame, *, quantity: str | None = None,
         names: Mapping[str, str] | None = None, formats: Mapping[str, str] | None = None,
         enums: Mapping[str, Any] | None = None, height: int | str = "auto",
         container: Any = None, **options: Any) -> Any:
    """Draw `frame` as a table for people (see the module doc); `options` go to st.dataframe
    (key, on_select, selection_mode, width)."""
    shown = prepare(frame, enums=enums, zone=display_zone()[0])
    target = container if container is not None else st
    options.setdefault("width", "stretch")
    return target.dataframe(
        shown, hide_index=True, height=height, placeholder=EMPTY,
        column_config=column_config(shown, quantity=quantity, names=names, formats=formats),
        **options)
