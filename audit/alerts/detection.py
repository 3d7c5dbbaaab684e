"""Which records and patients call for a dose alert: SRDL exceedances, investigation levels and
cumulative dose per patient. Pure: the analysis frame and the settings in, a table of alerts
out; no database is read or written here (audit.alerts.store keeps them).

Alerts are a pure function of the set of final records, the settings and the investigation
levels in force (set at a review from all records: audit.alerts.level_review), computed from
all of them at once; storing them (table `alert`) only gives each one an identity to acknowledge.
That is why the result cannot depend on the order records arrived in. (OpenREM checks a new
study against the patient's earlier studies when it is imported, so a study imported after a
newer one is never summed with it.)

- SRDL: a record with Ka,r, KAP or time at or above its substantial radiation dose level
  (settings srdl_*).
- Investigation: a record above the investigation level of its procedure type: the local
  investigation_percentile (default 99th) of the type's final records, but never below
  investigation_factor x their median, rounded to 3 significant figures. The levels a refresh
  applies are those set at the last review (audit.alerts.level_review), not recomputed with
  every new record. A type with fewer than investigation_min_records records with the
  quantity gets no level (a percentile of a few records is noise); the SRDLs still apply.
  Why a high percentile and not a multiple of the median alone: a multiple flags however many
  cases the spread of dose (patient size, levels treated, operator) puts above it, about 24
  alerts per 100 procedures on realistic data at 3x, too many to review; a percentile flags
  about 1 record in 100 per quantity by construction, whatever the spread (docs/reference.md
  §10).
- KAP is the room-corrected KAP (audit.dosimetry.corrected_kap: the displayed KAP times the
  room's KAP correction factor, which the physicist sets from a calibration) in every rule, as
  in the reference levels and effective dose: a C-arm whose display reads 20% low must not
  hide a high-dose case (issue 11). Ka,r and time are compared as displayed.
- Cumulative: for each record of a patient, the sum of KAP (or Ka,r) over the patient's records
  in the window (t - W, t] (cumulative_window_days; records at the same instant all count). A
  run of consecutive records whose sum reaches the threshold is one episode, identified by the
  patient and the time the threshold was first reached.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from audit.analytics.quantiles import lerp
from audit.analytics.reference_levels import SRDL_SETTINGS
from audit.analytics.snapshot import KAP_CORRECTED, Snapshot
from audit.errors import FieldError, ValidationFailed
from audit.vocab import AlertKind, DoseQuantity

#: Audit entities whose changes can change the alerts (records, thresholds, catalog, and rooms:
#: a room's KAP correction factor scales the KAP every alert compares).
ALERT_INPUTS = ("procedure", "setting", "procedure_type", "room")
CUMULATIVE_SETTINGS = {"dap_gycm2": "cumulative_kap_gycm2",
                       "air_kerma_mgy": "cumulative_air_kerma_mgy"}
INVESTIGATION_SETTINGS: tuple[str, ...] = ("investigation_percentile", "investigation_min_records",
                                           "investigation_factor")
#: Every setting the alerts depend on, in the order the Alerts page lists them.
THRESHOLD_SETTINGS: tuple[str, ...] = (*SRDL_SETTINGS.values(), *INVESTIGATION_SETTINGS,
                                       *CUMULATIVE_SETTINGS.values(), "cumulative_window_days")
#: Bumped whenever the rules in this module change meaning, so stored alerts computed under
#: older rules are recomputed once (audit.alerts.store records it with each refresh).
RULES_VERSION = 4
#: Alert kinds, most urgent first: an SRDL or cumulative alert may mean skin injury and a
#: patient to follow up; an investigation level asks for a review of technique.
KINDS_BY_PRIORITY: tuple[str, ...] = (AlertKind.SRDL.value, AlertKind.CUMULATIVE.value,
                                      AlertKind.INVESTIGATION.value)
LEVEL_COLUMNS = ["type_id", "procedure", "quantity", "records", "median", "percentile",
                 "floor", "level", "source"]
ALERT_COLUMNS = ["key", "kind", "quantity", "patient_id", "procedure_id", "t", "value",
                 "threshold", "threshold_source", "window_start", "window_end", "record_ids"]
#: Alert column <- frame column of the trigger record (where it happened: site, room, ...).
PLACE_COLUMNS = {"site_id": "site_id", "room_id": "room_id", "physician_id": "physician_id",
                 "procedure_type_id": "type_id"}


def measured(quantity: str) -> str:
    """The column an alert on `quantity` compares: the room-corrected KAP for KAP."""
    return KAP_CORRECTED if quantity == DoseQuantity.DAP_GYCM2.value else quantity


def round_sig(values: np.ndarray, digits: int = 3) -> np.ndarray:
    """Round to significant figures (thresholds that do not drift with each new record)."""
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        magnitude = np.where(values > 0, np.floor(np.log10(np.abs(values))), 0)
    scale = 10.0 ** (digits - 1 - magnitude)
    return np.round(values * scale) / scale


def _source(snap: Snapshot, key: str) -> str:
    source = snap.setting_sources.get(key) or "no source given"
    return f"{key} = {getattr(snap.settings, key)} ({source})"


def _record_alerts(snap: Snapshot, kind: AlertKind, quantity: str, hit: np.ndarray,
                   threshold: np.ndarray, source: np.ndarray) -> pd.DataFrame:
    r = snap.records
    positions = np.flatnonzero(hit)
    ids = r["id"].to_numpy()[positions]
    return pd.DataFrame({
        "key": [f"{kind.value}:{quantity}:record:{i}" for i in ids.tolist()],
        "kind": kind.value, "quantity": quantity,
        "patient_id": r["patient_id"].to_numpy()[positions], "procedure_id": ids,
        "t": r["t"].to_numpy()[positions],
        "value": snap.values(measured(quantity))[positions],
        "threshold": threshold[positions], "threshold_source": source[positions],
        "window_start": np.nan, "window_end": np.nan,
        "record_ids": [[i] for i in ids.tolist()],
    })


def srdl_alerts(snap: Snapshot) -> pd.DataFrame:
    frames = []
    for quantity, key in SRDL_SETTINGS.items():
        level = float(getattr(snap.settings, key))
        values = snap.values(measured(quantity))
        hit = values >= level  # nan compares False
        n = len(values)
        frames.append(_record_alerts(snap, AlertKind.SRDL, quantity, hit, np.full(n, level),
                                     np.full(n, "SRDL: " + _source(snap, key), dtype=object)))
    return pd.concat(frames, ignore_index=True)


def investigation_levels(snap: Snapshot) -> pd.DataFrame:
    """Per procedure type and quantity: the records with the quantity, their median and
    percentile, the investigation level (nan while too few records) and where it comes from.
    Cached per snapshot: it depends on all records, not on the filters."""
    found = snap.cache.get("investigation_levels")
    if found is None:
        found = snap.cache["investigation_levels"] = _investigation_levels(snap)
    return found


def _number(snap: Snapshot, key: str, low: float, high: float, *,
            whole: bool = False) -> float:
    """A setting the rule can use, or ValidationFailed naming it: a mistyped threshold must
    not silently switch the investigation alerts off (or on for every record)."""
    value = getattr(snap.settings, key)
    ok = isinstance(value, int | float) and not isinstance(value, bool) and low <= value <= high
    if ok and whole:
        ok = float(value).is_integer()
    if not ok:
        kind = "a whole number" if whole else "a number"
        raise ValidationFailed([FieldError(
            key, f"setting {key} = {value!r} cannot be used: {kind} from {low:g} to {high:g}")])
    return float(value)


def level_settings(snap: Snapshot) -> tuple[float, int, float]:
    """The investigation settings (percentile, minimum records, factor), each checked: a
    ValidationFailed names the first that cannot be used."""
    return (_number(snap, "investigation_percentile", 50, 99.99),
            int(_number(snap, "investigation_min_records", 1, 1e9, whole=True)),
            _number(snap, "investigation_factor", 0, 1000))


#: (column, quantiles) -> per procedure type id: the records with a value, and each quantile
#: (per_type_quantiles on the frame; audit.alerts.from_sql in PostgreSQL).
TypeQuantiles = Callable[[str, tuple[float, ...]], tuple[np.ndarray, list[np.ndarray]]]


def _investigation_levels(snap: Snapshot) -> pd.DataFrame:
    return level_table(snap, lambda column, qs: per_type_quantiles(snap, column, qs))


def level_table(snap: Snapshot, quantiles: TypeQuantiles) -> pd.DataFrame:
    """The investigation levels (investigation_levels' table) from the per-type counts and
    quantiles `quantiles` gives: the rule, the minimum sample and the rounding in one place,
    whether the quantiles come from the frame or from SQL."""
    percentile, minimum, factor = level_settings(snap)
    settings = "; ".join(_source(snap, key) for key in INVESTIGATION_SETTINGS)
    rows = []
    codes = snap.types["code"]
    for quantity in DoseQuantity.values():
        counts, (median, upper) = quantiles(measured(quantity), (0.5, percentile / 100))
        for type_id in sorted(int(i) for i in codes.index):
            if type_id >= len(counts) or not counts[type_id]:
                continue
            code = str(codes.loc[type_id])
            n = int(counts[type_id])
            row = {"type_id": type_id, "procedure": code, "quantity": quantity, "records": n,
                   "median": float(median[type_id]), "percentile": float(upper[type_id]),
                   "floor": factor * float(median[type_id]), "level": np.nan}
            if n < minimum:
                row["source"] = (f"no level: {n} {code} records with {quantity}, "
                                 f"{minimum} needed; " + settings)
            else:
                level = float(round_sig(np.array([max(row["percentile"], row["floor"])]))[0])
                if level > 0:
                    row["level"] = level
                # no record count or unrounded value here: the text is part of the alert's
                # context, and a text that changed with every record would rewrite every alert
                row["source"] = (f"above the local {percentile:g}th percentile of {code} "
                                 f"records and at least {factor:g} x their median; " + settings)
            rows.append(row)
    return pd.DataFrame(rows, columns=LEVEL_COLUMNS)


def picks(n: int, q: float) -> tuple[int, int, float]:
    """Where numpy's linear quantile q of n sorted values lies: the positions of its two
    neighbours (0-based) and the weight of the upper one (audit.analytics.quantiles.lerp)."""
    virtual = (n - 1) * q
    previous = np.floor(virtual)
    if virtual >= n - 1:  # numpy clamps both neighbours to the last value here
        return n - 1, n - 1, virtual - previous
    return int(previous), int(previous) + 1, virtual - previous


def per_type_quantiles(snap: Snapshot, column: str,
                       qs: tuple[float, ...]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Per procedure type id: the records with a value and its quantiles, equal bit for bit to
    audit.analytics.grouping.quantiles_by (numpy's linear method, audit.analytics.quantiles),
    found by partial sorts (np.partition, linear time) of each type's values instead of a sort
    of every value: the levels are recomputed at every alert refresh that follows new records,
    and a fresh snapshot has no sorted order cached."""
    values = snap.values(column)
    type_id = snap.records["type_id"].to_numpy().astype(np.int64)
    size = int(max(snap.types.index.max() if len(snap.types) else 0,
                   type_id.max() if len(type_id) else 0)) + 1
    present = ~np.isnan(values)
    grouped = type_id[present]
    small = grouped.astype(np.uint16) if size <= np.iinfo(np.uint16).max else grouped
    ordered = values[present][np.argsort(small, kind="stable")]  # radix sort: 16-bit keys
    counts = np.bincount(grouped, minlength=size)[:size]
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    found = [np.full(size, np.nan) for _ in qs]
    for group in np.flatnonzero(counts):
        n = int(counts[group])
        chosen = [picks(n, q) for q in qs]
        segment = np.partition(ordered[starts[group]:starts[group] + n],
                               sorted({i for p in chosen for i in p[:2]}))
        for out, (low, high, gamma) in zip(found, chosen, strict=True):
            out[group] = lerp(segment[[low]], segment[[high]], np.array([gamma]))[0]
    return counts, found


def investigation_alerts(snap: Snapshot) -> pd.DataFrame:
    levels = investigation_levels(snap)
    levels = levels[levels["level"].notna()]
    type_id = snap.records["type_id"].to_numpy()
    size = int(max(snap.types.index.max() if len(snap.types) else 0,
                   type_id.max() if len(type_id) else 0)) + 1
    frames = []
    for quantity, group in levels.groupby("quantity"):
        threshold = np.full(size, np.nan)
        source = np.full(size, "", dtype=object)
        threshold[group["type_id"].to_numpy()] = group["level"].to_numpy()
        source[group["type_id"].to_numpy()] = group["source"].to_numpy()
        per_record = threshold[type_id]
        hit = snap.values(measured(str(quantity))) > per_record  # above; nan compares False
        frames.append(_record_alerts(snap, AlertKind.INVESTIGATION, str(quantity), hit,
                                     per_record, source[type_id]))
    return pd.concat(frames, ignore_index=True) if frames else \
        pd.DataFrame(columns=ALERT_COLUMNS)


def cumulative_alerts(snap: Snapshot) -> pd.DataFrame:
    """Episodes of cumulative dose per patient over the rolling window (see module doc)."""
    window = int(float(snap.settings.cumulative_window_days) * 86400)
    r = snap.records
    rows: list[dict[str, Any]] = []
    for quantity, key in CUMULATIVE_SETTINGS.items():
        level = float(getattr(snap.settings, key))
        values = snap.values(measured(quantity))
        known = ~np.isnan(values)
        # doses are never negative, so a window's sum is at most the patient's total: only
        # patients whose total reaches the level can have an episode (a few in a thousand)
        all_patients = r["patient_id"].to_numpy()
        totals = np.bincount(all_patients[known], weights=values[known],
                             minlength=int(all_patients.max()) + 1 if len(all_patients) else 0)
        present = np.flatnonzero(known & (totals[all_patients] >= level * (1 - 1e-9))) \
            if len(totals) \
            else np.flatnonzero(known)
        if not len(present):
            continue
        patient = all_patients[present]
        t = r["t"].to_numpy()[present]
        ids = r["id"].to_numpy()[present]
        order = np.lexsort((ids, t, patient))
        patient, t, ids = patient[order], t[order], ids[order]
        v = values[present][order]
        _, dense = np.unique(patient, return_inverse=True)
        span = int(t.max() - t.min()) + window + 1
        sort_key = dense.astype(np.int64) * span + (t - t.min())
        left = np.searchsorted(sort_key, sort_key - window, side="right")
        right = np.searchsorted(sort_key, sort_key, side="right")
        # sums from each patient's first record, never across patients: a patient's totals are
        # then the same float whichever other patients are summed beside them (an incremental
        # refresh sums only the patients whose records changed; audit.alerts.refresh)
        within = pd.Series(v).groupby(dense).cumsum().to_numpy()
        first_of_patient = np.searchsorted(dense, dense, side="left")
        total = within[right - 1] - np.where(left > first_of_patient,
                                             within[np.maximum(left - 1, 0)], 0.0)
        exceed = total >= level
        if not exceed.any():
            continue
        same_patient = np.concatenate(([False], dense[1:] == dense[:-1]))
        previous = np.concatenate(([False], exceed[:-1]))
        starts = np.flatnonzero(exceed & ~(previous & same_patient))
        following = np.concatenate((exceed[1:] & same_patient[1:], [False]))
        ends = np.flatnonzero(exceed & ~following)
        peak = np.maximum.reduceat(total, starts) if len(starts) else np.array([])
        source = f"cumulative over {window // 86400} days: " + _source(snap, key) + \
            "; " + _source(snap, "cumulative_window_days")
        for first, last, value in zip(starts.tolist(), ends.tolist(), peak.tolist(),
                                      strict=True):
            members = ids[left[first]:right[last]].tolist()
            rows.append({
                "key": f"cumulative:{quantity}:patient:{int(patient[first])}:{int(t[first])}",
                "kind": AlertKind.CUMULATIVE.value, "quantity": quantity,
                "patient_id": int(patient[first]), "procedure_id": int(ids[first]),
                "t": int(t[first]), "value": float(value), "threshold": level,
                "threshold_source": source, "window_start": int(t[left[first]]),
                "window_end": int(t[right[last] - 1]), "record_ids": members,
            })
    return pd.DataFrame(rows, columns=ALERT_COLUMNS)


def compute_alerts(snap: Snapshot, levels: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every alert the current records and settings call for (a pure function of them), under
    the investigation levels `levels` (the ones in force: audit.alerts.level_review; None:
    computed from these records)."""
    if levels is not None:
        snap = replace(snap, cache={**snap.cache, "investigation_levels": levels})
    return with_places(snap, [srdl_alerts(snap), investigation_alerts(snap),
                              cumulative_alerts(snap)])


def with_places(snap: Snapshot, frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The alerts of `frames` in one table, each with its trigger record's site, room,
    physician and procedure type."""
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=ALERT_COLUMNS + list(PLACE_COLUMNS))
    alerts = pd.concat(frames, ignore_index=True)[ALERT_COLUMNS]
    where = (snap.records.set_index("id")[list(PLACE_COLUMNS.values())]
             .reindex(alerts["procedure_id"]))
    for column, source in PLACE_COLUMNS.items():
        alerts[column] = where[source].to_numpy()
    return alerts
