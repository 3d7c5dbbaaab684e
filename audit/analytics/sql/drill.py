"""The records behind a figure, in SQL: only these fetch rows, newest first, with a LIMIT, and
show the same columns as the frame's lists (audit.analytics.grouping.record_names)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import false, or_, select
from sqlalchemy.orm import aliased
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.util import ClauseAdapter

from audit.analytics.compliance import why_non_compliant
from audit.analytics.grouping import QUANTITIES
from audit.analytics.snapshot import to_datetime
from audit.analytics.sql import groups
from audit.analytics.sql.counts import flag_condition
from audit.analytics.sql.records import period_conditions
from audit.analytics.sql.scope import Scope
from audit.storage.models import Complication, RecordFact
from audit.vocab import RecordStatus

_NAMES = ("id", "t", "site_id", "room_id", "physician_id", "type_id")
#: A drill-down looks first at this many times its limit of the filters' newest records.
PROBE = 20


def _names(scope: Scope, rows: pd.DataFrame) -> pd.DataFrame:
    look = scope.lookups
    return pd.DataFrame({
        "record_id": rows["id"].to_numpy(dtype=np.int64),
        "performed_at": to_datetime(rows["t"].to_numpy(dtype=np.int64)),
        "site": rows["site_id"].map(look.sites).to_numpy(),
        "room": rows["room_id"].map(look.rooms["label"]).to_numpy(),
        "physician": rows["physician_id"].map(look.physicians).to_numpy(),
        "procedure": rows["type_id"].map(look.types["code"]).to_numpy(),
    })


#: Where a drill-down's records lie, from a summary: conditions bounding them (a window) and
#: how many lie there (all of them when fewer than the list's limit).
Window = tuple[list[ColumnElement[bool]], int]


def _rows(scope: Scope, where: list[ColumnElement[bool]], extra: list[str],
          limit: int | None, newest_id_first: bool = True, first_look: bool = True,
          fence: list[ColumnElement[bool]] | None = None,
          window: Window | None = None) -> pd.DataFrame:
    """Newest first by the stored instant (so the index on performed_at serves and the scan
    stops after `limit` rows); among records of the same instant, by id as the frame lists
    them (the frame sorts by whole seconds: the same order unless two records fall within one
    second with different fractions). first_look=False: no look at the newest records first
    (the condition has an index of its own). `fence`: conditions (among `where`) that indexes
    read, applied first in a materialized CTE when the first look found too few: PostgreSQL
    cannot estimate a rare tail of a range (it put the SRDL records at 1 in 90, not 1 in
    2,000) and would otherwise walk every record backwards in time. `window`: where a summary
    says the records lie (_window): read first, and kept when it holds what the summary counts
    (then nothing else is read; else the first look, the fence or every record, as without
    it); where it counts none, nothing is read. First rather than after the first look: the
    window's read stops at the list's `limit`-th record, where the first look materialises
    PROBE times as many (at 5M records an excepted list of 2,000 took 0.15-0.18 s, 0.06-0.1 s
    from its window)."""
    rec = scope.rec
    columns = [*_NAMES, *extra]
    if window is not None and not window[1]:  # none there, says the summary: nothing to look at
        where = [*where, *window[0]]
        first_look = False

    def newest(source: Any, conditions: list[ColumnElement[bool]], most: int | None) -> Any:
        query = (select(*(source.c[c] for c in columns)).where(*conditions)
                 .order_by(source.c.performed_at.desc(),
                           source.c.id.desc() if newest_id_first else source.c.id))
        return query if most is None else query.limit(most)

    if limit is None or not first_look:
        return scope.rows(newest(rec, where, limit), columns)
    if window is not None:  # first where the summary says the records lie, when they are there
        inside, expected = window
        found = scope.rows(newest(rec, [*where, *inside], limit), columns)
        if len(found) == min(expected, limit):
            return found
    # Then the filters' newest records alone (an index on (physician, room or procedure,
    # instant) reads them backwards: the planner cannot tell how rare a drill's condition is,
    # and with it scans every fact), then the condition among them: the same rows whenever
    # `limit` of them qualify (any qualifying record outside is older than all of those).
    probe = (select(rec).order_by(rec.c.performed_at.desc(),
                                  rec.c.id.desc() if newest_id_first else rec.c.id)
             .limit(limit * PROBE).subquery("newest"))
    adapt = ClauseAdapter(probe).traverse
    found = scope.rows(newest(probe, [adapt(w) for w in where], limit), columns)
    if len(found) == limit:
        return found
    if fence:  # fewer: the rare condition's records first, then the newest of them
        hot = select(rec).where(*fence).cte("hot").prefix_with("MATERIALIZED")
        inside = ClauseAdapter(hot).traverse
        return scope.rows(newest(hot, [inside(w) for w in where], limit), columns)
    return scope.rows(newest(rec, where, limit), columns)  # fewer: look at every record


def _window(scope: Scope, found: tuple[date | None, int] | None) -> Window | None:
    """A summary's (D, n) as _rows' window: the records from UTC day D, n of them (any record
    of the list before D is older than all from it); (None, 0): none at all."""
    if found is None:
        return None
    day, count = found
    return ([false()] if day is None else [scope.rec.c.performed_at >= datetime.combine(
        day, datetime.min.time(), UTC)]), count


def compliance_records(scope: Scope, which: str = "non_compliant",
                       group: tuple[str, str] | None = None, limit: int = 1000,
                       hint: tuple[date | None, int] | None = None) -> pd.DataFrame:
    """audit.analytics.compliance.compliance_records in SQL. `hint`: (D, n), the daily
    summary counts n of `which` from UTC day D on, n >= `limit` or all there are; (None, 0):
    none (summary_counts.newest_day). None there: nothing read; else the list is the records
    from D when they are what the summary says, else as without a hint (the newest records
    when they hold `limit`, else every record)."""
    if which not in ("non_compliant", "excepted"):
        raise ValueError("which: non_compliant or excepted")
    scope = scope.flat()
    where: list[ColumnElement[bool]] = [scope.col(which) == 1]
    if group is not None:
        column = scope.col(groups.COLUMNS[group[0]]) if group[0] in groups.COLUMNS else None
        if column is None:
            raise ValueError(f"cannot group by {group[0]!r}")
        where.append(column.in_(groups.codes_for(scope.lookups, group[0], group[1])))
    parts = ["part_confirmed", "part_contraindicated", "part_images", "part_views_ok",
             "part_realtime_ok"]
    extra = ["contrast_confirmation", "saved_images", "n_views", "min_views", *parts]
    rows = _rows(scope, where, extra, limit, window=_window(scope, hint))
    out = _names(scope, rows)
    out["contrast_confirmation"] = rows["contrast_confirmation"].to_numpy(dtype=object)
    out["saved_images"] = rows["saved_images"].to_numpy(dtype=np.int64)
    out["views"] = rows["n_views"].to_numpy(dtype=np.int64)
    if which == "excepted":
        out["why"] = "contraindicated, reason documented"
        return out
    found: dict[str, Any] = {name: rows[f"part_{column}"].to_numpy(dtype=bool)
                             for name, column in (("confirmed", "confirmed"),
                                                  ("contraindicated", "contraindicated"),
                                                  ("images", "images"), ("views", "views_ok"),
                                                  ("realtime", "realtime_ok"))}
    out["why"] = why_non_compliant(found)
    return out


#: Flags whose record part is a stored fact with a partial index of the facts (migration 0023):
#: a few records in a thousand, which the newest records rarely fill a list with (at 5M
#: records, 36 cervical particulate TFESIs among the newest 40,000: the drill then read 2M
#: records backwards, 5-8 s).
INDEXED_FLAGS = {"particulate_cervical_tfesi": "fact_cervical_particulate",
                 "uptake_not_repositioned": "fact_uptake_not_repositioned",
                 "pregnant": "fact_pregnant"}


def _tfesi_ids(scope: Scope) -> list[int]:
    """The ids of the catalog's TFESI types (the particulate flag's catalog part)."""
    types = scope.lookups.types
    return [int(i) for i in types.index[types["code"] == "TFESI"]]


def _flag_hint(scope: Scope, flag: str) -> list[ColumnElement[bool]]:
    """Conditions the flag implies, as the planner can match them with a partial index (the
    stored boolean; the TFESI types' ids for the catalog's part): the same rows."""
    if flag == "srdl_reached":
        return _srdl_hint(scope)
    if flag not in INDEXED_FLAGS:
        return []
    hint: list[ColumnElement[bool]] = [scope.col(INDEXED_FLAGS[flag])]
    if flag == "particulate_cervical_tfesi":
        hint.append(scope.col("type_id").in_(_tfesi_ids(scope)))
    return hint


def _srdl_hint(scope: Scope) -> list[ColumnElement[bool]]:
    """A condition srdl_reached implies that the record facts' indexes on each quantity read
    (migration 0026): Ka,r, time or the stored KAP at or above its SRDL, the KAP's divided by
    the largest room factor (a few more rows; srdl_reached itself still decides). Why: the
    thresholds are settings, so no stored flag or partial index can hold them, and at 10M
    records the newest 2,000 SRDL records (1 in 700) took 18 s walking every record
    backwards. None where a threshold is not above zero: then the condition is common and the
    look at the newest records finds them."""
    s = scope.lookups.settings
    air_kerma, kap, time_s = (float(s.srdl_air_kerma_mgy), float(s.srdl_kap_gycm2),
                              float(s.srdl_fluoro_time_s))
    if not min(air_kerma, kap, time_s) > 0:
        return []
    ranges = [scope.col("air_kerma_mgy") >= air_kerma, scope.col("fluoro_time_s") >= time_s]
    factors = scope.lookups.rooms["kap_factor"].to_numpy(dtype=np.float64)
    largest = float(np.nanmax(factors)) if len(factors) else 0.0
    if largest > 0:  # none above zero: no corrected KAP reaches the SRDL
        # a hair lower: a product rounded up to the SRDL must not fall outside
        ranges.append(scope.col("dap_gycm2") >= kap / largest * (1 - 1e-9))
    return [or_(*ranges)]


def _fenced(scope: Scope, flag: str) -> Scope:
    """The records of an indexed flag under filters that name something (a physician, a
    room...): read from the flag's own rows first (its partial index: 10,204 cervical
    particulate TFESIs at 10M records), as a subquery PostgreSQL plans alone (OFFSET 0),
    then the filters among them. Why: PostgreSQL cannot tell how rare those rows are (it
    expected 136,408) and ANDed a bitmap of the physician's 1.4M records with them: 0.12-0.3
    s, against a few ms. Under a period alone the walk back in time along the partial index
    stops after `limit` rows and stays as it is (scope.flat())."""
    flat = scope.flat()
    if flag not in INDEXED_FLAGS or scope.filters.period == scope.filters:
        return flat
    f = RecordFact
    # the bare column, as the partial index's predicate says it (IS TRUE would not match it)
    inner = [getattr(f, INDEXED_FLAGS[flag].removeprefix("fact_")),
             *period_conditions(scope.filters)]
    if flag == "particulate_cervical_tfesi":
        inner.append(f.procedure_type_id.in_(_tfesi_ids(scope)))
    facts = aliased(RecordFact, select(RecordFact).where(*inner).offset(0).subquery("flagged"))
    return Scope(scope.conn, scope.lookups, scope.filters, unit=False, facts=facts)


def flagged_records(scope: Scope, flag: str, limit: int = 1000,
                    summary: tuple[date | None, int] | None = None) -> pd.DataFrame:
    """audit.analytics.safety.flagged_records in SQL (newest first; among records of the same
    second, the lowest id first, as the frame keeps them). `summary`: where the count summary
    says the flag's records lie (count_summary.list_window), as compliance_records' hint:
    nothing read where it counts none, else the window from its day first (then the first look
    at the newest records and the fence, where the window does not hold what it counts)."""
    scope = _fenced(scope, flag)
    hint = _flag_hint(scope, flag)
    rows = _rows(scope, [flag_condition(scope, flag), *hint], [*QUANTITIES, "n_levels"], limit,
                 newest_id_first=False, first_look=flag not in INDEXED_FLAGS, fence=hint,
                 window=_window(scope, summary))
    out = _names(scope, rows)
    for q in QUANTITIES:
        out[q] = pd.to_numeric(rows[q], errors="coerce").to_numpy(dtype=np.float64)
    out["levels"] = rows["n_levels"].to_numpy(dtype=np.int64)
    return out


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: The complication list looks first at the records of the last whole seconds holding this
#: many times its limit of the filters' records, then this many times more, then at all.
WINDOWS = (50, 1000)


def complication_list(scope: Scope, limit: int | None = None,
                      day: date | None = None) -> pd.DataFrame:
    """audit.analytics.complications.complication_list in SQL (voided ones left out; with
    `limit`, the newest `limit`: fetched newest first, then put oldest first as the frame's).

    With a limit, the records of a recent window first (at 5M records joining every
    complication to every record took 4-8 s). A window is every record whose t (the frame's
    whole second, rounded half away from zero) is above some T: the records from T + 0.5 s.
    Any list entry of a record outside sorts after all of theirs, so when the window holds
    `limit` entries those are the list. The window: from `day` (UTC midnight, T the second
    before it: the count summary says that many complications lie from that day on,
    count_summary.newest_day), else from the filters' n-th newest record (read through an
    index alone; n = WINDOWS times the limit), else every record."""
    c = Complication
    names = ["id", "t", "physician_id", "type_id", "kind", "severity", "timing"]

    def listed(rec: Any, since: Any = None) -> pd.DataFrame:
        query = (select(rec.c.id, rec.c.t, rec.c.physician_id, rec.c.type_id, c.kind,
                        c.severity, c.timing)
                 .join(c, c.procedure_id == rec.c.id)
                 .where(c.status == RecordStatus.FINAL.value))
        if since is not None:
            query = query.where(rec.c.performed_at >= since)
        if limit is None:
            return scope.rows(query.order_by(rec.c.t, rec.c.id, c.id), names)
        return scope.rows(query.order_by(rec.c.t.desc(), rec.c.id.desc(), c.id.desc())
                           .limit(limit), names)

    def windows(flat: Any) -> Iterator[datetime]:
        if day is not None:
            yield datetime.combine(day, datetime.min.time(), UTC) - timedelta(milliseconds=500)
            return
        for times in WINDOWS:  # the n-th newest instant: an index-only scan
            moment = scope.conn.scalar(select(flat.c.performed_at)
                                       .order_by(flat.c.performed_at.desc())
                                       .offset(limit * times - 1).limit(1))  # type: ignore
            if moment is None or moment < EPOCH:  # fewer records than that: read them all
                return
            micros = (moment - EPOCH) // timedelta(microseconds=1)
            second = (micros + 500_000) // 1_000_000  # its t
            yield EPOCH + timedelta(seconds=second, milliseconds=500)

    rows = None
    if limit is not None:
        flat = scope.flat().rec
        for since in windows(flat):
            found = listed(flat, since)
            if len(found) == limit:
                rows = found
                break
    if rows is None:
        rows = listed(scope.rec)
    if limit is not None:
        rows = rows.iloc[::-1].reset_index(drop=True)
    rows["site_id"] = rows["room_id"] = 0
    names = _names(scope, rows)
    out = pd.DataFrame({"record_id": names["record_id"], "performed_at": names["performed_at"],
                        "procedure": names["procedure"], "physician": names["physician"],
                        "kind": rows["kind"], "severity": rows["severity"],
                        "timing": rows["timing"]})
    return out.reset_index(drop=True)
