"""Reference levels: published comparison values, local DRLs or typical values by the ICRP 135
method, SRDLs.

ICRP Publication 135 (docs/reference.md §12): for each procedure, take the median of each room's
records; the local diagnostic reference level (DRL) is the 75th percentile of those room
medians and the achievable dose (NCRP 172) their median. A room's median counts only over at
least `drl_min_room_records` records, and a DRL needs at least `drl_min_rooms` such rooms (both
settings, ICRP 135 their source). Below that the facility's figure is a *typical value*: the
median of its pooled distribution (every record of the procedure in the period), compared with
the published values, never called a DRL. A one- to three-C-arm clinic sees typical values.

KAP is taken as the room-corrected KAP (the displayed KAP times the room's KAP correction
factor, audit.dosimetry.corrected_kap via Snapshot.values), for the figures and for the
comparisons with them alike (`reference_column`). Reference lines are computed over the period
only (every room and physician), whatever the other filters: a reference is the
organisation's, not one room's.

Adopted levels (kind drl/achievable/typical/investigation) are rows of reference_level with an
effective date, written by an administrator and audited; the SRDLs and the investigation factor
stay settings (one value for the alerts to read) and are listed here beside the rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, select

from audit.analytics.grouping import QUANTITIES, group_codes, quantiles_by
from audit.analytics.snapshot import KAP_CORRECTED, Snapshot
from audit.auth import Actor, Permission, require
from audit.errors import FieldError, NotFound, ValidationFailed
from audit.filters import Filters
from audit.storage.engine import retrying, write_session
from audit.storage.models import ProcedureType, ReferenceLevel, utcnow
from audit.trail import record_event
from audit.vocab import AuditAction, DoseQuantity, ReferenceKind, ReferenceStatistic

#: Settings that are reference levels for every procedure (kind srdl), by quantity.
SRDL_SETTINGS = {"air_kerma_mgy": "srdl_air_kerma_mgy", "dap_gycm2": "srdl_kap_gycm2",
                 "fluoro_time_s": "srdl_fluoro_time_s"}
#: The frame column each quantity's reference levels are computed from and compared with.
REFERENCE_COLUMNS = {"dap_gycm2": KAP_CORRECTED}
#: What each kind of local figure is called wherever it is shown.
FIGURE_LABELS = {ReferenceKind.DRL.value: "local DRL",
                 ReferenceKind.TYPICAL.value: "typical value"}
DRL_COLUMNS = ["procedure", "type_id", "quantity", "kind", "figure", "level", "rooms",
               "rooms_with_records", "records", "room_records_min", "local_median", "drl",
               "achievable", "typical", "min_rooms", "min_room_records", "kap_corrected",
               "published", "basis", "source"]


def reference_column(quantity: str) -> str:
    """The frame column a quantity's reference levels use: KAP corrected by the room's factor
    (docs/reference.md §12); time and Ka,r as recorded."""
    return REFERENCE_COLUMNS.get(quantity, quantity)


@dataclass(frozen=True)
class DrlThresholds:
    """What a local DRL needs (ICRP 135): rooms with their own median, records per room."""

    min_rooms: int
    min_room_records: int
    source: str


def drl_thresholds(snap: Snapshot, min_rooms: int | None = None,
                   min_room_records: int | None = None) -> DrlThresholds:
    """The thresholds in force (settings drl_min_rooms, drl_min_room_records, with their
    sources), or those given. Whatever is set, a DRL needs at least 2 rooms (a percentile of
    one median is that median) and a room at least 1 record."""
    parts = []
    values = []
    for given, key, floor in ((min_rooms, "drl_min_rooms", 2),
                              (min_room_records, "drl_min_room_records", 1)):
        value = int(getattr(snap.settings, key)) if given is None else int(given)
        origin = _setting_source(snap, key) if given is None else "given for this computation"
        values.append(max(value, floor))
        parts.append(f"{key} = {values[-1]} ({origin})")
    return DrlThresholds(values[0], values[1], "; ".join(parts))


def room_medians(snap: Snapshot, filters: Filters, quantity: str = "dap_gycm2") -> pd.DataFrame:
    """Median (and n) of the quantity (KAP room-corrected) per procedure and room over the
    period."""
    mask = filters.period.mask(snap)
    labels, counts, (median,) = quantiles_by(snap, mask, ("procedure", "room"),
                                             reference_column(quantity), (0.5,))
    frame = pd.DataFrame({"procedure": [lab[0] for lab in labels],
                          "room": [lab[1] for lab in labels], "n": counts, "median": median})
    return frame[frame["n"] > 0].reset_index(drop=True)


def local_drls(snap: Snapshot, filters: Filters, quantities: Sequence[str] = QUANTITIES,
               min_room_records: int | None = None,
               min_rooms: int | None = None) -> pd.DataFrame:
    """Per procedure and quantity, the local figure and its basis (ICRP 135).

    With at least `min_rooms` rooms of at least `min_room_records` records each (default: the
    settings), kind "drl": the DRL (75th percentile of those rooms' medians) and the achievable
    dose (their median). Otherwise kind "typical": the typical value, the median of all the
    procedure's records in the period (the pooled distribution). `level` is the figure records
    are compared with, `figure` its name; `rooms` the rooms counted, `rooms_with_records` all
    rooms with the quantity, `room_records_min` the fewest records in a room the figure rests
    on; `min_rooms`, `min_room_records` and `source` the thresholds applied; `published` the
    published values for the procedure and quantity, for comparison.
    """
    limits = drl_thresholds(snap, min_rooms, min_room_records)
    frames = []
    for quantity in quantities:  # cached per period: a room or physician filter keeps them
        key = (f"drl:{filters.period!r}:{quantity}:{limits.min_rooms}:"
               f"{limits.min_room_records}:{limits.source}")
        found = snap.cache.get(key)
        if found is None:
            found = snap.cache[key] = _local_drl(snap, filters, quantity, limits)
        frames.append(found)
    if not frames:
        return pd.DataFrame(columns=DRL_COLUMNS)
    return pd.concat(frames, ignore_index=True)


def _local_drl(snap: Snapshot, filters: Filters, quantity: str,
               limits: DrlThresholds) -> pd.DataFrame:
    mask = filters.period.mask(snap)
    column = reference_column(quantity)
    _, cell_n, (cell_median,) = quantiles_by(snap, mask, ("procedure", "room"), column, (0.5,))
    types, type_n, (type_median,) = quantiles_by(snap, mask, ("procedure",), column, (0.5,))
    n_types = len(types)
    return drl_rows(snap, quantity, limits, type_n, type_median, cell_n.reshape(n_types, -1),
                    cell_median.reshape(n_types, -1))


def drl_rows(snap: Snapshot, quantity: str, limits: DrlThresholds, type_n: np.ndarray,
             type_median: np.ndarray, per_room_n: np.ndarray,
             per_room_median: np.ndarray) -> pd.DataFrame:
    """The local figures from the counts and medians per procedure type id (arrays indexed by
    type id) and per type id x room (rows: type ids), however they were computed (the frame,
    or SQL on PostgreSQL: audit.analytics.sql.reference)."""
    corrected = reference_column(quantity) == KAP_CORRECTED
    published = published_summary(snap, quantity)
    rows: list[dict[str, Any]] = []
    codes = snap.types["code"]
    for type_index in range(len(type_n)):
        code = codes.get(type_index, "")
        if type_n[type_index] == 0 or type_index not in codes.index:
            continue
        room_n = per_room_n[type_index]
        with_records = room_n > 0
        qualifying = room_n >= limits.min_room_records
        medians = per_room_median[type_index][qualifying]
        records = int(type_n[type_index])
        row: dict[str, Any] = {
            "procedure": code, "type_id": type_index, "quantity": quantity,
            "rooms": int(qualifying.sum()), "rooms_with_records": int(with_records.sum()),
            "records": records, "local_median": float(type_median[type_index]),
            "drl": np.nan, "achievable": np.nan, "typical": np.nan,
            "min_rooms": limits.min_rooms, "min_room_records": limits.min_room_records,
            "kap_corrected": corrected, "published": published.get(code, ""),
            "source": limits.source,
        }
        if len(medians) >= limits.min_rooms:
            row["drl"] = float(np.quantile(medians, 0.75))
            row["achievable"] = float(np.quantile(medians, 0.5))
            row["kind"], row["level"] = ReferenceKind.DRL.value, row["drl"]
            row["room_records_min"] = int(room_n[qualifying].min())
            row["basis"] = (f"local DRL (ICRP 135): 75th percentile of {len(medians)} room "
                            f"medians, each room with at least {limits.min_room_records} "
                            f"records (fewest {row['room_records_min']}); {records} records")
        else:
            row["typical"] = row["local_median"]
            row["kind"], row["level"] = ReferenceKind.TYPICAL.value, row["typical"]
            row["room_records_min"] = int(room_n[with_records].min())
            row["basis"] = (f"typical value (ICRP 135): median of all {records} records from "
                            f"{row['rooms_with_records']} room(s); a local DRL needs at least "
                            f"{limits.min_rooms} rooms with at least "
                            f"{limits.min_room_records} records each, {row['rooms']} "
                            "qualify")
        if corrected:
            row["basis"] += "; KAP x each room's KAP correction factor"
        row["figure"] = FIGURE_LABELS[row["kind"]]
        rows.append(row)
    return pd.DataFrame(rows, columns=DRL_COLUMNS)


def published_summary(snap: Snapshot, quantity: str) -> dict[str, str]:
    """Per procedure code, the active published values for the quantity in words, e.g.
    "median 0.68 (Kim SJ, J Spinal Disord Tech 2014, n = 181)": shown beside a local figure,
    for comparison only."""
    levels = snap.reference_levels
    chosen = levels[(levels["kind"] == ReferenceKind.PUBLISHED.value)
                    & (levels["quantity"] == quantity) & levels["type_id"].notna()]
    out: dict[str, list[str]] = {}
    for row in chosen.itertuples():
        code = snap.types["code"].get(int(row.type_id))
        if code is None:
            continue
        n = f", n = {int(row.sample_size)}" if pd.notna(row.sample_size) else ""
        out.setdefault(code, []).append(f"{row.statistic} {row.value:g} ({row.source}{n})")
    return {code: "; ".join(items) for code, items in out.items()}


def levels_in_force(snap: Snapshot, filters: Filters, quantity: str = "dap_gycm2",
                    local: pd.DataFrame | None = None) -> pd.DataFrame:
    """The level each procedure's records are compared with: an adopted DRL (latest effective
    on or before the period's end), else the local DRL or typical value over the period
    (`local`: those figures already computed, e.g. in SQL)."""
    if local is None:
        local = local_drls(snap, filters, (quantity,))
    out = local[["procedure", "type_id", "level", "kind", "basis"]].rename(
        columns={"level": "value", "basis": "source"})
    adopted = snap.reference_levels
    if len(adopted):
        end = filters.last_day or date.max
        adopted = adopted[(adopted["kind"] == ReferenceKind.DRL.value)
                          & (adopted["quantity"] == quantity)
                          & adopted["type_id"].notna()
                          & (adopted["effective_from"] <= end)]
        latest = adopted.sort_values(["effective_from", "id"]).groupby("type_id").tail(1)
        for row in latest.itertuples():
            type_id = int(row.type_id)
            entry = {"procedure": snap.types["code"].get(type_id), "type_id": type_id,
                     "value": float(row.value), "kind": "adopted drl",
                     "source": f"{row.source} (effective {row.effective_from})"}
            out = pd.concat([out[out["type_id"] != type_id], pd.DataFrame([entry])],
                            ignore_index=True)
    return out.sort_values("procedure").reset_index(drop=True)


def reference_table(snap: Snapshot,
                    procedure: str | Sequence[str] | None = None) -> pd.DataFrame:
    """Every stored reference level (active) plus the SRDL settings, each with its source;
    with `procedure` (a code, or codes as in Filters.procedures), that procedure's levels and
    the SRDLs, which apply to all."""
    levels = snap.reference_levels.copy()
    levels["procedure"] = levels["type_id"].map(
        lambda i: snap.types["code"].get(int(i)) if pd.notna(i) else "all")
    srdl = [{"procedure": "all", "quantity": quantity, "kind": ReferenceKind.SRDL.value,
             "statistic": ReferenceStatistic.THRESHOLD.value,
             "value": float(getattr(snap.settings, key)), "sample_size": None,
             "source": f"setting {key}: {_setting_source(snap, key)}", "note": None,
             "effective_from": None}
            for quantity, key in SRDL_SETTINGS.items()]
    frame = pd.concat([levels.drop(columns=["id", "type_id"]), pd.DataFrame(srdl)],
                      ignore_index=True)
    codes = [procedure] if isinstance(procedure, str) else list(procedure or ())
    if codes:
        frame = frame[frame["procedure"].isin([*codes, "all"])]
    return frame[["procedure", "quantity", "kind", "statistic", "value", "sample_size",
                  "source", "note", "effective_from"]].reset_index(drop=True)


def published_medians(snap: Snapshot, quantity: str) -> pd.DataFrame:
    """Per procedure (the index), the published median a dose chart compares with (value and
    source): of the active published levels for the quantity whose statistic is the median, the
    first stored. Published values are for comparison only, never a threshold."""
    table = reference_table(snap)
    chosen = table[(table["kind"] == ReferenceKind.PUBLISHED.value)
                   & (table["quantity"] == quantity)
                   & (table["statistic"] == ReferenceStatistic.MEDIAN.value)]
    return chosen.groupby("procedure").head(1).set_index("procedure")[["value", "source"]]


def _setting_source(snap: Snapshot, key: str) -> str:
    return str(snap.setting_sources.get(key) or "no source given")


def share_above_reference(snap: Snapshot, filters: Filters, by: str | None = None,
                          quantity: str = "dap_gycm2",
                          levels: pd.DataFrame | None = None) -> pd.DataFrame:
    """Share of records above their procedure's reference level (the DRL in force, else the
    local DRL or typical value over the period: `levels_in_force`); KAP room-corrected on
    both sides (`reference_column`)."""
    if levels is None:
        levels = levels_in_force(snap, filters, quantity)
    threshold = np.full(int(snap.types.index.max()) + 1 if len(snap.types) else 1, np.nan)
    known = levels.dropna(subset=["value"])
    threshold[known["type_id"].to_numpy().astype(int)] = known["value"].to_numpy()
    type_id = snap.records["type_id"].to_numpy()
    values = snap.values(reference_column(quantity))
    level = threshold[np.minimum(type_id, len(threshold) - 1)]
    measurable = filters.mask(snap) & ~np.isnan(values) & ~np.isnan(level)
    above = measurable & (values > level)
    codes, labels = group_codes(snap, by)
    k = len(labels)
    n = np.bincount(codes[measurable], minlength=k)[:k]
    count = np.bincount(codes[above], minlength=k)[:k]
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(n > 0, count / np.maximum(n, 1), np.nan)
    frame = pd.DataFrame({by or "scope": labels, "records": n, "above": count,
                          "share_above": share})
    if by is not None:
        frame = frame[frame["records"] > 0]
    return frame.reset_index(drop=True)


# --- writes (administrators) ------------------------------------------------------------------

def add_reference_level(engine: Engine, actor: Actor, *, procedure: str, quantity: str,
                        kind: str, value: float, source: str, effective_from: date,
                        statistic: str = "median", sample_size: int | None = None,
                        note: str | None = None) -> int:
    """Store a reference level (admin only, audited). Returns its id."""
    require(actor, Permission.ADMIN)
    errors: list[FieldError] = []
    checked: dict[str, Any] = {}
    for name, raw, enum in (("quantity", quantity, DoseQuantity), ("kind", kind, ReferenceKind),
                            ("statistic", statistic, ReferenceStatistic)):
        try:
            checked[name] = enum.parse(raw).value
        except ValueError as exc:
            errors.append(FieldError(name, str(exc)))
    if checked.get("kind") == ReferenceKind.SRDL.value:
        errors.append(FieldError("kind", "SRDLs are settings (srdl_*): change them there"))
    if not isinstance(value, int | float) or not value > 0:
        errors.append(FieldError("value", f"must be a positive number, got {value!r}"))
    if not (source or "").strip():
        errors.append(FieldError("source", "required: say where the value comes from"))
    if errors:
        raise ValidationFailed(errors)

    def work() -> int:
        with write_session(engine) as session:
            type_id = session.scalar(select(ProcedureType.id)
                                     .where(ProcedureType.code == procedure.strip().upper()))
            if type_id is None:
                known = ", ".join(session.scalars(select(ProcedureType.code)).all())
                raise ValidationFailed([FieldError("procedure", f"no procedure {procedure!r}; "
                                                                f"known: {known}")])
            level = ReferenceLevel(
                procedure_type_id=type_id, quantity=checked["quantity"], kind=checked["kind"],
                statistic=checked["statistic"], value=float(value), sample_size=sample_size,
                source=source.strip(), note=note, effective_from=effective_from, active=True,
                created_at=utcnow(), created_by=actor.username)
            session.add(level)
            session.flush()
            record_event(session, actor=actor.username, action=AuditAction.CREATE,
                         entity="reference_level", entity_id=level.id,
                         after={"procedure": procedure.upper(), "quantity": level.quantity,
                                "kind": level.kind, "value": level.value,
                                "source": level.source,
                                "effective_from": effective_from.isoformat()})
            return level.id

    return retrying(work)


def adopt_local_drls(engine: Engine, actor: Actor, snap: Snapshot, filters: Filters,
                     effective_from: date, quantities: Sequence[str] = QUANTITIES) -> list[int]:
    """Store the local DRLs and achievable doses (or typical values) computed over the period
    as reference levels effective from `effective_from` (admin only, each audited)."""
    require(actor, Permission.ADMIN)
    local = local_drls(snap, filters, quantities)
    period = f"{filters.first_day or 'first record'} to {filters.last_day or 'last record'}"
    ids = []
    for row in local.itertuples():
        pairs = ([(ReferenceKind.DRL, ReferenceStatistic.P75, row.drl),
                  (ReferenceKind.ACHIEVABLE, ReferenceStatistic.MEDIAN, row.achievable)]
                 if row.kind == ReferenceKind.DRL.value
                 else [(ReferenceKind.TYPICAL, ReferenceStatistic.MEDIAN, row.typical)])
        for kind, statistic, value in pairs:
            if not value > 0:
                continue
            ids.append(add_reference_level(
                engine, actor, procedure=row.procedure, quantity=row.quantity, kind=kind.value,
                value=float(value), statistic=statistic.value, sample_size=int(row.records),
                source=f"local, {row.basis}, {period}", effective_from=effective_from))
    return ids


def retire_reference_level(engine: Engine, actor: Actor, level_id: int, reason: str) -> None:
    """Take a reference level out of use (kept, with who, when and why)."""
    require(actor, Permission.ADMIN)
    if not (reason or "").strip():
        raise ValidationFailed([FieldError("reason", "required: say why it is retired")])

    def work() -> None:
        with write_session(engine) as session:
            level = session.get(ReferenceLevel, level_id)
            if level is None:
                raise NotFound(f"no reference level {level_id}")
            if not level.active:
                raise ValidationFailed([FieldError("reference_level",
                                                   f"{level_id} is already retired")])
            level.active = False
            level.retired_at = utcnow()
            level.retired_by = actor.username
            level.retired_reason = reason.strip()
            record_event(session, actor=actor.username, action=AuditAction.DEACTIVATE,
                         entity="reference_level", entity_id=level_id, reason=reason.strip(),
                         before={"active": True}, after={"active": False})

    retrying(work)
