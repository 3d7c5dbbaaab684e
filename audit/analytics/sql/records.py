"""The records a figure covers, as SQL: one row per final record under the filters, with the
columns the analysis frame derives (audit.analytics._packing, snapshot, grouping), computed by
PostgreSQL instead.

Why one subquery with every derived column: PostgreSQL evaluates only the columns the query
that groups it uses, so a compliance count pays for none of the dose columns, and no figure
can disagree with another about what a column means. What depends on the record alone (its
ids, instant, month, quantities, bands, treated levels, views) is read from the record facts
(audit.analytics.sql.facts: one narrow row per final record, no procedure_level aggregate, no
wide procedure row); what depends on a small table that can change is joined here, each rule
saying where it comes from:

- `kap_corrected_gycm2`: KAP times the room's KAP correction factor (audit.dosimetry);
- contrast compliance: audit.contrast_rule, with the catalog's policy, real-time requirement
  and minimum of views, as the daily summary;
- the safety flags' catalog parts (the TFESI code, the maximum of levels);
- `OFFSET 0` keeps the subquery a unit: each column is computed once per record even where a
  figure uses it twice, and PostgreSQL still drops the columns no figure uses;
- the period: the frame compares whole epoch seconds, rounded from the stored instant, so the
  bounds here are shifted by half a second (`period_conditions`), which keeps the index on
  performed_at usable and the records exactly the frame's.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Float,
    and_,
    case,
    cast,
    false,
    func,
    not_,
    or_,
    select,
)
from sqlalchemy.sql import ColumnElement, Subquery

from audit.analytics.sql import facts
from audit.filters import Filters, Target
from audit.storage.models import ProcedureType, RecordFact, Room
from audit.vocab import ContrastConfirmation, ContrastPolicy, RecordStatus

HALF_SECOND = facts.HALF_SECOND

def _flag(condition: ColumnElement[bool]) -> ColumnElement[int]:
    """A condition as 1/0 (summed for counts; NULL comparisons count as 0, as in the frame)."""
    return case((condition, 1), else_=0)


def facts_target(f: Any = RecordFact) -> Target:
    """What `Filters.id_conditions` and the period filter on: the facts' copies of the keys
    (the facts hold final records only, so no status); `f`: the table or an alias of it."""
    return Target(f.performed_at, f.procedure_id, f.site_id, f.room_id, f.physician_id,
                  f.procedure_type_id, f.technologist_id, f.patient_id)


FACTS = facts_target()


def period_conditions(filters: Filters, column: Any = RecordFact.performed_at,
                      ) -> list[ColumnElement[bool]]:
    """The period as the frame applies it: round(epoch) >= start and < before, i.e. the
    instant >= start - 0.5 s and < before - 0.5 s (PostgreSQL rounds half away from zero)."""
    found = []
    if filters.start is not None:
        found.append(column >= filters.start - HALF_SECOND)
    if filters.before is not None:
        found.append(column < filters.before - HALF_SECOND)
    return found


def record_columns(f: Any = RecordFact) -> dict[str, ColumnElement[Any]]:
    """Every derived column, by the name the figures use: the facts' columns (of the table or
    an alias of it), and the rules that read the room and the catalog."""
    t = ProcedureType
    realtime_required = func.coalesce(t.realtime_contrast_required, False).is_(True)
    eligible = and_(t.contrast_policy == ContrastPolicy.REQUIRED.value,
                    or_(not_(f.ultrasound), realtime_required))
    confirmed = f.contrast_confirmation == ContrastConfirmation.CONFIRMED.value
    contraindicated = f.contrast_confirmation == ContrastConfirmation.CONTRAINDICATED.value
    parts = {
        "confirmed": confirmed,
        "contraindicated": contraindicated,
        "images": f.saved_images >= 1,
        "views_ok": f.n_views >= func.coalesce(t.min_views, 0),
        "realtime_ok": or_(not_(realtime_required), f.realtime_contrast),
    }
    compliant = and_(eligible, confirmed, parts["images"], parts["views_ok"],
                     parts["realtime_ok"])
    excepted = and_(eligible, contraindicated, f.exception_documented)
    with_beam = not_(f.ultrasound)
    columns: dict[str, ColumnElement[Any]] = {
        "id": f.procedure_id, "performed_at": f.performed_at,
        "t": cast(func.extract("epoch", f.performed_at), BigInteger),
        "month": f.month,
        "site_id": f.site_id, "room_id": f.room_id, "physician_id": f.physician_id,
        "technologist_id": f.technologist_id, "type_id": f.procedure_type_id,
        "fluoro_time_s": f.fluoro_time_s,
        "dap_gycm2": f.dap_gycm2, "air_kerma_mgy": f.air_kerma_mgy,
        "kap_corrected_gycm2": cast(f.dap_gycm2 * Room.kap_correction_factor, Float),
        "weight_kg": f.weight_kg, "bmi": f.bmi,
        "weight_band": f.weight_band, "bmi_band": f.bmi_band,
        "operator": f.operator, "n_levels": f.n_levels,
        "saved_images": f.saved_images,
        "n_views": f.n_views, "contrast_confirmation": f.contrast_confirmation,
        "min_views": func.coalesce(t.min_views, 0),
        "eligible": _flag(eligible), "compliant": _flag(compliant),
        "excepted": _flag(excepted),
        "non_compliant": _flag(and_(eligible, not_(compliant), not_(excepted))),
        "ultrasound": _flag(f.ultrasound),
        "pulsed": _flag(f.pulsed_fluoro.is_(True)),
        "pulsed_recorded": _flag(f.pulsed_fluoro.is_not(None)),
        "low_dose": _flag(f.low_dose_mode.is_(True)),
        "low_dose_recorded": _flag(f.low_dose_mode.is_not(None)),
        # data quality (audit.analytics.data_quality): no dose to miss under ultrasound
        "missing_dap": _flag(and_(f.dap_gycm2.is_(None), with_beam)),
        "missing_dap_documented": _flag(and_(f.dap_gycm2.is_(None), with_beam,
                                             f.dap_missing_documented)),
        "missing_air_kerma": _flag(and_(f.air_kerma_mgy.is_(None), with_beam)),
        "with_warnings": _flag(f.with_warnings),
        "from_dose_report": _flag(f.from_dose_report),
        # safety flags (audit.analytics.safety)
        "particulate_cervical_tfesi": _flag(and_(t.code == "TFESI", f.cervical_particulate)),
        "uptake_not_repositioned": _flag(f.uptake_not_repositioned),
        "levels_over_limit": _flag(and_(t.max_levels.is_not(None), t.max_levels >= 0,
                                        f.n_levels > t.max_levels)),
        "pregnant": _flag(f.pregnant),
        # the flags' record parts as stored: a drill-down's condition the partial indexes of
        # the facts answer (migration 0023; audit.analytics.sql.drill.flagged_records)
        "fact_cervical_particulate": f.cervical_particulate,
        "fact_uptake_not_repositioned": f.uptake_not_repositioned,
        "fact_pregnant": f.pregnant,
    }
    columns.update({f"part_{k}": _flag(v) for k, v in parts.items()})
    return columns


def records(conn: Connection, filters: Filters, unit: bool = True,
            facts: Any = RecordFact) -> Subquery:
    """The final records under the filters with every derived column, from the record facts
    (the caller refreshed them: SqlSource does before each figure). Names were checked by
    the caller (an unknown name is an error, as on the frame); a name that matches no id
    gives no rows. unit=False: a plain subquery PostgreSQL may merge into the query, so a
    drill-down's condition and ORDER BY performed_at ... LIMIT reach the index and stop after
    LIMIT rows. `facts`: the facts to read, the table or an alias of a subquery of it (a
    drill's rare rows read first: audit.analytics.sql.drill.flagged_records)."""
    f = facts
    found = filters.id_conditions(conn, facts_target(f))
    names = [false()] if found is None else found
    where: list[ColumnElement[bool]] = [*period_conditions(filters, f.performed_at), *names]
    if filters.record_status not in (None, RecordStatus.FINAL.value):
        where.append(false())  # the figures count final records only, as the frame holds
    if filters.record_ids is not None:
        where.append(f.procedure_id.in_(list(filters.record_ids)))
    columns = record_columns(f)
    return (select(*(c.label(k) for k, c in columns.items()))
            .select_from(f)
            .outerjoin(ProcedureType, ProcedureType.id == f.procedure_type_id)
            .outerjoin(Room, Room.id == f.room_id)
            .where(*where).offset(0 if unit else None).subquery("rec"))
