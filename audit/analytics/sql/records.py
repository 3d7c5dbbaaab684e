"""The records a figure covers, as SQL: one row per final record under the filters, with the
columns the analysis frame derives (audit.analytics._packing, snapshot, grouping), computed by
PostgreSQL instead.

Why one subquery with every derived column: PostgreSQL evaluates only the columns the query
that groups it uses, so a compliance count
pays for none of the dose columns, and no figure can disagree with another about what a
column means. Each column repeats one rule of the frame, and says which:

- `fluoro_time_s` is NULL for an ultrasound-guided record (it stores 0 s, no beam: the frame
  reads it as missing, so it is in no dose figure); KAP and Ka,r as stored (NULL = missing);
- `kap_corrected_gycm2`: KAP times the room's KAP correction factor (audit.dosimetry);
- `n_levels`: the treated levels counted (joined only where a figure uses it);
- contrast compliance: audit.contrast_rule, with the catalog's columns, as the daily summary
  (views counted up to 7, as the frame packs them);
- `OFFSET 0` keeps the subquery a unit: each column is computed once per record even where a
  figure uses it twice (the levels count, in a per-level figure grouped by levels), and
  PostgreSQL still drops the columns no figure uses;
- the period: the frame compares whole epoch seconds, rounded from the stored instant, so the
  bounds here are shifted by half a second (`period_conditions`), which keeps the index on
  performed_at usable and the records exactly the frame's.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Float,
    Integer,
    Interval,
    Text,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    not_,
    or_,
    select,
)
from sqlalchemy.sql import ColumnElement, Subquery

from audit.analytics._packing import OPERATORS
from audit.analytics.grouping import weight_bands
from audit.filters import Filters
from audit.storage.models import Procedure, ProcedureLevel, ProcedureType, Room
from audit.vocab import (
    BMI_BAND_LOWER,
    PARTICULATE_STEROIDS,
    ContrastConfirmation,
    ContrastPolicy,
    DoseSource,
    Guidance,
    PregnancyStatus,
    RecordStatus,
    Region,
)

HALF_SECOND = timedelta(milliseconds=500)
MAX_VIEWS = 7  # the frame packs confirmation views up to 7


def _flag(condition: ColumnElement[bool]) -> ColumnElement[int]:
    """A condition as 1/0 (summed for counts; NULL comparisons count as 0, as in the frame)."""
    return case((condition, 1), else_=0)


def month_of(moment: Any) -> ColumnElement[str]:
    """"YYYY-MM" of the record's UTC instant rounded to whole seconds, as the frame's months."""
    shifted = moment + literal(HALF_SECOND, Interval())
    return func.to_char(func.timezone("UTC", shifted), "YYYY-MM")


def period_conditions(filters: Filters) -> list[ColumnElement[bool]]:
    """The period as the frame applies it: round(epoch) >= start and < before, i.e. the
    instant >= start - 0.5 s and < before - 0.5 s (PostgreSQL rounds half away from zero)."""
    found = []
    if filters.start is not None:
        found.append(Procedure.performed_at >= filters.start - HALF_SECOND)
    if filters.before is not None:
        found.append(Procedure.performed_at < filters.before - HALF_SECOND)
    return found


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


def levels_per_record() -> Subquery:
    """Treated levels per record. Joined (PostgreSQL drops the join where no figure uses the
    count): at 1M records half the time of a count per record, and never slower."""
    return (select(ProcedureLevel.procedure_id.label("procedure_id"), func.count().label("n"))
            .group_by(ProcedureLevel.procedure_id).subquery("lv"))


def record_columns(levels: Subquery) -> dict[str, ColumnElement[Any]]:
    """Every derived column, by the name the figures use (`levels`: levels_per_record)."""
    p, t = Procedure, ProcedureType
    n_levels = func.coalesce(levels.c.n, 0)
    ultrasound = p.guidance == Guidance.ULTRASOUND.value
    realtime_required = func.coalesce(t.realtime_contrast_required, False).is_(True)
    eligible = and_(t.contrast_policy == ContrastPolicy.REQUIRED.value,
                    or_(not_(ultrasound), realtime_required))
    confirmed = p.contrast_confirmation == ContrastConfirmation.CONFIRMED.value
    contraindicated = p.contrast_confirmation == ContrastConfirmation.CONTRAINDICATED.value
    views = _views()
    parts = {
        "confirmed": confirmed,
        "contraindicated": contraindicated,
        "images": p.saved_images >= 1,
        "views_ok": views >= func.coalesce(t.min_views, 0),
        "realtime_ok": or_(not_(realtime_required), p.realtime_contrast.is_(True)),
    }
    compliant = and_(eligible, confirmed, parts["images"], parts["views_ok"],
                     parts["realtime_ok"])
    excepted = and_(eligible, contraindicated, p.contrast_exception_reason.is_not(None))
    with_beam = not_(ultrasound)
    columns: dict[str, ColumnElement[Any]] = {
        "id": p.id, "performed_at": p.performed_at,
        "t": cast(func.extract("epoch", p.performed_at), BigInteger),
        "month": month_of(p.performed_at),
        "site_id": p.site_id, "room_id": p.room_id, "physician_id": p.physician_id,
        "technologist_id": p.technologist_id, "type_id": p.procedure_type_id,
        "fluoro_time_s": case((with_beam, p.fluoro_time_s)),
        "dap_gycm2": p.dap_gycm2, "air_kerma_mgy": p.air_kerma_mgy,
        "kap_corrected_gycm2": cast(p.dap_gycm2 * Room.kap_correction_factor, Float),
        "weight_kg": p.patient_weight_kg, "bmi": p.bmi_kg_m2,
        "weight_band": _weight_band(p.patient_weight_kg), "bmi_band": _bmi_band(p.bmi_kg_m2),
        "operator": _operator(p.carm_operator), "n_levels": n_levels,
        "saved_images": case((p.saved_images > 255, 255), else_=p.saved_images),
        "n_views": views, "contrast_confirmation": p.contrast_confirmation,
        "min_views": func.coalesce(t.min_views, 0),
        "eligible": _flag(eligible), "compliant": _flag(compliant),
        "excepted": _flag(excepted),
        "non_compliant": _flag(and_(eligible, not_(compliant), not_(excepted))),
        "ultrasound": _flag(ultrasound),
        "pulsed": _flag(p.pulsed_fluoro.is_(True)),
        "pulsed_recorded": _flag(p.pulsed_fluoro.is_not(None)),
        "low_dose": _flag(p.low_dose_mode.is_(True)),
        "low_dose_recorded": _flag(p.low_dose_mode.is_not(None)),
        # data quality (audit.analytics.data_quality): no dose to miss under ultrasound
        "missing_dap": _flag(and_(p.dap_gycm2.is_(None), with_beam)),
        "missing_dap_documented": _flag(and_(p.dap_gycm2.is_(None), with_beam,
                                             p.dap_missing_reason.is_not(None))),
        "missing_air_kerma": _flag(and_(p.air_kerma_mgy.is_(None), with_beam)),
        "with_warnings": _flag(_has_json(p.warnings)),
        "from_dose_report": _flag(p.dose_source != DoseSource.MANUAL.value),
        # safety flags (audit.analytics.safety)
        "particulate_cervical_tfesi": _flag(and_(
            t.code == "TFESI", p.region == Region.CERVICAL.value,
            p.injectate.in_([s.value for s in PARTICULATE_STEROIDS]))),
        "uptake_not_repositioned": _flag(and_(p.vascular_uptake.is_(True),
                                              not_(p.needle_repositioned.is_(True)))),
        "levels_over_limit": _flag(and_(t.max_levels.is_not(None), t.max_levels >= 0,
                                        n_levels > t.max_levels)),
        "pregnant": _flag(p.pregnancy_status == PregnancyStatus.PREGNANT.value),
    }
    columns.update({f"part_{k}": _flag(v) for k, v in parts.items()})
    return columns


def _has_json(column: Any) -> ColumnElement[bool]:
    """As the frame's packing: neither SQL NULL nor JSON null nor an empty list."""
    as_text = cast(column, Text)
    return and_(column.is_not(None), as_text.not_in(["null", "[]"]))


def records(conn: Connection, filters: Filters, unit: bool = True) -> Subquery:
    """The final records under the filters with every derived column. Names were checked by
    the caller (an unknown name is an error, as on the frame); a name that matches no id
    gives no rows. unit=False: a plain subquery PostgreSQL may merge into the query, so a
    drill-down's condition and ORDER BY performed_at ... LIMIT reach the index and stop after
    LIMIT rows."""
    found = filters.id_conditions(conn)
    names = [false()] if found is None else found
    where: list[ColumnElement[bool]] = [Procedure.status == RecordStatus.FINAL.value,
                                        *period_conditions(filters), *names]
    if filters.record_status not in (None, RecordStatus.FINAL.value):
        where.append(false())  # the figures count final records only, as the frame holds
    if filters.record_ids is not None:
        where.append(Procedure.id.in_(list(filters.record_ids)))
    levels = levels_per_record()
    columns = record_columns(levels)
    return (select(*(c.label(k) for k, c in columns.items()))
            .select_from(Procedure)
            .join(ProcedureType, ProcedureType.id == Procedure.procedure_type_id)
            .join(Room, Room.id == Procedure.room_id)
            .outerjoin(levels, levels.c.procedure_id == Procedure.id)
            .where(*where).offset(0 if unit else None).subquery("rec"))
