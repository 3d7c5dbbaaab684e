"""The export's summary sections: compliance, dose and reference levels, alerts.

Each one is the figures the dashboards and `fluoro-audit report` show, computed by the same
library calls (audit.analytics.compliance, audit.analytics.dose_stats,
audit.analytics.reference_levels, audit.alerts.store) on the analysis frame read inside the
export's read snapshot, so a summary matches procedures.csv of the same export and the numbers
on the pages. audit.export.registry lists them as sections, importing this module only when an
export asks for one (it loads pandas and the analytics).

Filters: the export's period must be whole UTC days (the dashboards' periods); a date-time
that is not a UTC midnight is refused, naming the field. Site, room, physician and procedure
filter the records as on the dashboards; local reference levels are the organisation's, over
the period for every room (ICRP 135), whatever the other filters.

Alerts are stored (each has an identity to acknowledge), so before the export's snapshot is
taken they are brought up to date with the records (audit.alerts.store.refresh_alerts, what
`report alerts` and the Alerts page do); the frame read for that is reused for the other
summaries when the snapshot shows no change since.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, time
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, func, select

from audit.alerts.store import alerts_query, refresh_alerts
from audit.analytics.compliance import compliance
from audit.analytics.dose_stats import dose_stats
from audit.analytics.grouping import QUANTITIES
from audit.analytics.reference_levels import local_drls, reference_table
from audit.analytics.snapshot import Snapshot, catch_up, load_snapshot, read_snapshot
from audit.errors import FieldError, ValidationFailed
from audit.export.cells import Kind
from audit.export.types import CHUNK_ROWS, Column, SectionContext, SectionData
from audit.filters import Filters
from audit.storage.models import Alert, Patient, Room, Site
from audit.vocab import AlertKind, AlertStatus, DoseQuantity, ReferenceKind

#: Groupings of compliance.csv after the overall row, in this order.
COMPLIANCE_GROUPINGS: tuple[str, ...] = ("physician", "room", "procedure", "month")
UNITS: dict[str, str] = {"fluoro_time_s": "s", "dap_gycm2": "Gy·cm²", "air_kerma_mgy": "mGy"}
_SNAPSHOT = "snapshot"
_QUANTITIES = "; ".join(DoseQuantity.values())
_ROOM_LABEL = "room name, or 'site · room' where two sites have a room of that name"


# --- filters and the frame -------------------------------------------------------------------

def summary_filters(ctx: SectionContext) -> Filters:
    """The export's filters, checked for what the summaries need: whole UTC days (the
    dashboards' periods), and where a room and a site are both named, that room at that site
    (else a summary would be silently empty)."""
    f = ctx.filters
    _whole_day("from", f.start)
    _whole_day("to", f.before)
    if f.rooms and f.sites:
        _check_rooms_at_sites(ctx.connection, f.rooms, f.sites)
    return f


def _whole_day(name: str, moment: datetime | None) -> None:
    if moment is None:
        return
    utc = moment.astimezone(UTC)
    if utc.time() != time.min:
        raise ValidationFailed([FieldError(name, (
            f"{utc:%Y-%m-%dT%H:%M:%SZ} is not a UTC midnight; the summaries (compliance, dose, "
            "reference levels, alerts) cover whole UTC days, as the dashboards do: give a date "
            "(YYYY-MM-DD)"))])


def _check_rooms_at_sites(connection: Connection, rooms: tuple[str, ...],
                          sites: tuple[str, ...]) -> None:
    """Each room (by name, or "site · name") is at one of the sites."""
    rows = connection.execute(select(Room.name, Site.name).join(Site, Site.id == Room.site_id)
                              .where(Site.name.in_(sites)))
    found = {name for pair in rows for name in (pair[0], f"{pair[1]} · {pair[0]}")}
    site = sites[0] if len(sites) == 1 else ", ".join(sites)
    for room in rooms:
        if room not in found:
            raise ValidationFailed([FieldError("room", f"no room named {room!r} at site "
                                                       f"{site!r}")])


def snapshot(ctx: SectionContext) -> Snapshot:
    """The analysis frame as the export's read snapshot sees it (read once per export; a
    frame read before the snapshot, by the alerts refresh, is brought up to it)."""
    snap = ctx.cache.get(_SNAPSHOT)
    snap = read_snapshot(ctx.connection) if snap is None else catch_up(ctx.connection, snap)
    ctx.cache[_SNAPSHOT] = snap
    return snap


# --- compliance.csv --------------------------------------------------------------------------

COMPLIANCE_COLUMNS: tuple[Column, ...] = (
    Column("grouping", Kind.ENUM, allowed="; ".join(("overall", *COMPLIANCE_GROUPINGS)),
           required="yes", description="What the row is grouped by; overall is every record "
           "matching the export's filters"),
    Column("group", Kind.TEXT, required="yes", description="The physician, room (" + _ROOM_LABEL
           + "), procedure code or month (YYYY-MM, UTC); 'all' on the overall row"),
    Column("eligible", Kind.INTEGER, "records", required="yes", description="Final records whose "
           "catalog contrast policy is 'required' (voided records never count)"),
    Column("compliant", Kind.INTEGER, "records", required="yes", description="Confirmed, at "
           "least one saved image, at least the catalog's minimum views, and real-time contrast "
           "where the catalog requires it"),
    Column("excepted", Kind.INTEGER, "records", required="yes", description="Contrast "
           "contraindicated with a documented reason"),
    Column("non_compliant", Kind.INTEGER, "records", required="yes",
           description="eligible - compliant - excepted"),
    Column("rate", Kind.NUMBER, "fraction 0-1", description="compliant / (eligible - excepted); "
           "empty when every eligible record is excepted"),
    Column("ci_low", Kind.NUMBER, "fraction 0-1", description="Lower bound of the 95% Wilson "
           "score interval of the rate"),
    Column("ci_high", Kind.NUMBER, "fraction 0-1", description="Upper bound of the 95% Wilson "
           "score interval of the rate"),
)


def compliance_section(ctx: SectionContext) -> SectionData:
    """Overall, then by physician, room, procedure and month (audit.analytics.compliance's
    compliance(), the function the Compliance page and `report compliance` call)."""
    snap, filters = snapshot(ctx), summary_filters(ctx)
    parts = [compliance(snap, filters).rename(columns={"scope": "group"})
             .assign(grouping="overall")]
    for by in COMPLIANCE_GROUPINGS:
        parts.append(compliance(snap, filters, by).rename(columns={by: "group"})
                     .assign(grouping=by))
    return SectionData.from_frame(COMPLIANCE_COLUMNS, pd.concat(parts, ignore_index=True))


# --- dose_by_procedure.csv -------------------------------------------------------------------

DOSE_COLUMNS: tuple[Column, ...] = (
    Column("procedure", Kind.TEXT, required="yes", description="Procedure catalog code"),
    Column("quantity", Kind.ENUM, allowed=_QUANTITIES, required="yes",
           description="Dose quantity: fluoroscopy time, kerma-area product (DAP), air kerma "
           "at the reference point (Ka,r)"),
    Column("unit", Kind.TEXT, required="yes", description="Unit of every value on the row"),
    Column("records", Kind.INTEGER, "records", required="yes", description="Final records of "
           "the procedure matching the export's filters"),
    Column("n", Kind.INTEGER, "records", required="yes", description="Of those, records with "
           "this quantity (a record without it is left out of this quantity only)"),
    Column("median", Kind.NUMBER, "unit column", description="Median (linear interpolation, "
           "numpy's default)"),
    Column("p75", Kind.NUMBER, "unit column", description="75th percentile (linear "
           "interpolation)"),
    Column("local_figure", Kind.ENUM, allowed="local DRL; typical value",
           description="What the local figure is (ICRP 135): a local DRL, with enough rooms of "
           "enough records (settings drl_min_rooms, drl_min_room_records), else a typical value, "
           "the median of the pooled records: a comparator, not a DRL"),
    Column("local_kind", Kind.ENUM, allowed="; ".join((ReferenceKind.DRL.value,
                                                        ReferenceKind.TYPICAL.value)),
           description="The same as a code: drl, or typical"),
    Column("local_rooms", Kind.INTEGER, "rooms", description="Rooms counted: rooms with at "
           "least local_min_room_records records (over the period, every room and physician)"),
    Column("local_rooms_with_records", Kind.INTEGER, "rooms", description="Rooms with any "
           "record of the quantity over the period"),
    Column("local_records", Kind.INTEGER, "records", description="Records behind the local "
           "figure (over the period, every room and physician)"),
    Column("local_room_records_min", Kind.INTEGER, "records", description="Fewest records in "
           "a room the figure rests on (the rooms counted for a DRL; every room for a typical "
           "value)"),
    Column("local_min_rooms", Kind.INTEGER, "rooms", description="Threshold applied: rooms a "
           "local DRL needs (setting drl_min_rooms, ICRP 135)"),
    Column("local_min_room_records", Kind.INTEGER, "records", description="Threshold applied: "
           "records a room needs to count (setting drl_min_room_records, ICRP 135)"),
    Column("local_median", Kind.NUMBER, "unit column", description="Median of those records "
           "(KAP: times each room's KAP correction factor)"),
    Column("local_drl", Kind.NUMBER, "unit column", description="Local diagnostic reference "
           "level: 75th percentile of the room medians (ICRP 135); empty when the figure is a "
           "typical value"),
    Column("achievable", Kind.NUMBER, "unit column", description="Achievable dose: median of "
           "the room medians (NCRP 172); empty when the figure is a typical value"),
    Column("typical", Kind.NUMBER, "unit column", description="Typical value: the median of "
           "the pooled records, given instead of a DRL below the thresholds"),
    Column("local_kap_corrected", Kind.BOOLEAN, description="true: the local figure is computed "
           "from KAP times each room's KAP correction factor (median and p75 above are the "
           "displayed KAP)"),
    Column("local_basis", Kind.TEXT, description="How the local figure was computed"),
    Column("local_source", Kind.TEXT, description="The thresholds applied and their sources"),
    Column("published", Kind.TEXT, description="Published values for the procedure and "
           "quantity, for comparison (statistic, value, source, n)"),
)


def dose_section(ctx: SectionContext) -> SectionData:
    """Per procedure and quantity: audit.analytics.dose_stats.dose_stats (the Dose page,
    `report dose`) beside audit.analytics.reference_levels.local_drls (`report drl`)."""
    snap, filters = snapshot(ctx), summary_filters(ctx)
    stats = dose_stats(snap, filters, by=("procedure",))
    quantities = list(QUANTITIES)
    long = pd.concat([
        stats[["procedure", "records", f"{q}_n", f"{q}_median", f"{q}_p75"]]
        .rename(columns={f"{q}_n": "n", f"{q}_median": "median", f"{q}_p75": "p75"})
        .assign(quantity=q, unit=UNITS[q], order=i)
        for i, q in enumerate(quantities)], ignore_index=True)
    local = local_drls(snap, filters).rename(columns={
        "rooms": "local_rooms", "records": "local_records", "drl": "local_drl",
        "kind": "local_kind", "basis": "local_basis", "figure": "local_figure",
        "rooms_with_records": "local_rooms_with_records",
        "room_records_min": "local_room_records_min", "min_rooms": "local_min_rooms",
        "min_room_records": "local_min_room_records", "kap_corrected": "local_kap_corrected",
        "source": "local_source"}).drop(columns=["type_id", "level"])
    table = long.merge(local, on=["procedure", "quantity"], how="left")
    table = (table.assign(key=table["procedure"].str.lower())
             .sort_values(["key", "order"], kind="stable"))
    return SectionData.from_frame(DOSE_COLUMNS, table)


# --- reference_levels.csv --------------------------------------------------------------------

REFERENCE_COLUMNS: tuple[Column, ...] = (
    Column("procedure", Kind.TEXT, required="yes", description="Procedure catalog code; 'all' "
           "for the substantial radiation dose levels (SRDL), which apply to every procedure"),
    Column("quantity", Kind.ENUM, allowed=_QUANTITIES, required="yes",
           description="Dose quantity"),
    Column("unit", Kind.TEXT, required="yes", description="Unit of value"),
    Column("kind", Kind.ENUM, allowed="; ".join(ReferenceKind.values()), required="yes",
           description="published: a comparison value from the literature (never a "
           "threshold); drl, achievable, typical, investigation: adopted by an administrator; "
           "srdl: the alert threshold setting"),
    Column("statistic", Kind.ENUM, allowed="median; mean; p75; threshold; unstated",
           required="yes", description="Which statistic the value is"),
    Column("value", Kind.NUMBER, "unit column", required="yes", description="The level"),
    Column("sample_size", Kind.INTEGER, "patients or procedures",
           description="Size of the sample behind the value, where the source gives it"),
    Column("source", Kind.TEXT, required="yes", description="Where the value comes from "
           "(publication, local computation and period, or the setting's source)"),
    Column("note", Kind.TEXT, description="What the value covers"),
    Column("effective_from", Kind.DATETIME, "ISO 8601 date", description="In force from this "
           "day (publication year for published values)"),
)


def reference_section(ctx: SectionContext) -> SectionData:
    """Every active stored reference level and the SRDL settings, each with its source
    (audit.analytics.reference_levels.reference_table, the Dose page's table)."""
    snap = snapshot(ctx)
    table = reference_table(snap, ctx.filters.procedures)
    table = table.assign(unit=table["quantity"].map(UNITS),
                         sample_size=table["sample_size"].astype("Int64"))
    return SectionData.from_frame(REFERENCE_COLUMNS, table)


# --- alerts.csv ------------------------------------------------------------------------------

def alert_columns(include_phi: bool) -> list[Column]:
    """alerts.csv's columns; patient_id (the MRN) only when PHI is included."""
    patient = [Column("patient_ref", Kind.TEXT, required="yes", description="Keyed pseudonym "
                      "of the patient, as in procedures.csv")]
    if include_phi:
        patient.append(Column("patient_id", Kind.TEXT, required="yes",
                              description="Medical record number (PHI)"))
    return [
        Column("alert_id", Kind.INTEGER, required="yes", description="The alert's number"),
        Column("kind", Kind.ENUM, allowed="; ".join(AlertKind.values()), required="yes",
               description="srdl: a record at a substantial radiation dose level; "
               "investigation: a record at the investigation level of its procedure; "
               "cumulative: a patient's dose over the rolling window"),
        Column("quantity", Kind.ENUM, allowed=_QUANTITIES, required="yes",
               description="The quantity that reached the threshold"),
        Column("unit", Kind.TEXT, required="yes", description="Unit of value and threshold"),
        Column("status", Kind.ENUM, allowed="; ".join(AlertStatus.values()), required="yes",
               description="open; acknowledged (by the RSO, with a note); withdrawn (no longer "
               "met: a record voided or amended, or a threshold changed)"),
        Column("performed_at", Kind.DATETIME, "ISO 8601, UTC", required="yes",
               description="When the triggering procedure was performed (cumulative: the "
               "record that first reached the threshold)"),
        *patient,
        Column("record_id", Kind.INTEGER, required="yes",
               description="The triggering procedure (record_id in procedures.csv)"),
        Column("procedure", Kind.TEXT, required="yes", description="Its procedure code"),
        Column("site", Kind.TEXT, required="yes", description="Its site"),
        Column("room", Kind.TEXT, required="yes", description="Its room"),
        Column("physician", Kind.TEXT, required="yes", description="Its performing physician"),
        Column("value", Kind.NUMBER, "unit column", required="yes", description="The record's "
               "value (cumulative: the highest sum over the window)"),
        Column("threshold", Kind.NUMBER, "unit column", required="yes",
               description="The level it reached"),
        Column("threshold_source", Kind.TEXT, required="yes", description="Where the "
               "threshold comes from (setting and its source, or how the investigation level "
               "was computed)"),
        Column("window_start", Kind.DATETIME, "ISO 8601, UTC", description="Cumulative: the "
               "first record summed"),
        Column("window_end", Kind.DATETIME, "ISO 8601, UTC", description="Cumulative: the "
               "last record of the episode"),
        Column("record_ids", Kind.LIST, description="The records whose dose the alert counts, "
               "';'-separated"),
        Column("detected_at", Kind.DATETIME, "ISO 8601, UTC", required="yes",
               description="When the alert was first raised"),
        Column("withdrawn_reason", Kind.TEXT, description="Why a withdrawn alert no longer "
               "applies"),
        Column("acknowledged_at", Kind.DATETIME, "ISO 8601, UTC", description="When the "
               "latest follow-up note was written"),
        Column("acknowledged_by", Kind.TEXT, description="Who wrote it (username)"),
        Column("note", Kind.TEXT, description="The follow-up: what was done"),
        Column("patient_informed", Kind.BOOLEAN, description="Whether the patient was "
               "informed"),
        Column("skin_check_date", Kind.DATETIME, "ISO 8601 date", description="Skin check "
               "booked for this day"),
        Column("acknowledgements", Kind.INTEGER, "notes", required="yes",
               description="Follow-up notes on the alert (the latest is shown)"),
    ]


#: alerts.csv column <- alerts_query column, where the names differ.
_ALERT_SOURCE = {"record_id": "procedure_id"}


def _alerts(ctx: SectionContext) -> Any:
    patient: dict[str, Any] = {"patient_ref": Patient.pseudonym}
    if ctx.include_phi:
        patient["patient_id"] = Patient.mrn
    return alerts_query(summary_filters(ctx), patient, count_acknowledgements=True)


def alerts_section(ctx: SectionContext) -> SectionData:
    """Stored alerts with their latest acknowledgement, oldest first
    (audit.alerts.store.alerts_query,
    the Alerts page's query), streamed."""
    columns = alert_columns(ctx.include_phi)
    query = _alerts(ctx).order_by(Alert.performed_at, Alert.id)
    names = [_ALERT_SOURCE.get(c.name, c.name) for c in columns]

    def chunks() -> Iterator[list[list[Any]]]:
        result = ctx.connection.execution_options(stream_results=True,
                                                  yield_per=CHUNK_ROWS).execute(query)
        try:
            for part in result.mappings().partitions(CHUNK_ROWS):
                yield [[UNITS.get(row["quantity"]) if name == "unit" else row[name]
                        for name in names] for row in part]
        finally:
            result.close()

    return SectionData(columns, chunks())


def count_alerts(ctx: SectionContext) -> int:
    query = select(func.count()).select_from(_alerts(ctx).subquery())
    return int(ctx.connection.scalar(query) or 0)


def refresh_stored_alerts(engine: Engine, cache: dict[str, Any]) -> None:
    """Before the snapshot: bring the stored alerts up to date with the records (a write, so
    it cannot happen inside the export's read snapshot); keep the frame for the summaries."""
    snap = load_snapshot(engine)
    refresh_alerts(engine, snap)
    cache[_SNAPSHOT] = snap
