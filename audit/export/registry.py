"""The sections an export may contain, by name, and which of them each export kind writes.

The registry holds the section functions themselves. It imports audit.export.sections (the
procedure log and the audit trail) directly; the summaries (audit.export.summaries) are reached
through small functions that import them on first call, because they load pandas and the
analytics, which a log or audit-trail export, and the command line's start, should not pay for.
Nothing here is imported by the sections, so there is no cycle to hide.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine

from audit.errors import FieldError, ValidationFailed
from audit.export.sections import (
    audit_trail_section,
    count_audit_events,
    count_procedures,
    procedures_section,
)
from audit.export.types import Section, SectionContext, SectionData

SECTIONS: dict[str, Section] = {}


def register_section(section: Section) -> None:
    """Add (or replace) an export section by name: how the summaries plug in.

    A section is one CSV file of an export. Its function takes a SectionContext and returns
    SectionData:

        def compliance_section(ctx: SectionContext) -> SectionData:
            frame = compliance_by_group(ctx.connection, ctx.filters)   # SQL aggregate
            return SectionData.from_frame(COMPLIANCE_COLUMNS, frame)

    - ctx.connection is the export's read snapshot (use it, not a new session, so every file
      of the export shows the same data); ctx.filters are the export's filters (apply the ones
      that make sense and list them in Section.honours); ctx.include_phi says whether
      patient_id may appear (a summary should never need it).
    - Columns carry the data-dictionary entry written to data_dictionary.csv; their kind
      decides rendering (csvsafe.cell): numbers stay numbers, text is neutralised, datetimes
      become ISO 8601 UTC. Rows are Python values in column order (from_rows) or a DataFrame
      (from_frame); large sections should stream chunks (SectionData(columns, chunks)).
    - `count` (optional) returns the row count with the same filters, for progress.
    """
    SECTIONS[section.name] = section


def lookup(names: Sequence[str]) -> list[Section]:
    """The sections of these names, in order, each once; an unknown (or no) name is an error
    that lists the allowed ones."""
    unknown = [n for n in names if n not in SECTIONS]
    if unknown or not names:
        raise ValidationFailed([FieldError("sections", f"unknown: {', '.join(unknown) or 'none'};"
                                           f" allowed: {', '.join(SECTIONS)}")])
    return [SECTIONS[n] for n in dict.fromkeys(names)]


# --- the summaries, imported when first used ----------------------------------------------------

def _compliance_section(ctx: SectionContext) -> SectionData:
    from audit.export.summaries import compliance_section

    return compliance_section(ctx)


def _dose_section(ctx: SectionContext) -> SectionData:
    from audit.export.summaries import dose_section

    return dose_section(ctx)


def _reference_section(ctx: SectionContext) -> SectionData:
    from audit.export.summaries import reference_section

    return reference_section(ctx)


def _alerts_section(ctx: SectionContext) -> SectionData:
    from audit.export.summaries import alerts_section

    return alerts_section(ctx)


def _count_alerts(ctx: SectionContext) -> int:
    from audit.export.summaries import count_alerts

    return count_alerts(ctx)


def _refresh_stored_alerts(engine: Engine, cache: dict[str, Any]) -> None:
    from audit.export.summaries import refresh_stored_alerts

    refresh_stored_alerts(engine, cache)


# --- the built-in sections -----------------------------------------------------------------------

register_section(Section(
    "procedures", "procedures.csv", "The procedure log, one row per procedure",
    procedures_section, count_procedures,
    honours=("from", "before", "site", "room", "physician", "procedure_code",
             "include_voided"), period_of="performed_at",
))
register_section(Section(
    "audit_trail", "audit_trail.csv", "Audit events of the period (who changed what, when)",
    audit_trail_section, count_audit_events,
    honours=("from", "before"), period_of="occurred_at",
))
# The summaries: the dashboards' figures, computed by the same functions.
_SUMMARY_FILTERS = ("from", "before", "site", "room", "physician", "procedure_code")
register_section(Section(
    "compliance", "compliance.csv",
    "Contrast-confirmation compliance, overall and by physician, room, procedure and month",
    _compliance_section, honours=_SUMMARY_FILTERS, period_of="performed_at",
))
register_section(Section(
    "dose", "dose_by_procedure.csv",
    "Dose statistics by procedure beside the local reference levels (DRL, achievable, typical)",
    _dose_section, honours=_SUMMARY_FILTERS, period_of="performed_at",
))
register_section(Section(
    "reference_levels", "reference_levels.csv",
    "Reference levels in use: published, adopted and the SRDLs, each with its source",
    _reference_section, honours=("procedure_code",),
))
register_section(Section(
    "alerts", "alerts.csv", "Dose alerts with their acknowledgement",
    _alerts_section, _count_alerts, honours=_SUMMARY_FILTERS, period_of="performed_at",
    prepare=_refresh_stored_alerts,
))

#: What `fluoro-audit export KIND` writes.
KINDS: dict[str, tuple[str, ...]] = {
    "log": ("procedures",),
    "audit-trail": ("audit_trail",),
    "summary": ("compliance", "dose", "reference_levels", "alerts"),
}
