"""How the analysis frame is read: one query returning 10 numbers a record, and their unpacking.

Why packing: reading a value into Python costs about the same whatever it is, so the query
returns 10 numbers a record instead of 21 (ids and small fields packed into integers below
2**53, so one float64 array holds them exactly), and numpy unpacks them. The booleans the
figures need become bits of one integer, the frame's `flags` column.

This module is private on purpose: it alone knows the bit layout. Everything else reads a
record's facts by name through `audit.analytics.snapshot.Snapshot` (`fact`, `confirmation_is`,
`region_is`), so the layout can change without touching a rule.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from sqlalchemy import (
    BigInteger,
    Connection,
    Integer,
    Text,
    and_,
    case,
    cast,
    extract,
    func,
    select,
    type_coerce,
)
from sqlalchemy.sql import ColumnElement

from audit.storage.models import (
    Patient,
    Physician,
    Procedure,
    ProcedureLevel,
    ProcedureType,
    Room,
    Site,
    UserAccount,
)
from audit.storage.scans import every_final
from audit.vocab import (
    PARTICULATE_STEROIDS,
    CarmOperator,
    ContrastConfirmation,
    DoseSource,
    Guidance,
    PregnancyStatus,
    Region,
)

#: The `region` and `confirmation` columns hold positions in these tuples (7: anything else).
REGIONS: tuple[str, ...] = tuple(Region.values())
CONFIRMATIONS: tuple[str, ...] = tuple(ContrastConfirmation.values())


class Flag:
    """Bits of the `flags` column (one integer per record instead of a dozen columns)."""

    EXCEPTION_REASON = 1 << 0  # contrast_exception_reason given
    REALTIME = 1 << 1  # realtime_contrast true
    PULSED = 1 << 2
    PULSED_KNOWN = 1 << 3  # pulsed_fluoro recorded (true or false)
    LOW_DOSE = 1 << 4
    LOW_DOSE_KNOWN = 1 << 5
    UPTAKE = 1 << 6  # vascular_uptake true
    REPOSITIONED = 1 << 7  # needle_repositioned true
    PARTICULATE = 1 << 8  # particulate steroid injected
    PREGNANT = 1 << 9
    WARNINGS = 1 << 10  # saved with confirmed plausibility warnings
    FROM_RDSR = 1 << 11  # dose totals from a DICOM dose report
    DSA = 1 << 12  # guidance fluoroscopy_dsa
    DAP_REASON = 1 << 13  # no DAP, with a documented reason
    ULTRASOUND = 1 << 14  # radiation-free guidance: no dose figures (issue 15)
    TRAINEE = 1 << 15  # trainee_present true
    TRAINEE_KNOWN = 1 << 16  # trainee_present recorded (true or false)
    #: Bits 17-18: who operated the C-arm, a position in OPERATORS plus 1 (0: not recorded).
    OPERATOR_SHIFT = 17


#: The per-record facts the figures read, by the name the rules use (Snapshot.fact).
FACTS: dict[str, int] = {
    "contrast_exception_reason": Flag.EXCEPTION_REASON,
    "realtime_contrast": Flag.REALTIME,
    "pulsed_fluoro": Flag.PULSED,
    "pulsed_fluoro_recorded": Flag.PULSED_KNOWN,
    "low_dose_mode": Flag.LOW_DOSE,
    "low_dose_mode_recorded": Flag.LOW_DOSE_KNOWN,
    "vascular_uptake": Flag.UPTAKE,
    "needle_repositioned": Flag.REPOSITIONED,
    "particulate_steroid": Flag.PARTICULATE,
    "pregnant": Flag.PREGNANT,
    "saved_with_warnings": Flag.WARNINGS,
    "dose_from_report": Flag.FROM_RDSR,
    "dsa_guidance": Flag.DSA,
    "dap_missing_reason": Flag.DAP_REASON,
    "ultrasound_guidance": Flag.ULTRASOUND,
    "trainee_present": Flag.TRAINEE,
    "trainee_present_recorded": Flag.TRAINEE_KNOWN,
}
#: The `operator` column holds 1 + a position in this tuple, 0 where not recorded.
OPERATORS: tuple[str, ...] = tuple(CarmOperator.values())

#: Column name -> numpy dtype of the frame (also the columns of the frame file).
COLUMNS: dict[str, str] = {
    "id": "int64", "t": "int64", "site_id": "int32", "room_id": "int32",
    "physician_id": "int32", "technologist_id": "int32", "type_id": "int32",
    "patient_id": "int64", "region": "int8", "fluoro_time_s": "float64",
    "dap_gycm2": "float64", "air_kerma_mgy": "float64", "saved_images": "int32",
    "n_views": "int16", "n_levels": "int16", "confirmation": "int8", "flags": "int32",
    "weight_kg": "float64", "bmi": "float64", "operator": "int8",
}
ID_BITS = 12  # site, room, physician and procedure type ids below 4096 pack into one number
_ID_BASE = 1 << ID_BITS
_PATIENT_BASE = 1 << 32  # patient id below 2**32, technologist id below 2**20
MAX_SAVED_IMAGES = 255  # stored exactly up to this; compliance needs only ">= 1"
CHUNK = 100_000
#: PRAGMA mmap_size for the frame's scans; SQLite clamps it to its build's maximum (2 GB).
MMAP_BYTES = 1 << 40


def fact(flags: np.ndarray, name: str) -> np.ndarray:
    """One named fact (a key of FACTS) of each record, from the `flags` column."""
    try:
        bit = FACTS[name]
    except KeyError:
        raise ValueError(f"no record fact {name!r}; known: {', '.join(FACTS)}") from None
    return (flags & bit) != 0


def confirmation_code(status: ContrastConfirmation) -> int:
    """The `confirmation` column's value for a contrast-confirmation status."""
    return CONFIRMATIONS.index(status.value)


def region_code(region: Region) -> int:
    """The `region` column's value for a spinal region."""
    return REGIONS.index(region.value)


def confirmation_names(codes: np.ndarray) -> np.ndarray:
    """The `confirmation` column as status names ("?" for a value outside the vocabulary)."""
    return np.array(CONFIRMATIONS + ("?",) * 4, dtype=object)[codes]


def _bit(condition: ColumnElement[bool], bit: int, dialect: str) -> ColumnElement[int]:
    """`bit` where `condition` holds, else 0 (`condition` is never NULL: a nullable column is
    tested with IS or guarded by IS NOT NULL). SQLite's comparisons are the integers 0 and 1,
    so a product does it in one step (a CASE per bit and per record was a tenth of the
    frame's read time at a million records); PostgreSQL's booleans need the CASE."""
    if dialect == "sqlite":
        return type_coerce(condition, Integer) * bit
    return case((condition, bit), else_=0)


def _capped(value: ColumnElement[int], cap: int, dialect: str) -> ColumnElement[int]:
    if dialect == "sqlite":
        return func.min(value, cap)  # SQLite's scalar min of its arguments
    return case((value > cap, cap), else_=value)


def _view_count(dialect: str) -> ColumnElement[int]:
    """How many views `confirmation_views` lists (";"-separated; 0 when empty or not
    recorded), at most 7. On SQLite the separators are counted once, without the COALESCEs
    and CASEs of the portable form (about a fifth of the frame query's own time)."""
    column = Procedure.confirmation_views
    if dialect == "sqlite":
        separators = func.length(column) - func.length(func.replace(column, ";", ""))
        listed = type_coerce(column != "", Integer)
        return func.coalesce(func.min((separators + 1) * listed, 7), 0)
    views = func.coalesce(column, "")
    n_views = case((views == "", 0),
                   else_=func.length(views) - func.length(func.replace(views, ";", "")) + 1)
    return _capped(n_views, 7, dialect)


def _epoch(dialect: str) -> ColumnElement[int]:
    """performed_at as integer seconds since 1970 UTC, computed in the database."""
    if dialect == "sqlite":  # stored as UTC text "YYYY-MM-DD HH:MM:SS.ffffff"
        if sqlite3.sqlite_version_info >= (3, 38):
            return func.unixepoch(Procedure.performed_at)  # faster than strftime
        return cast(func.strftime("%s", Procedure.performed_at), Integer)
    return cast(extract("epoch", Procedure.performed_at), BigInteger)


def _has_json(column: Any) -> ColumnElement[bool]:
    """A JSON column holding something: neither SQL NULL nor JSON null nor an empty list."""
    as_text = cast(column, Text)
    return and_(column.is_not(None), as_text.not_in(["null", "[]"]))


def record_query(dialect: str) -> Any:
    """The frame query: 10 numbers a final record (see the packing above)."""
    p = Procedure

    def bit(condition: ColumnElement[bool], value: int) -> ColumnElement[int]:
        return _bit(condition, value, dialect)

    particulate = [s.value for s in PARTICULATE_STEROIDS]
    flags = (
        bit(p.contrast_exception_reason.is_not(None), Flag.EXCEPTION_REASON)
        + bit(p.realtime_contrast.is_(True), Flag.REALTIME)
        + bit(p.pulsed_fluoro.is_(True), Flag.PULSED)
        + bit(p.pulsed_fluoro.is_not(None), Flag.PULSED_KNOWN)
        + bit(p.low_dose_mode.is_(True), Flag.LOW_DOSE)
        + bit(p.low_dose_mode.is_not(None), Flag.LOW_DOSE_KNOWN)
        + bit(p.vascular_uptake.is_(True), Flag.UPTAKE)
        + bit(p.needle_repositioned.is_(True), Flag.REPOSITIONED)
        + bit(p.injectate.is_not(None) & p.injectate.in_(particulate), Flag.PARTICULATE)
        + bit(p.pregnancy_status == PregnancyStatus.PREGNANT.value, Flag.PREGNANT)
        + bit(_has_json(p.warnings), Flag.WARNINGS)
        + bit(p.dose_source != DoseSource.MANUAL.value, Flag.FROM_RDSR)
        + bit(p.guidance == Guidance.FLUOROSCOPY_DSA.value, Flag.DSA)
        + bit(p.dap_missing_reason.is_not(None), Flag.DAP_REASON)
        + bit(p.guidance == Guidance.ULTRASOUND.value, Flag.ULTRASOUND)
        + bit(p.trainee_present.is_(True), Flag.TRAINEE)
        + bit(p.trainee_present.is_not(None), Flag.TRAINEE_KNOWN)
        + case({o: (i + 1) << Flag.OPERATOR_SHIFT for i, o in enumerate(OPERATORS)},
               value=p.carm_operator, else_=0)
    )
    region = case({r: i for i, r in enumerate(REGIONS)}, value=p.region, else_=7)
    confirmation = case({c: i for i, c in enumerate(CONFIRMATIONS)},
                        value=p.contrast_confirmation, else_=7)
    small = (region + 8 * confirmation + 64 * _view_count(dialect)
             + 8192 * _capped(p.saved_images, MAX_SAVED_IMAGES, dialect)
             + 2097152 * cast(flags, BigInteger))  # 64-bit arithmetic on PostgreSQL too
    ids = (cast(p.procedure_type_id, BigInteger) + _ID_BASE * cast(p.room_id, BigInteger)
           + _ID_BASE ** 2 * cast(p.physician_id, BigInteger)
           + _ID_BASE ** 3 * cast(p.site_id, BigInteger))
    return (
        select(
            p.id.label("id"), _epoch(dialect).label("t"), ids.label("ids"),
            (cast(p.patient_id, BigInteger)
             + _PATIENT_BASE * cast(p.technologist_id, BigInteger)).label("who"),
            small.label("small"), p.fluoro_time_s, p.dap_gycm2, p.air_kerma_mgy,
            p.patient_weight_kg, p.bmi_kg_m2,
        )
        .where(every_final(dialect))  # a table scan on SQLite: audit.storage.scans
    )



def levels_query() -> Any:
    """Treated levels are counted in numpy from their procedure ids (a covering-index scan):
    joining a per-procedure count in SQL costs several times more than the whole frame."""
    return select(ProcedureLevel.procedure_id).order_by(ProcedureLevel.procedure_id)


@contextmanager
def _mapped(conn: Connection) -> Iterator[Any]:
    """The driver's connection, on SQLite with its file memory-mapped for the duration: a
    scan of every record then reads the pages where they lie instead of copying each one
    (about a quarter of SQLite's own time for the frame at a million records). The setting is
    the connection's and goes back to what it was (connections are pooled)."""
    raw = conn.connection.driver_connection
    if conn.dialect.name != "sqlite":
        yield raw
        return
    before = raw.execute("PRAGMA mmap_size").fetchone()[0]
    raw.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
    try:
        yield raw
    finally:
        raw.execute(f"PRAGMA mmap_size = {int(before)}")


def literal_sql(conn: Connection, query: Any) -> str:
    """The query's SQL with its values written in (numbers and fixed vocabulary only), as
    the driver's own cursor runs it here and a helper process runs it (_split_read)."""
    return str(query.compile(conn.engine, compile_kwargs={"literal_binds": True}))


def fetch(conn: Connection, query: Any,
          progress: Callable[[int], None] | None = None) -> list[np.ndarray]:
    """Run a numeric query and return its columns as float64 arrays (`progress`: told the
    rows read so far after each chunk).

    The driver's own cursor is read in chunks (no SQLAlchemy row objects), so memory stays near
    the arrays' size. (A second SQLite library in the process, e.g. an Arrow driver, would be
    faster but is unsafe: POSIX locks are per process, and one library closing the file drops
    the other's locks.)
    """
    sql = literal_sql(conn, query)
    width = len(query.selected_columns)
    # numpy takes the rows straight from the cursor (no list of tuples in between) into
    # records of `width` float64 fields, whose memory is the 2-D array: about 0.4 s of CPU less
    # than np.array over fetchmany's lists at a million records
    record = np.dtype([(f"c{i}", np.float64) for i in range(width)])
    with _mapped(conn) as raw:
        cursor = raw.cursor()
        try:
            cursor.execute(sql)
            parts = []
            while True:
                chunk = np.fromiter(itertools.islice(cursor, CHUNK), dtype=record)
                if not len(chunk):
                    break
                parts.append(chunk.view(np.float64).reshape(len(chunk), width))
                if progress is not None:
                    progress(sum(len(part) for part in parts))
        finally:
            cursor.close()
    block = np.concatenate(parts) if parts else np.empty((0, width), dtype=np.float64)
    return [np.ascontiguousarray(block[:, i]) for i in range(width)]


def level_ids(conn: Connection, where: Any = None) -> np.ndarray:
    """The procedure id of every treated level (those `where` selects), in any order: a
    record's count of levels is how often its id occurs. On SQLite the ids come back as one
    comma-separated text that numpy parses (a fifth of the time of a row per level, 1.5
    million of them at a million records); elsewhere as rows."""
    if conn.dialect.name != "sqlite":
        query = levels_query()
        return fetch(conn, query if where is None else query.where(where))[0].astype(np.int64)
    query = select(func.group_concat(ProcedureLevel.procedure_id))
    if where is not None:
        query = query.where(where)
    sql = literal_sql(conn, query)
    try:
        with _mapped(conn) as raw:
            text = raw.execute(sql).fetchone()[0]
    except sqlite3.DataError:  # beyond SQLite's longest string (a billion characters)
        query = levels_query()
        return fetch(conn, query if where is None else query.where(where))[0].astype(np.int64)
    if not text:
        return np.empty(0, dtype=np.int64)
    return np.fromstring(text, dtype=np.int64, sep=",")


def count_levels(record_id: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """How many of `levels` (procedure ids, one per treated level) name each record: a dense
    count by id when the ids are not sparse (linear time), else a lookup in the sorted ids."""
    if not len(record_id) or not len(levels):
        return np.zeros(len(record_id), dtype=np.int64)
    top = int(max(record_id.max(), levels.max()))
    if top <= 8 * (len(record_id) + len(levels)) + 1024:
        return np.bincount(levels, minlength=top + 1)[record_id]
    ids, counts = np.unique(levels, return_counts=True)
    at = np.minimum(np.searchsorted(ids, record_id), len(ids) - 1)
    return np.where(ids[at] == record_id, counts[at], 0)


def unpack(raw: list[np.ndarray], level_ids: np.ndarray) -> dict[str, np.ndarray]:
    """The 10 fetched numbers per record as the frame's COLUMNS (not yet in their dtypes); the
    levels counted (`level_ids`: a procedure id per treated level, any order)."""
    record_id = raw[0].astype(np.int64)
    ids = raw[2].astype(np.int64)
    who = raw[3].astype(np.int64)
    small = raw[4].astype(np.int64)
    n_levels = count_levels(record_id, level_ids.astype(np.int64, copy=False))
    mask = _ID_BASE - 1
    data = {
        "id": record_id,
        "t": raw[1].astype(np.int64),
        "site_id": (ids >> (3 * ID_BITS)) & mask,
        "room_id": (ids >> ID_BITS) & mask,
        "physician_id": (ids >> (2 * ID_BITS)) & mask,
        "technologist_id": who >> 32,
        "type_id": ids & mask,
        "patient_id": who & (_PATIENT_BASE - 1),
        "region": small & 7,
        "fluoro_time_s": raw[5],
        "dap_gycm2": raw[6],
        "air_kerma_mgy": raw[7],
        "saved_images": (small >> 13) & 255,
        "n_views": (small >> 6) & 7,
        "n_levels": n_levels,
        "confirmation": (small >> 3) & 7,
        "flags": small >> 21,
        "weight_kg": raw[8],  # nan where not recorded
        "bmi": raw[9],  # nan where weight or height is not recorded
        "operator": (small >> (21 + Flag.OPERATOR_SHIFT)) & 3,
    }
    # An ultrasound-guided record stores 0 s of fluoroscopy (no beam): no dose figure, so it
    # stays out of every dose statistic, reference level and alert (issue 15).
    radiation_free = ((small >> 21) & Flag.ULTRASOUND) != 0
    data["fluoro_time_s"] = np.where(radiation_free, np.nan, raw[5])
    return data


def check_packable(conn: Connection) -> None:
    """The packing needs small ids; say so plainly if a database ever outgrows it."""
    limits = ((Site.id, _ID_BASE), (Room.id, _ID_BASE), (Physician.id, _ID_BASE),
              (ProcedureType.id, _ID_BASE), (UserAccount.id, 1 << 20),
              (Patient.id, _PATIENT_BASE))
    for column, limit in limits:
        top = conn.execute(select(func.max(column))).scalar() or 0
        if top >= limit:
            raise OverflowError(f"{column} reaches {top}: the analysis frame packs it below "
                                f"{limit}; widen the packing in audit.analytics._packing")
