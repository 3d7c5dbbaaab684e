"""What the dashboards call things (issue 12): column headers, enumerated values, settings and
the glossary, in words a quality officer reads without the code beside them.

Why one module: the same column ("p75", "drl", "dap_gycm2") appears on several pages and in
several tables; named here once, it reads the same everywhere, and a test can ask every table
whether its headers came from here. Record fields take their screen names from
dashboard.widgets.FIELD_LABELS and their units from the data dictionary (audit/dictionary.py);
the three dose quantities use DoseQuantity.label ("KAP (Gy·cm²)"). The data frames keep their
internal names: only what is drawn changes (dashboard/tables.py applies these labels).
"""

from __future__ import annotations

import re
from dataclasses import fields

from audit import Settings, dictionary, vocab
from audit.vocab import DoseQuantity
from dashboard.wording import FIELD_LABELS

#: Quantity -> (short name, unit): "KAP", "Gy·cm²".
QUANTITIES: dict[str, tuple[str, str]] = {
    DoseQuantity.DAP_GYCM2.value: ("KAP", "Gy·cm²"),
    DoseQuantity.FLUORO_TIME_S.value: ("Fluoroscopy time", "s"),
    DoseQuantity.AIR_KERMA_MGY.value: ("Ka,r", "mGy"),
}
#: The room-corrected KAP column of the analysis frame reads as KAP (its basis is said beside).
QUANTITY_ALIASES = {"kap_corrected_gycm2": DoseQuantity.DAP_GYCM2.value}

#: Statistics and figures the analytics return, named for people. A name in QUANTITY_COLUMNS
#: also gets the page's unit when the table is about one quantity ("75th percentile (Gy·cm²)").
ANALYTIC_LABELS: dict[str, str] = {
    # distributions and reference figures
    "n": "Records", "records": "Records", "count": "Records",
    "p5": "5th percentile", "p25": "25th percentile", "p50": "Median", "p75": "75th percentile",
    "p95": "95th percentile", "median": "Median", "mean": "Mean",
    "drl": "Local DRL", "achievable": "Achievable dose", "typical": "Typical value",
    "published_median": "Published median", "published": "Published values",
    "local_median": "Local median", "figure": "Figure", "level": "Value",
    "rooms": "Rooms counted", "rooms_with_records": "Rooms with records",
    "room_records_min": "Fewest records in a room", "min_rooms": "Rooms needed",
    "min_room_records": "Records needed per room", "basis": "Basis", "source": "Source",
    "kap_corrected": "KAP room-corrected", "low": "From", "high": "To", "line": "Line",
    "value": "Value", "quantity": "Quantity", "statistic": "Statistic", "kind": "Kind",
    "sample_size": "Sample size", "note": "Note", "effective_from": "In force from",
    "figure_field": "Catalog figure", "levels": "Levels treated", "weight_band": "Weight band",
    "month": "Month (UTC)", "procedure": "Procedure",
    # compliance
    "eligible": "Eligible", "compliant": "Compliant", "excepted": "Excepted",
    "non_compliant": "Non-compliant", "rate": "Compliance", "ci_low": "95% CI from",
    "ci_high": "95% CI to", "centre": "Centre line", "lcl": "Lower control limit",
    "ucl": "Upper control limit", "signal": "Outside control limits", "scope": "Scope",
    "views": "Confirmation views", "why": "Why",
    # scorecard
    "kap_per_level_ratio": "KAP per level vs peers", "time_per_level_ratio":
    "Fluoroscopy time per level vs peers", "share_above": "Above the reference level",
    "pulsed_rate": "Pulsed fluoroscopy", "low_dose_rate": "Low-dose mode",
    "compliance_rate": "Contrast compliance",
    # data quality
    "missing_dap": "No KAP", "missing_dap_documented": "No KAP, reason documented",
    "missing_air_kerma": "No Ka,r", "with_warnings": "Saved with warnings",
    "from_dose_report": "Dose from a dose report", "missing_dap_share": "No KAP",
    "missing_air_kerma_share": "No Ka,r", "with_warnings_share": "Saved with warnings",
    "from_dose_report_share": "Dose from a dose report", "flag": "Flag", "meaning": "Safety flag",
    # alerts
    "alert_id": "Alert", "patient": "Patient", "threshold": "Threshold", "procedures":
    "Procedures", "open": "Open", "acknowledged": "Acknowledged", "withdrawn": "Withdrawn",
    "total": "Total", "raised": "Raised", "open_per_100": "Open per 100 procedures",
    "raised_per_100": "Raised per 100 procedures", "srdl": "SRDL", "cumulative":
    "Cumulative dose", "investigation": "Investigation level", "latest": "Latest procedure",
    "window_start": "Window from", "window_end": "Window to",
    "threshold_source": "Threshold source", "acknowledged_at": "Acknowledged at",
    "acknowledged_by": "Acknowledged by", "patient_informed": "Patient informed",
    "skin_check_date": "Skin check", "withdrawn_reason": "Why withdrawn",
    "acknowledge": "Acknowledge", "percentile": "Local percentile",
    "floor": "Floor (factor × median)", "setting": "Setting",
    # effective dose, dose reports, exports
    "region": "Region", "k": "Coefficient k (mSv per Gy·cm²)", "file": "File",
    "match": "Matched by",
    "events": "Irradiation events", "filled": "Filled from the report", "details": "Details",
    "name": "File", "rows": "Rows", "bytes": "Bytes", "sha256": "SHA-256",
    # irradiation events of dose reports (issue 13)
    "sequence": "Event", "event_type": "Event type", "fluoro_mode": "Fluoro mode",
    "plane": "Plane", "started_at": "Started", "kvp": "Tube voltage (kVp)", "tube_current_ma":
    "Tube current (mA)", "field_area_cm2": "Field area (cm²)", "exposure_time_s":
    "Exposure time (s)", "duration_s": "Irradiation duration (s)", "primary_angle_deg":
    "Primary angle (°)", "secondary_angle_deg": "Secondary angle (°)",
    "report_id": "Dose report", "study_datetime": "Study time", "source_file": "File",
    "model": "C-arm model", "warnings": "Warnings", "reports": "Dose reports",
    "fluoro_events": "Fluoroscopy events", "pulsed_event_share": "Pulsed (share of events)",
    "fluoro_event_time_s": "Fluoroscopy time in events (s)",
    "pulsed_time_share": "Pulsed (share of time)",
    "low_rate_time_share": "At 7.5 pulses/s or less (share of pulsed time)",
    "form_recorded": "Forms answering pulsed", "form_pulsed_share": "Pulsed, as the form says",
    "form_low_dose_share": "Low-dose mode, as the form says",
    "time_share": "Share of pulsed time", "median_events": "Median events per procedure",
    "median_fluoro_events": "Median fluoroscopy events",
    "median_acquisition_events": "Median acquisitions (images and runs)",
    "agrees": "Sum agrees with the log",
    "report_dap_gycm2": "KAP, sum of the reports (Gy·cm²)",
    "report_fluoro_time_s": "Fluoroscopy time, sum of the reports (s)",
    "report_air_kerma_mgy": "Ka,r, sum of the reports (mGy)",
    "dap_gycm2_difference": "KAP: log vs sum", "fluoro_time_s_difference":
    "Fluoroscopy time: log vs sum", "air_kerma_mgy_difference": "Ka,r: log vs sum",
    # case mix, radiation-free guidance, complications (issue 15)
    "bmi_band": "BMI band (kg/m²)", "operator": "C-arm operated by",
    "radiation_free": "Without radiation (ultrasound)",
    "radiation_free_share": "Share without radiation", "adjusted_ratio":
    "Case-mix-adjusted ratio", "crude_ratio": "Unadjusted ratio",
    "observed_median": "Observed median", "expected_median": "Expected median (same case mix)",
    "bmi_known_share": "Records with a known BMI", "with_complication": "With a complication",
    "complications": "Complications", "severe": "Severe", "complication_rate":
    "Complication rate", "contrast_reaction": "Contrast reactions", "vasovagal_reaction":
    "Vasovagal reactions", "dural_puncture": "Dural punctures", "nerve_injury":
    "Nerve injuries", "hematoma": "Hematomas", "infection": "Infections", "other": "Other",
    "severity": "Severity", "timing": "Recorded", "group": "Group",
}
#: Columns in the unit of the quantity a table is about.
QUANTITY_COLUMNS = frozenset({
    "p5", "p25", "p50", "p75", "p95", "median", "mean", "drl", "achievable", "typical",
    "published_median", "local_median", "level", "low", "high", "value", "threshold",
    "percentile", "floor", "observed_median", "expected_median"})
#: Counts: whole numbers with thousands separators, even when a missing value made them float.
COUNT_COLUMNS = frozenset({
    "n", "records", "count", "rooms", "rooms_with_records", "room_records_min", "min_rooms",
    "min_room_records", "sample_size", "eligible", "compliant", "excepted", "non_compliant",
    "saved_images", "views", "missing_dap", "missing_dap_documented", "missing_air_kerma",
    "with_warnings", "from_dose_report", "procedures", "open", "acknowledged", "withdrawn",
    "total", "raised", "srdl", "cumulative", "investigation", "record_id", "alert_id",
    "events", "rows", "bytes", "dsa_runs", "version", "levels", "sequence", "report_id",
    "warnings", "reports", "fluoro_events", "form_recorded", "radiation_free",
    "with_complication", "complications", "severe", "contrast_reaction", "vasovagal_reaction",
    "dural_puncture", "nerve_injury", "hematoma", "infection", "other"})
#: Shares (0 to 1), shown as percentages.
SHARE_COLUMNS = frozenset({
    "rate", "ci_low", "ci_high", "centre", "lcl", "ucl", "share_above", "pulsed_rate",
    "low_dose_rate", "compliance_rate", "missing_dap_share", "missing_air_kerma_share",
    "with_warnings_share", "from_dose_report_share", "pulsed_event_share", "pulsed_time_share",
    "low_rate_time_share", "form_pulsed_share", "form_low_dose_share", "time_share",
    "dap_gycm2_difference", "fluoro_time_s_difference", "air_kerma_mgy_difference",
    "radiation_free_share", "bmi_known_share", "complication_rate"})
#: Ratios to a peer figure (1.0 = typical).
RATIO_COLUMNS = frozenset({"kap_per_level_ratio", "time_per_level_ratio", "adjusted_ratio",
                           "crude_ratio"})

#: Decimals per quantity: KAP to 0.01 Gy·cm², fluoroscopy time to 0.1 s, Ka,r to 0.1 mGy.
DECIMALS: dict[str, int] = {"dap_gycm2": 2, "fluoro_time_s": 1, "air_kerma_mgy": 1,
                            "effective_dose_msv": 3, "background_days": 1,
                            "patient_weight_kg": 1, "contrast_volume_ml": 1,
                            "pulse_rate_pps": 1, "dap_value": 2, "k": 2, "kvp": 1,
                            "tube_current_ma": 1, "field_area_cm2": 1, "exposure_time_s": 3,
                            "duration_s": 2, "primary_angle_deg": 1, "secondary_angle_deg": 1,
                            "fluoro_event_time_s": 1, "median_events": 1,
                            "median_fluoro_events": 1, "median_acquisition_events": 1,
                            "report_dap_gycm2": 2, "report_fluoro_time_s": 1,
                            "report_air_kerma_mgy": 1}

_STATS = {"n": "Records with", "median": "Median", "p75": "75th percentile",
          "p95": "95th percentile", "mean": "Mean"}
_DICTIONARY_UNITS_NOT_SHOWN = {"", "ISO 8601, UTC", "as entered", "count"}


def quantity_key(quantity: str | None) -> str | None:
    if quantity is None:
        return None
    return QUANTITY_ALIASES.get(quantity, quantity)


def quantity_label(quantity: str) -> str:
    """"KAP (Gy·cm²)"; an unknown name in words."""
    key = quantity_key(quantity)
    if key in QUANTITIES:
        return DoseQuantity(key).label
    return words(quantity)


def unit_of(quantity: str | None) -> str:
    key = quantity_key(quantity)
    return QUANTITIES[key][1] if key in QUANTITIES else ""


def column_label(name: str, quantity: str | None = None) -> str:
    """The header of column `name`; `quantity` is the dose quantity the table is about, whose
    unit the dose figures carry."""
    key = quantity_key(quantity)
    if name in ANALYTIC_LABELS:
        text = ANALYTIC_LABELS[name]
        if name in QUANTITY_COLUMNS and key in QUANTITIES:
            return f"{text} ({QUANTITIES[key][1]})"
        return text
    if quantity_key(name) in QUANTITIES:
        return quantity_label(name)
    for q, (short, unit) in QUANTITIES.items():  # dose_stats: dap_gycm2_median, ..._per_level_p75
        for per_level in ("_per_level", ""):
            prefix = f"{q}{per_level}_"
            stat = name[len(prefix):] if name.startswith(prefix) else None
            if stat in _STATS:
                each = " per level" if per_level else ""
                if stat == "n":
                    return f"Records with {short}"
                return f"{_STATS[stat]} {short}{each} ({unit})"
    if name in FIELD_LABELS:
        return field_label(name)
    return words(name)


def field_label(name: str) -> str:
    """A record field's screen name, with its unit from the data dictionary where the screen
    name lacks one."""
    if name in QUANTITIES:
        return quantity_label(name)
    text = FIELD_LABELS.get(name, words(name))
    field = dictionary.BY_NAME.get(name)
    unit = field.unit if field is not None else ""
    if unit not in _DICTIONARY_UNITS_NOT_SHOWN and f"({unit})" not in text:
        text = f"{text} ({unit})"
    return text


def words(name: object) -> str:
    """A name in words: "non_compliant" -> "Non compliant"; text already in words unchanged
    but for its first letter."""
    text = str(name).replace("_", " ").strip()
    return text[:1].upper() + text[1:]


# --- enumerated values ------------------------------------------------------------------------

#: How each vocabulary's values read on screen. Values not listed read as `words(value)`.
VALUE_LABELS: dict[type[vocab.Vocabulary], dict[str, str]] = {
    vocab.RecordStatus: {"final": "Final", "void": "Void"},
    vocab.AlertKind: {"srdl": "SRDL", "investigation": "Investigation level",
                      "cumulative": "Cumulative dose"},
    vocab.ReferenceKind: {"drl": "Local DRL", "achievable": "Achievable dose",
                          "typical": "Typical value", "investigation": "Investigation level",
                          "srdl": "SRDL", "published": "Published value"},
    vocab.ReferenceStatistic: {"p75": "75th percentile", "unstated": "Not stated"},
    vocab.FigureBasis: {"published_unverified": "Published, not checked against the paper"},
    vocab.DoseSource: {"manual": "Manual", "rdsr": "Dose report",
                       "manual+rdsr": "Manual and dose report"},
    vocab.Sex: {"F": "Female", "M": "Male", "O": "Other", "U": "Unknown"},
    vocab.Guidance: {"fluoroscopy_dsa": "Fluoroscopy with DSA", "ct_fluoroscopy":
                     "CT fluoroscopy", "ultrasound": "Ultrasound (no radiation)"},
    vocab.Role: {"rso": "RSO", "quality_officer": "Quality officer"},
    vocab.Injectate: {"local_anesthetic_only": "Local anaesthetic only"},
    vocab.ComplicationTiming: {"at_procedure": "During the procedure",
                               "follow_up": "At follow-up"},
}
#: Which vocabulary a column holds, where the column's name says it everywhere.
ENUM_COLUMNS: dict[str, type[vocab.Vocabulary]] = {
    "status": vocab.RecordStatus, "contrast_confirmation": vocab.ContrastConfirmation,
    "region": vocab.Region, "quantity": vocab.DoseQuantity, "patient_sex": vocab.Sex,
    "pregnancy_status": vocab.PregnancyStatus, "laterality": vocab.Laterality,
    "guidance": vocab.Guidance, "injectate": vocab.Injectate, "dose_source": vocab.DoseSource,
    "contrast_exception_reason": vocab.ContrastException, "statistic": vocab.ReferenceStatistic,
    "event_type": vocab.IrradiationEventType, "fluoro_mode": vocab.FluoroMode,
    "carm_operator": vocab.CarmOperator, "contrast_class": vocab.ContrastClass,
    "severity": vocab.ComplicationSeverity, "timing": vocab.ComplicationTiming,
}
#: Catalog figures (audit.catalog.FIGURE_FIELDS) by name.
CATALOG_FIGURES = {"typical_time_s": "Typical fluoroscopy time (s)",
                   "typical_dap_gycm2": "Typical KAP (Gy·cm²)",
                   "max_levels": "Most levels per session",
                   "max_expected_time_s": "Longest expected fluoroscopy time (s)"}


def value_label(enum: type[vocab.Vocabulary], value: object) -> object:
    """How `value` of `enum` reads; a value outside the vocabulary (or empty) unchanged."""
    if value is None or value != value or not isinstance(value, str):  # None, NaN
        return value
    if enum is DoseQuantity and quantity_key(value) in QUANTITIES:
        return quantity_label(value)
    known = VALUE_LABELS.get(enum, {})
    if value in known:
        return known[value]
    if value in enum.values():
        return words(value)
    return value


def sentence(value: object) -> object:
    """Text values with a capital first letter ("typical value" -> "Typical value")."""
    return words(value) if isinstance(value, str) and value else value


# --- settings -----------------------------------------------------------------------------------

SETTING_LABELS: dict[str, str] = {
    "srdl_air_kerma_mgy": "SRDL: Ka,r (mGy)",
    "srdl_kap_gycm2": "SRDL: KAP (Gy·cm²)",
    "srdl_fluoro_time_s": "SRDL: fluoroscopy time (s)",
    "investigation_percentile": "Investigation level: local percentile",
    "investigation_min_records": "Investigation level: records of the type needed first",
    "investigation_factor": "Investigation level: at least this many times the median",
    "cumulative_window_days": "Cumulative dose: window (days)",
    "cumulative_kap_gycm2": "Cumulative dose: KAP (Gy·cm²)",
    "cumulative_air_kerma_mgy": "Cumulative dose: Ka,r (mGy)",
    "effective_dose_k": "Effective-dose coefficients k (mSv per Gy·cm²)",
    "annual_background_msv": "Annual natural background (mSv)",
    "warning_kap_ratio": "Plausibility: KAP this many times the usual asks to confirm",
    "session_idle_minutes": "Sign-out after inactivity (minutes)",
    "discrepancy_tolerance": "Dose report: tolerated difference",
    "site_timezone": "Site time zone",
    "drl_min_rooms": "Local DRL: rooms needed",
    "drl_min_room_records": "Local DRL: records needed per room",
    "duplicate_window_minutes": "Duplicate check: window (minutes)",
    "receiver_enabled": "DICOM receiver: started with the dashboard",
    "receiver_port": "DICOM receiver: port",
    "receiver_ae_title": "DICOM receiver: AE title",
    "receiver_allowed": "DICOM receiver: senders allowed",
}
SETTING_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Settings))


def setting_label(key: str) -> str:
    return SETTING_LABELS.get(key, words(key))


def plain_number(value: object) -> object:
    """A setting's number as people write it: 5000 -> "5,000", 2.5 -> "2.5"."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    return f"{value:,.3f}".rstrip("0").rstrip(".")


def ordinal(number: float) -> str:
    """99 -> "99th", 1 -> "1st", 97.5 -> "97.5th"."""
    if number != int(number):
        return f"{number:g}th"
    n = int(number)
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


_NAMES_IN_TEXT = re.compile(r"\b(" + "|".join(sorted(
    {*SETTING_LABELS, *QUANTITIES, *QUANTITY_ALIASES}, key=len, reverse=True)) + r")\b")


def humanize(text: object) -> object:
    """Library text (a threshold's source, a figure's basis) with the setting and quantity
    names it quotes in words: "drl_min_rooms = 10" -> "Local DRL: rooms needed = 10",
    "records with fluoro_time_s" -> "records with fluoroscopy time"."""
    if not isinstance(text, str):
        return text

    def name(match: re.Match[str]) -> str:
        key = match.group(1)
        if key in SETTING_LABELS:
            return f"'{SETTING_LABELS[key]}'"
        short = QUANTITIES[quantity_key(key) or key][0]
        return short if short.startswith("K") else short.lower()

    return _NAMES_IN_TEXT.sub(name, text)


# --- glossary ---------------------------------------------------------------------------------

GLOSSARY: dict[str, str] = {
    "KAP": "Kerma-area product, also called DAP (dose-area product), in Gy·cm²: the air kerma "
           "times the area of the X-ray field. It follows the total radiation delivered and the "
           "stochastic risk. Here it is corrected by each room's KAP correction factor for the "
           "reference figures.",
    "Ka,r": "Cumulative air kerma at the interventional reference point, in mGy: the dose "
            "near the skin where the beam enters, the indicator of skin-injury risk.",
    "DRL": "Diagnostic reference level (ICRP 135): the 75th percentile of the median doses of "
           "many rooms. Not a limit: a median above it asks for a review of technique. A local "
           "DRL needs enough rooms, each with enough records.",
    "Typical value": "With too few rooms for a DRL, the median of all the procedure's records "
                     "(ICRP 135): what a typical case here receives, compared with the "
                     "published values.",
    "Achievable dose": "The median of the room medians (NCRP 172): a level most rooms already "
                       "reach, a target for optimisation.",
    "Published value": "A median or mean from the literature for the same procedure, for "
                       "comparison only.",
    "SRDL": "Substantial radiation dose level (NCRP 168): Ka,r 5000 mGy, KAP 500 Gy·cm² or "
            "60 minutes of fluoroscopy. A case reaching it needs patient follow-up for skin "
            "effects.",
    "Investigation level": "A dose above the local 99th percentile of the procedure type "
                           "(never below 3 × its median): the case is reviewed. About 1 case "
                           "in 100 by design.",
    "Cumulative dose": "The sum of one patient's doses over the window (12 weeks): several "
                       "moderate cases can add up to skin-injury levels.",
    "Control limits": "On the p-chart, 3 standard errors either side of the centre line for "
                      "that month's number of records: a month outside them is more than "
                      "chance variation.",
    "95% CI": "95% confidence interval (Wilson score): the range the true compliance rate lies "
              "in, given how many records there are.",
    "Percentile": "The 75th percentile is the value 75% of records are at or below; the "
                  "median is the 50th.",
}


def glossary(*terms: str) -> str:
    """The terms' definitions as Markdown, for a help= tooltip or an expander."""
    return "\n\n".join(f"**{term}**: {GLOSSARY[term]}" for term in terms)
