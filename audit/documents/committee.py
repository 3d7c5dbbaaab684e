"""The radiation safety committee's quarterly report as a PDF (issue 14).

Pages: a cover (period, sites, data completeness); contrast-confirmation compliance with its
95% interval, the p-chart and the breakdowns by physician, room and procedure; dose per
procedure against the local DRL or typical value and the published values, and the physician
scorecard (named, or pseudonymised); alerts raised and their follow-up; safety flags and data
quality; definitions and sources. The figures are audit.documents.committee_figures' (one
figure source, the dashboards' figures); the charts are the dashboards' Altair specs rendered to
SVG. Written through a temporary name; the audit event holds the period and the SHA-256.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine

from audit.analytics.snapshot import FrameCache
from audit.analytics.source import FigureSource
from audit.auth import Actor
from audit.documents import typeset, words
from audit.documents.charts import p_chart_spec
from audit.documents.committee_figures import STEPS, CommitteeFigures, Progress, gather
from audit.documents.events import COMMITTEE_REPORT, record_document
from audit.storage.engine import write_session
from audit.vocab import DoseQuantity

lit = typeset.literal
#: Decimals each dose quantity is printed with (medians, levels).
DECIMALS = {"fluoro_time_s": 1, "dap_gycm2": 2, "air_kerma_mgy": 1}
KIND_WORDS = {"srdl": "Substantial radiation dose level", "cumulative": "Cumulative dose",
              "investigation": "Investigation level", "all": "All alerts"}
FLAG_WORDS = {"particulate_cervical_tfesi": "Particulate steroid in cervical TFESI",
              "uptake_not_repositioned": "Vascular uptake without needle repositioning",
              "levels_over_limit": "More levels than the catalog allows",
              "pregnant": "Pregnant patient",
              "srdl_reached": "Substantial radiation dose level reached"}


def quantity_words(quantity: str) -> str:
    try:
        return DoseQuantity(quantity).label
    except ValueError:
        return quantity.replace("_", " ")


def dose_value(quantity: str, value: Any) -> str:
    """A dose figure as the report prints it (and as its tests look for it)."""
    return words.number(value, DECIMALS.get(quantity, 2), empty="no data")


def write_committee_report(engine: Engine, actor: Actor, out: Path, *, first: date | None,
                           last: date | None, sites: tuple[str, ...] = (),
                           pseudonymise: bool = False,
                           progress: Progress | None = None,
                           frames: FrameCache | None = None,
                           source: FigureSource | None = None) -> dict[str, Any]:
    """Gather, typeset, write `out` and audit it; returns file, bytes, SHA-256, event id."""
    _, info = committee_document(engine, actor, first=first, last=last, sites=sites,
                                 pseudonymise=pseudonymise, progress=progress, frames=frames,
                                 source=source,
                                 deliver=lambda pdf: typeset.write_atomically(out, pdf))
    return {"file": str(out), **info}


def committee_document(engine: Engine, actor: Actor, *, first: date | None, last: date | None,
                       sites: tuple[str, ...] = (), pseudonymise: bool = False,
                       progress: Progress | None = None,
                       deliver: Callable[[bytes], Any] | None = None,
                       frames: FrameCache | None = None,
                       source: FigureSource | None = None,
                       ) -> tuple[bytes, dict[str, Any]]:
    """The report's PDF and what its audit event recorded (period, sites, SHA-256); the event
    and `deliver(pdf)` are one transaction."""
    typeset.warm_up_charts()  # the p-chart's engine starts while the figures are gathered
    figures = gather(engine, actor, first, last, sites=sites,  # type: ignore[arg-type]
                     pseudonymise=pseudonymise, progress=progress, frames=frames,
                     source=source)
    if progress:
        progress(STEPS[-1], len(STEPS) - 1, len(STEPS))
    pdf = committee_pdf(figures)
    period = f"{figures.filters.first_day} to {figures.filters.last_day}"
    digest = typeset.sha256(pdf)
    with write_session(engine) as session:
        event_id = record_document(session, actor, COMMITTEE_REPORT, period, access="pdf",
                                   sha256=digest, sites=figures.sites,
                                   pseudonymised=pseudonymise, snapshot=figures.token)
        if deliver is not None:
            deliver(pdf)
    if progress:
        progress("done", len(STEPS), len(STEPS))
    return pdf, {"bytes": len(pdf), "sha256": digest, "audit_event_id": event_id,
                 "period": period, "records": figures.records}


def committee_pdf(figures: CommitteeFigures) -> bytes:
    return typeset.compile_pdf(*committee_source(figures))


def committee_source(figures: CommitteeFigures) -> tuple[str, dict[str, bytes | str]]:
    """The report's Typst source and the files it includes (the p-chart's SVG): what the PDF
    is compiled from, so two sets of figures can be compared as printed."""
    files: dict[str, bytes | str] = {}
    if len(figures.p_chart):
        files["pchart.svg"] = typeset.chart_svg(p_chart_spec(figures.p_chart))
    source = "".join([
        typeset.preamble("Radiation safety committee report",
                         f"Radiation safety committee report, {figures.filters.describe()}"),
        _cover(figures), _compliance(figures, "pchart.svg" in files), _dose(figures),
        _alerts(figures), _quality(figures), _definitions()])
    return source, files


def _cover(f: CommitteeFigures) -> str:
    c = f.completeness.iloc[0] if len(f.completeness) else None
    rows = [["Records in the period", words.count(f.records)]]
    if c is not None:
        rows += [["Missing KAP", f"{words.count(c.missing_dap)} "
                                 f"({words.percent(c.missing_dap_share)})"],
                 ["Missing KAP with a documented reason", words.count(c.missing_dap_documented)],
                 ["Missing Ka,r", f"{words.count(c.missing_air_kerma)} "
                                  f"({words.percent(c.missing_air_kerma_share)})"],
                 ["Saved with confirmed plausibility warnings", words.count(c.with_warnings)],
                 ["Dose taken from a DICOM dose report", words.count(c.from_dose_report)]]
    return ("#align(center)[#v(3cm)#text(size: 22pt, weight: \"bold\")[Radiation safety "
            "committee report]\n\n#v(0.5cm)#text(size: 14pt)["
            f"{lit(f'{words.day(f.filters.first_day)} to {words.day(f.filters.last_day)}')}]"
            "]\n#v(1cm)\n"
            f"*Sites:* {lit(', '.join(f.sites) or 'none')}\n\n"
            f"*Prepared:* {lit(f'{f.generated_at:%Y-%m-%d %H:%M} UTC')}, from one snapshot of "
            f"the log (audit event {lit(f.token)}).\n\n"
            f"*Physicians:* {'pseudonymised (Physician A, B, ...)' if f.pseudonymised else 'named'}"
            "\n\n== Data completeness\n"
            + typeset.table(["Measure", "Value"], rows, "(1fr, auto)", {1})
            + "#pagebreak()\n")


def _compliance(f: CommitteeFigures, chart: bool) -> str:
    o = f.compliance.iloc[0]
    parts = ["= Contrast-confirmation compliance\n",
             f"Compliance: *{lit(words.percent(o.rate))}* (95% interval "
             f"{lit(words.percent(o.ci_low))} to {lit(words.percent(o.ci_high))}); "
             f"eligible records: *{lit(words.count(o.eligible))}*, compliant "
             f"{lit(words.count(o.compliant))}, documented exceptions "
             f"{lit(words.count(o.excepted))}, not compliant "
             f"{lit(words.count(o.non_compliant))}.\n\n"]
    if chart:
        parts.append('#image("pchart.svg", width: 100%)\n')
    for by, table in f.breakdowns.items():
        parts.append(f"== By {by}\n")
        parts.append(typeset.table(
            [by.capitalize(), "Eligible", "Compliant", "Exceptions", "Compliance",
             "95% interval"],
            [[getattr(r, by), words.count(r.eligible), words.count(r.compliant),
              words.count(r.excepted), words.percent(r.rate),
              f"{words.percent(r.ci_low)} to {words.percent(r.ci_high)}"]
             for r in table.itertuples()], "(1fr, auto, auto, auto, auto, auto)",
            {1, 2, 3, 4, 5}))
    return "".join(parts) + "#pagebreak()\n"


def _dose(f: CommitteeFigures) -> str:
    parts = ["= Dose per procedure and reference levels\n",
             "Medians and 75th percentiles of the period's records beside the reference level "
             "(a local diagnostic reference level, DRL, where enough rooms qualify, else the "
             "typical value) and the published values.\n\n"]
    rows = []
    for r in f.drl.itertuples():
        dose = f.dose[f.dose["procedure"] == r.procedure]
        d = dose.iloc[0] if len(dose) else None
        q = r.quantity
        rows.append([r.procedure, quantity_words(q),
                     words.count(d[f"{q}_n"]) if d is not None else "0",
                     dose_value(q, d[f"{q}_median"] if d is not None else None),
                     dose_value(q, d[f"{q}_p75"] if d is not None else None),
                     dose_value(q, r.level), str(r.figure).capitalize()])
    parts.append(typeset.table(["Procedure", "Quantity", "Records", "Median", "75th pct",
                                "Reference level", "Figure"], rows,
                               "(1.3fr, 1.6fr, 1fr, 1fr, 1fr, 1.2fr, 1.3fr)", {2, 3, 4, 5}))
    published = [[r.procedure, quantity_words(r.quantity), r.published]
                 for r in f.drl.itertuples() if not words.missing(r.published) and r.published]
    if published:
        parts.append("== Published values\n")
        parts.append(typeset.table(["Procedure", "Quantity", "Published values"], published,
                                   "(auto, auto, 1fr)"))
    parts.append("== Physician scorecard\nDose per level treated relative to peers for the "
                 "same procedures (1.0 is typical), share above the reference level, technique "
                 "and compliance.\n\n")
    parts.append(typeset.table(
        ["Physician", "Records", "KAP ratio", "Time ratio", "Above reference", "Pulsed",
         "Low-dose mode", "Compliance"],
        [[r.physician, words.count(r.records), words.number(r.kap_per_level_ratio, 2),
          words.number(r.time_per_level_ratio, 2), words.percent(r.share_above),
          words.percent(r.pulsed_rate), words.percent(r.low_dose_rate),
          words.percent(r.compliance_rate)] for r in f.scorecard.itertuples()],
        "(2fr, 1fr, 1fr, 1fr, 1.2fr, 1fr, 1.2fr, 1.2fr)", {1, 2, 3, 4, 5, 6, 7}))
    return "".join(parts) + "#pagebreak()\n"


def _alerts(f: CommitteeFigures) -> str:
    parts = ["= Alerts raised and their follow-up\n"]
    rates = f.alert_rates
    parts.append(typeset.table(
        ["Alert", "Raised", "Per 100 procedures", "Acknowledged", "Open", "Withdrawn"],
        [[KIND_WORDS.get(r.kind, r.kind), words.count(r.raised),
          words.number(r.raised_per_100, 2), words.count(r.acknowledged), words.count(r.open),
          words.count(r.withdrawn)] for r in rates.itertuples()],
        "(1fr, auto, auto, auto, auto, auto)", {1, 2, 3, 4, 5}))
    parts.append("== By kind and quantity\n")
    parts.append(typeset.table(
        ["Alert", "Quantity", "Open", "Acknowledged", "Withdrawn", "Total"],
        [[KIND_WORDS.get(r.kind, r.kind), quantity_words(r.quantity), words.count(r.open),
          words.count(r.acknowledged), words.count(r.withdrawn), words.count(r.total)]
         for r in f.alerts.itertuples()] if len(f.alerts) else [],
        "(1fr, auto, auto, auto, auto, auto)", {2, 3, 4, 5}))
    if not len(f.alerts):
        parts.append("No alert in the period.\n")
    return "".join(parts)


def _quality(f: CommitteeFigures) -> str:
    s = f.safety.iloc[0] if len(f.safety) else pd.Series(dtype=object)
    rows = [[label, words.count(s.get(name, 0))] for name, label in FLAG_WORDS.items()]
    return ("= Safety flags and data quality\n"
            + typeset.table(["Safety flag", "Records"], rows, "(1fr, auto)", {1})
            + "Data completeness is on the cover. Each flagged record is listed on the Data "
              "quality page of the app.\n#pagebreak()\n")


def _definitions() -> str:
    items = [
        ("Compliance", "compliant records divided by eligible records less documented "
         "exceptions; the 95% interval is Wilson's score interval."),
        ("p-chart", "each month's compliance against the centre line (the period's pooled "
         "rate) and 3-sigma control limits for that month's number of records; a point outside "
         "them is more than chance variation."),
        ("Local DRL", "the 75th percentile of room medians, computed when enough rooms each "
         "have enough records (ICRP Publication 135, 2017)."),
        ("Typical value", "the median of all records of the procedure, used when too few rooms "
         "qualify for a local DRL (ICRP Publication 135)."),
        ("KAP", "kerma-area product in Gy·cm², corrected by each room's calibration factor for "
         "reference levels."),
        ("Ka,r", "reference air kerma in mGy at the interventional reference point."),
        ("Scorecard ratios", "a physician's median KAP or fluoroscopy time per level treated, "
         "divided by everyone's median for the same procedure, averaged over their procedures "
         "weighted by records."),
        ("Substantial radiation dose level", "NCRP Report 168 and SIR 2009 levels (Ka,r 5 Gy, "
         "KAP 500 Gy·cm², 60 minutes) that call for patient follow-up."),
        ("Investigation level", "the local 99th percentile of the procedure's records, never "
         "below three times its median."),
        ("Effective dose", "KAP times a region coefficient; a population estimate, not a "
         "personal risk (NCRP Report 184, 2019)."),
    ]
    body = "".join(f"/ {lit(term)}: {lit(text)}\n" for term, text in items)
    return ("= Definitions and sources\n" + body
            + "\nEvery figure was computed by the functions behind the app's dashboards and "
              "the command `fluoro-audit report`, on one snapshot of the log. Sources are "
              "listed in the project's reference document (docs/reference.md).\n")
