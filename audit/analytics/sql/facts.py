"""The record facts (`record_fact`): one narrow row per final record holding what the SQL figures
derive from the procedure row and its treated levels, kept at the data version by refresh,
like the daily summary (audit.analytics.derived). PostgreSQL only, as the SQL figures are.

Why a table: the figures' records subquery (audit.analytics.sql.records) used to read the wide
procedure rows and count every record's treated levels (a hash aggregate over the whole
procedure_level table, 1.5M rows at 1M records, whatever the filters) in each figure. The
facts hold the count and every other per-record column once, in two fifths of a procedure
row (143 MB against 367 MB at 1M); the figures scan them and join only the small room and
procedure_type tables, for what can change without a procedure event (a room's KAP correction
factor, the catalog's contrast policy, real-time requirement, minimum of views, maximum of
levels, code).

Each column repeats one rule of the analysis frame (audit.analytics._packing, snapshot,
grouping), and says which: the fluoroscopy time is NULL under ultrasound (it stores 0 s, no
beam: the frame reads it as missing); views counted up to 7 and saved images up to 255, as the
frame packs them; the weight band, BMI band and operator codes of audit.analytics.grouping and
bands; the month of the instant rounded to whole seconds, as the frame's months.

How it stays current: `refresh_facts` reads the procedure events after the version the facts
reflect and recomputes the rows of the records they name (DELETE, then INSERT ... SELECT of
those that are final: a voided record leaves); an event that does not name its records, more
than INCREMENTAL_LIMIT of them, or new RULES rebuild everything (one INSERT ... SELECT). The
rows are a cache: a row altered behind the app's back stays wrong until that record changes
or `rebuild_facts` (`fluoro-audit database rebuild-facts`) recomputes the table. SQLite keeps
the table (the schema is one) but empty: its figures come from the analysis frame.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    Interval,
    Text,
    and_,
    case,
    cast,
    delete,
    exists,
    func,
    insert,
    literal,
    not_,
    select,
    text,
)
from sqlalchemy.sql import ColumnElement

from audit.analytics._packing import OPERATORS
from audit.analytics.derived import changed_procedures, refresh_versioned
from audit.analytics.grouping import weight_bands
from audit.errors import NeedsPostgreSQL
from audit.storage.models import Procedure, ProcedureLevel, RecordFact, RecordFactState
from audit.vocab import (
    BMI_BAND_LOWER,
    PARTICULATE_STEROIDS,
    DoseSource,
    Guidance,
    PregnancyStatus,
    RecordStatus,
    Region,
)

#: Bumped when what a row holds changes meaning: the next refresh rebuilds the table.
RULES = 1
_PG_FACTS_LOCK = 0x46616374  # "Fact"
HALF_SECOND = timedelta(milliseconds=500)
MAX_VIEWS = 7  # the frame packs confirmation views up to 7
MAX_IMAGES = 255  # and saved images up to 255
_CHUNK = 500


def month_of(moment: Any) -> ColumnElement[str]:
    """"YYYY-MM" of the record's UTC instant rounded to whole seconds, as the frame's months."""
    shifted = moment + literal(HALF_SECOND, Interval())
    return func.to_char(func.timezone("UTC", shifted), "YYYY-MM")


def _views() -> ColumnElement[int]:
    views = func.coalesce(Procedure.confirmation_views, "")
    n = case((views == "", 0),
             else_=func.length(views) - func.length(func.replace(views, ";", "")) + 1)
    return case((n > MAX_VIEWS, MAX_VIEWS), else_=n)


def _weight_band(weight: Any) -> ColumnElement[int]:
    """audit.analytics.grouping.weight_band_codes: band index, the last when not recorded."""
    bands = weight_bands()
    whens = [(and_(weight >= low, weight < high) if high != float("inf") else weight >= low,
              index) for index, (_, low, high) in enumerate(bands)]
    return case(*whens, else_=len(bands))


def _bmi_band(bmi: Any) -> ColumnElement[int]:
    """audit.analytics.bands.bmi_band_codes: lower bounds reached, "unknown" when missing."""
    reached = sum((case((bmi >= lower, 1), else_=0) for lower in BMI_BAND_LOWER[1:]),
                  start=cast(0, Integer))
    return case((bmi.is_(None), len(BMI_BAND_LOWER)), else_=reached)


def _operator(column: Any) -> ColumnElement[int]:
    """audit.analytics.bands.operator_codes: CarmOperator order, "not recorded" last."""
    return case({o: i for i, o in enumerate(OPERATORS)}, value=column, else_=len(OPERATORS))


def _has_json(column: Any) -> ColumnElement[bool]:
    """As the frame's packing: neither SQL NULL nor JSON null nor an empty list."""
    as_text = cast(column, Text)
    return and_(column.is_not(None), as_text.not_in(["null", "[]"]))


def fact_select(where: ColumnElement[bool] | None = None,
                level_where: ColumnElement[bool] | None = None) -> Any:
    """The fact rows of the final records `where` selects (all: None); `level_where` the same
    selection on procedure_level.procedure_id, so the levels counted are only theirs."""
    p = Procedure
    levels = select(ProcedureLevel.procedure_id.label("procedure_id"),
                    func.count().label("n")).group_by(ProcedureLevel.procedure_id)
    if level_where is not None:
        levels = levels.where(level_where)
    lv = levels.subquery("lv")
    ultrasound = p.guidance == Guidance.ULTRASOUND.value
    columns: dict[str, Any] = {
        "performed_at": p.performed_at,
        "fluoro_time_s": case((not_(ultrasound), p.fluoro_time_s)),
        "dap_gycm2": p.dap_gycm2, "air_kerma_mgy": p.air_kerma_mgy,
        "weight_kg": p.patient_weight_kg, "bmi": p.bmi_kg_m2,
        "procedure_id": p.id, "site_id": p.site_id, "room_id": p.room_id,
        "physician_id": p.physician_id, "technologist_id": p.technologist_id,
        "patient_id": p.patient_id, "procedure_type_id": p.procedure_type_id,
        "n_levels": func.coalesce(lv.c.n, 0),
        "weight_band": _weight_band(p.patient_weight_kg), "bmi_band": _bmi_band(p.bmi_kg_m2),
        "operator": _operator(p.carm_operator),
        "saved_images": case((p.saved_images > MAX_IMAGES, MAX_IMAGES), else_=p.saved_images),
        "n_views": _views(), "month": month_of(p.performed_at),
        "contrast_confirmation": p.contrast_confirmation,
        "ultrasound": ultrasound,
        "exception_documented": p.contrast_exception_reason.is_not(None),
        "realtime_contrast": p.realtime_contrast.is_(True),
        "pulsed_fluoro": p.pulsed_fluoro, "low_dose_mode": p.low_dose_mode,
        "dap_missing_documented": p.dap_missing_reason.is_not(None),
        "with_warnings": _has_json(p.warnings),
        "from_dose_report": p.dose_source != DoseSource.MANUAL.value,
        # the particulate-steroid flag's record part; the procedure (TFESI) is the catalog's
        "cervical_particulate": and_(p.region == Region.CERVICAL.value, p.injectate.in_(
            [s.value for s in PARTICULATE_STEROIDS])).is_(True),
        "uptake_not_repositioned": and_(p.vascular_uptake.is_(True),
                                        not_(p.needle_repositioned.is_(True))).is_(True),
        "pregnant": p.pregnancy_status == PregnancyStatus.PREGNANT.value,
    }
    query = (select(*(c.label(k) for k, c in columns.items())).select_from(p)
             .outerjoin(lv, lv.c.procedure_id == p.id)
             .where(p.status == RecordStatus.FINAL.value))
    return (query if where is None else query.where(where)), list(columns)


def _insert(conn: Connection, where: Any = None, level_where: Any = None) -> None:
    query, names = fact_select(where, level_where)
    # In time order: the drill-downs read the newest records of a filter backwards through
    # the index on performed_at, and neighbours in time then share pages (10M demo records,
    # filed patient by patient: the non-compliant list 0.2-0.43 s before, 0.12-0.2 s after).
    # Every insert, not only a full build: the first build after a bulk load (the demo's
    # COPY, a CSV import) comes as id ranges, and 5M demo records built that way lay in id
    # order (the non-compliant list of two rooms read 24,000 pages for 28,000 records).
    # Records logged later arrive about in time order anyway.
    query = query.order_by(Procedure.performed_at, Procedure.id)
    conn.execute(insert(RecordFact).from_select(names, query))


def rebuild(conn: Connection, ids: set[int] | None = None,
            ranges: list[tuple[int, int]] | None = None) -> None:
    """Recompute the rows of these record ids and id ranges (ids None: the whole table, then
    ANALYZE, so the figures' plans know its size at once), each as one DELETE and one
    INSERT ... SELECT."""
    if ids is None:
        conn.execute(delete(RecordFact))
        _insert(conn)
        if conn.dialect.name == "postgresql":  # the planner's statistics for the new rows
            conn.execute(text("ANALYZE record_fact"))
        return
    f, p, lv = RecordFact.procedure_id, Procedure.id, ProcedureLevel.procedure_id
    listed = sorted(ids)
    for lo in range(0, len(listed), _CHUNK):
        chunk = listed[lo:lo + _CHUNK]
        conn.execute(delete(RecordFact).where(f.in_(chunk)))
        _insert(conn, p.in_(chunk), lv.in_(chunk))
    for first, last in ranges or []:
        conn.execute(delete(RecordFact).where(f.between(first, last)))
        _insert(conn, p.between(first, last), lv.between(first, last))


def _redo(conn: Connection, synced: int | None, now: int) -> None:
    changed = None if synced is None else changed_procedures(conn, synced, now)
    if changed is not None and not (changed[0] or changed[1]):
        return
    # An empty table (the first refresh after a bulk load into a new database: the demo's
    # COPY, a CSV import) is built whole, in one insert in time order: built range by range,
    # each range is in time order only within itself (10M demo records came out in id order,
    # correlation 0.01, and the drill-downs read a page per record).
    if changed is None or _empty(conn):
        rebuild(conn)
    else:
        rebuild(conn, *changed)


def _empty(conn: Connection) -> bool:
    return not conn.scalar(select(exists(select(RecordFact.procedure_id))))


def _check(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        raise NeedsPostgreSQL(f"the record facts are kept on PostgreSQL only (the SQL figures' "
                         f"database); {engine.dialect.name} computes from the analysis frame")


def refresh_facts(engine: Engine) -> int:
    """Bring the record facts to the current data version (module doc); returns it. Two
    indexed reads when nothing changed."""
    _check(engine)
    return refresh_versioned(engine, RecordFactState, RULES, _PG_FACTS_LOCK, _redo)


def rebuild_facts(engine: Engine) -> int:
    """Recompute every fact row from the records, whatever the state says (a repair: rows
    altered or deleted behind the app's back); returns the data version they reflect."""
    _check(engine)
    return refresh_versioned(engine, RecordFactState, RULES, _PG_FACTS_LOCK, _redo,
                             force=True)
