"""Domain vocabulary: every enumerated value the record, the rules and the UI share.

Values are the strings stored in the database and written to exports (docs/design.md §2), so they
are part of the contract: add members, never rename them. Each enum knows how to explain itself in
an error message (`allowed()`), because "what is allowed" must accompany every validation error.
"""

from __future__ import annotations

import itertools
import re
from enum import StrEnum


class Vocabulary(StrEnum):
    """A StrEnum that can list its values for error messages and CHECK constraints."""

    @classmethod
    def values(cls) -> list[str]:
        return [m.value for m in cls]

    @classmethod
    def allowed(cls) -> str:
        return ", ".join(cls.values())

    @classmethod
    def parse(cls, raw: object) -> Vocabulary:
        """Accept the value in any case, with spaces or hyphens for underscores."""
        if isinstance(raw, cls):
            return raw
        text = str(raw).strip().lower().replace("-", "_").replace(" ", "_")
        for member in cls:
            if member.value.lower() == text:
                return member
        raise ValueError(f"{raw!r} is not allowed; allowed: {cls.allowed()}")


class RecordStatus(Vocabulary):
    FINAL = "final"
    VOID = "void"


class Role(Vocabulary):
    """Roles of docs/design.md §8. Permissions per role live in audit.auth."""

    TECHNOLOGIST = "technologist"
    PHYSICIAN = "physician"
    QUALITY_OFFICER = "quality_officer"
    RSO = "rso"
    ADMIN = "admin"


class Sex(Vocabulary):
    F = "F"
    M = "M"
    O = "O"  # noqa: E741 - DICOM's own code for "other"
    U = "U"

    @classmethod
    def parse(cls, raw: object) -> Sex:
        text = str(raw).strip().upper()
        aliases = {"FEMALE": "F", "MALE": "M", "OTHER": "O", "UNKNOWN": "U"}
        text = aliases.get(text, text)
        for member in cls:
            if member.value == text:
                return member
        raise ValueError(f"{raw!r} is not allowed; allowed: {cls.allowed()}")


class PregnancyStatus(Vocabulary):
    NOT_APPLICABLE = "not_applicable"
    NOT_PREGNANT = "not_pregnant"
    PREGNANT = "pregnant"
    UNKNOWN = "unknown"


class Laterality(Vocabulary):
    LEFT = "left"
    RIGHT = "right"
    BILATERAL = "bilateral"
    MIDLINE = "midline"


class Guidance(Vocabulary):
    FLUOROSCOPY = "fluoroscopy"
    FLUOROSCOPY_DSA = "fluoroscopy_dsa"
    CT_FLUOROSCOPY = "ct_fluoroscopy"
    #: No radiation: the record asks no dose fields and is left out of dose figures (issue 15).
    ULTRASOUND = "ultrasound"


#: Guidance that uses no ionising radiation.
RADIATION_FREE_GUIDANCE = frozenset({Guidance.ULTRASOUND})


class CarmOperator(Vocabulary):
    """Who drove the C-arm (pedal and positioning): fluoro time differs tenfold between a
    physician and a radiographer in Choi 2016 (docs/reference.md), so dose comparisons are
    stratified by it."""

    PHYSICIAN = "physician"
    TECHNOLOGIST = "technologist"
    RADIOGRAPHER = "radiographer"


class ContrastClass(Vocabulary):
    """The class of contrast agent used: iodinated, gadolinium (where iodine is
    contraindicated), or none."""

    IODINATED = "iodinated"
    GADOLINIUM = "gadolinium"
    NONE = "none"


class ComplicationKind(Vocabulary):
    """The controlled list of adverse events (issue 15); `other` needs a description."""

    CONTRAST_REACTION = "contrast_reaction"
    VASOVAGAL = "vasovagal_reaction"
    DURAL_PUNCTURE = "dural_puncture"
    NERVE_INJURY = "nerve_injury"
    HEMATOMA = "hematoma"
    INFECTION = "infection"
    OTHER = "other"


class ComplicationSeverity(Vocabulary):
    """Severity of an adverse event: the ACR Manual on Contrast Media's grades for contrast
    reactions (mild: self-limited; moderate: needs treatment; severe: life-threatening), and
    the same three words for the other kinds (docs/reference.md)."""

    MILD = "mild"
    MODERATE = "moderate"
    SEVERE = "severe"


class ComplicationTiming(Vocabulary):
    """When an adverse event was recorded: on the record while logging, or later."""

    AT_PROCEDURE = "at_procedure"
    FOLLOW_UP = "follow_up"


class ContrastConfirmation(Vocabulary):
    CONFIRMED = "confirmed"
    NOT_CONFIRMED = "not_confirmed"
    CONTRAINDICATED = "contraindicated"
    NOT_REQUIRED = "not_required"


class ContrastException(Vocabulary):
    """Documented reasons contrast was not used (Medicare LCD L33906 asks for the reason)."""

    ALLERGY = "allergy"
    RENAL_IMPAIRMENT = "renal_impairment"
    PATIENT_REFUSED = "patient_refused"
    OTHER = "other"


class View(Vocabulary):
    """Confirmation image views. CLO is the contralateral oblique used for ILESI depth."""

    AP = "AP"
    LAT = "LAT"
    CLO = "CLO"
    OBL = "OBL"

    @classmethod
    def parse(cls, raw: object) -> View:
        text = str(raw).strip().upper()
        aliases = {"LATERAL": "LAT", "OBLIQUE": "OBL", "CONTRALATERAL_OBLIQUE": "CLO",
                   "CONTRALATERAL OBLIQUE": "CLO", "ANTEROPOSTERIOR": "AP", "PA": "AP"}
        text = aliases.get(text, text)
        for member in cls:
            if member.value == text:
                return member
        raise ValueError(f"{raw!r} is not allowed; allowed: {cls.allowed()}")


class Injectate(Vocabulary):
    DEXAMETHASONE = "dexamethasone"
    TRIAMCINOLONE = "triamcinolone"
    METHYLPREDNISOLONE = "methylprednisolone"
    BETAMETHASONE = "betamethasone"
    LOCAL_ANESTHETIC_ONLY = "local_anesthetic_only"
    NONE = "none"
    OTHER = "other"


#: Particulate corticosteroids: never for therapeutic cervical TFESI (Rathmell 2015).
PARTICULATE_STEROIDS = frozenset(
    {Injectate.TRIAMCINOLONE, Injectate.METHYLPREDNISOLONE, Injectate.BETAMETHASONE}
)


#: Contrast agents the entry form offers first (iodinated agents at the concentrations spine
#: practices use; gadolinium where iodine is contraindicated). contrast_agent stays free text:
#: this is a list of suggestions, not a rule, and a site may type another agent.
CONTRAST_AGENTS: tuple[str, ...] = (
    "iohexol 240", "iohexol 300", "iopamidol 200", "iopamidol 300", "gadolinium",
)


class DoseSource(Vocabulary):
    MANUAL = "manual"
    RDSR = "rdsr"
    MANUAL_RDSR = "manual+rdsr"


class Region(Vocabulary):
    CERVICAL = "cervical"
    THORACIC = "thoracic"
    LUMBAR = "lumbar"
    SACRAL = "sacral"
    OTHER = "other"


class CatalogRegion(Vocabulary):
    """A catalog entry's region: a fixed one, or `by_level` (the levels decide, e.g. ILESI)."""

    CERVICAL = "cervical"
    THORACIC = "thoracic"
    LUMBAR = "lumbar"
    SACRAL = "sacral"
    OTHER = "other"
    BY_LEVEL = "by_level"


class ContrastPolicy(Vocabulary):
    REQUIRED = "required"
    RECOMMENDED = "recommended"
    NOT_REQUIRED = "not_required"


class DapUnit(Vocabulary):
    """Dose-area product units a C-arm may display: the stored values of ``dap_unit``.

    Spellings people type and the factors into Gy·cm² are in audit.units (the one unit table);
    parse with ``audit.units.parse_dap_unit``.
    """

    GY_CM2 = "Gy·cm²"
    DGY_CM2 = "dGy·cm²"
    CGY_CM2 = "cGy·cm²"
    MGY_CM2 = "mGy·cm²"
    UGY_M2 = "µGy·m²"
    GY_M2 = "Gy·m²"


class DoseQuantity(Vocabulary):
    """The dose quantities the dashboards and reference levels use, in canonical units."""

    FLUORO_TIME_S = "fluoro_time_s"
    DAP_GYCM2 = "dap_gycm2"
    AIR_KERMA_MGY = "air_kerma_mgy"

    @property
    def label(self) -> str:
        return _QUANTITY_LABELS[self]


_QUANTITY_LABELS = {
    DoseQuantity.FLUORO_TIME_S: "Fluoroscopy time (s)",
    DoseQuantity.DAP_GYCM2: "KAP (Gy·cm²)",
    DoseQuantity.AIR_KERMA_MGY: "Ka,r (mGy)",
}


class ReferenceKind(Vocabulary):
    """What a reference value is (ICRP 135 and NCRP 168 vocabulary).

    drl: 75th percentile of room medians; achievable: their median (NCRP 172); typical: the
    local median where too few rooms exist for a DRL; investigation: a level above which a case
    is reviewed; srdl: substantial radiation dose level; published: a value from the literature,
    for comparison only.
    """

    DRL = "drl"
    ACHIEVABLE = "achievable"
    TYPICAL = "typical"
    INVESTIGATION = "investigation"
    SRDL = "srdl"
    PUBLISHED = "published"


class ReferenceStatistic(Vocabulary):
    """Which statistic of the source distribution a reference value is."""

    MEDIAN = "median"
    MEAN = "mean"
    P75 = "p75"
    THRESHOLD = "threshold"
    #: The source's summary statistic was not checked against the primary text.
    UNSTATED = "unstated"


class FigureBasis(Vocabulary):
    """What a seeded domain figure (catalog value, effective-dose coefficient) rests on
    (docs/reference.md: the words Setting, Unverified, Estimate).

    published: taken from the cited paper; published_unverified: from its abstract or a
    secondary summary, not checked against the primary text; estimate: no published source,
    a plausible value until local data replaces it; regulation: a payer or regulator's rule
    (e.g. a Medicare LCD); local_policy: the site's choice.
    """

    PUBLISHED = "published"
    PUBLISHED_UNVERIFIED = "published_unverified"
    ESTIMATE = "estimate"
    REGULATION = "regulation"
    LOCAL_POLICY = "local_policy"


class WeightBand(Vocabulary):
    """Patient weight bands for dose comparisons (audit.analytics.grouping): body size for the
    records without a height, hence no body mass index (BmiBand for those with one; Cushman
    2016 compared BMI categories, docs/reference.md §4). Bounds in
    audit/data/weight_bands.csv."""

    UNDER_60 = "under 60 kg"
    FROM_60 = "60 to under 80 kg"
    FROM_80 = "80 to under 100 kg"
    FROM_100 = "100 kg and over"
    UNKNOWN = "not recorded"


class BmiBand(Vocabulary):
    """WHO body-mass-index bands (kg/m²) for dose comparisons (audit.analytics.case_mix);
    records without weight or height: unknown."""

    UNDER = "under 18.5"
    NORMAL = "18.5 to 24.9"
    OVERWEIGHT = "25 to 29.9"
    OBESE_1 = "30 to 34.9"
    OBESE_2 = "35 to 39.9"
    OBESE_3 = "40 and over"
    UNKNOWN = "unknown"


#: Lower bounds of the BmiBand members above (kg/m²), in order; UNKNOWN has none.
BMI_BAND_LOWER: tuple[float, ...] = (0.0, 18.5, 25.0, 30.0, 35.0, 40.0)


class AlertKind(Vocabulary):
    SRDL = "srdl"
    INVESTIGATION = "investigation"
    CUMULATIVE = "cumulative"


class AlertStatus(Vocabulary):
    """open: needs the RSO; acknowledged: followed up; withdrawn: no longer met (a record was
    voided or amended), kept for the history."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    WITHDRAWN = "withdrawn"


class AuditAction(Vocabulary):
    CREATE = "create"
    AMEND = "amend"
    VOID = "void"
    IMPORT = "import"
    EXPORT = "export"
    LOGIN = "login"
    LOGIN_FAILED = "login_failed"
    LOGOUT = "logout"
    SETTING = "setting"
    BULK_CREATE = "bulk_create"
    DEACTIVATE = "deactivate"
    ACKNOWLEDGE = "acknowledge"


#: The actions whose events can change a dashboard figure (audit.analytics.figure_changes):
#: a record logged, amended, voided or imported, a setting (thresholds, rule packs), a name,
#: catalog entry or reference level created, changed or deactivated. Not these: login,
#: login_failed, logout (accounts' sign-in state), export (a file written) and acknowledge (an
#: alert's or a dose discrepancy's follow-up: no figure of the SQL pages reads them).
FIGURE_ACTIONS: tuple[str, ...] = (
    AuditAction.CREATE.value, AuditAction.AMEND.value, AuditAction.VOID.value,
    AuditAction.IMPORT.value, AuditAction.SETTING.value, AuditAction.BULK_CREATE.value,
    AuditAction.DEACTIVATE.value,
)
#: Entities whose events of those actions change no figure: the alert refresh's own (no figure
#: reads the alerts it stores) and the sign-in sessions' (a sign-in creates one, the browser
#: collecting its cookie amends it: every sign-in would otherwise move the figures version).
NOT_FIGURE_ENTITIES: tuple[str, ...] = ("alert", "user_session")



class DoseReportStatus(Vocabulary):
    """A stored dose report is the study's current one, or replaced by a fuller report."""

    CURRENT = "current"
    SUPERSEDED = "superseded"


class IrradiationEventType(Vocabulary):
    """An irradiation event's type (DICOM CID 10002): fluoroscopy, or an acquisition that is
    stationary (a spot image or run), stepping or rotational; other: a code outside CID 10002."""

    FLUOROSCOPY = "fluoroscopy"
    STATIONARY = "stationary"
    STEPPING = "stepping"
    ROTATIONAL = "rotational"
    OTHER = "other"


class FluoroMode(Vocabulary):
    """How a fluoroscopy event's beam ran (DICOM CID 10004)."""

    PULSED = "pulsed"
    CONTINUOUS = "continuous"


class DoseField(Vocabulary):
    """Procedure dose fields a dose report can fill or contradict (reconciliation)."""

    DAP = "dap_gycm2"
    AIR_KERMA = "air_kerma_mgy"
    FLUORO_TIME = "fluoro_time_s"


class DiscrepancyStatus(Vocabulary):
    """open: awaiting review; reviewed: someone looked and wrote a note; superseded: the
    report it came from was replaced by a fuller report of the same study."""

    OPEN = "open"
    REVIEWED = "reviewed"
    SUPERSEDED = "superseded"


# --- Spinal levels -----------------------------------------------------------------------------
# A level is a motion segment ("L4-L5"), a single vertebra or foramen ("S1"), the coccyx, or a
# sacroiliac joint ("SIJ"). The spine runs C1..C7, T1..T12, L1..L5, S1..S5, coccyx.

SPINE: tuple[str, ...] = (
    *(f"C{i}" for i in range(1, 8)),
    *(f"T{i}" for i in range(1, 13)),
    *(f"L{i}" for i in range(1, 6)),
    *(f"S{i}" for i in range(1, 6)),
)
_REGION_OF_PREFIX = {"C": Region.CERVICAL, "T": Region.THORACIC, "L": Region.LUMBAR,
                     "S": Region.SACRAL}
COCCYX = "coccyx"
SI_JOINT = "SIJ"


def _segments() -> tuple[str, ...]:
    # Adjacent pairs only, up to L5-S1: the sacrum is fused below S1, so "S1-S2" is no segment.
    pairs = [f"{a}-{b}" for a, b in itertools.pairwise(SPINE)]
    return tuple(p for p in pairs if not p.startswith("S"))


SEGMENTS = _segments()
ALL_LEVELS: tuple[str, ...] = (*SPINE, *SEGMENTS, COCCYX, SI_JOINT)
_LEVEL_LOOKUP = {lvl.upper(): lvl for lvl in ALL_LEVELS}
_LEVEL_LOOKUP.update({"COCCYX": COCCYX, "SI": SI_JOINT, "SI JOINT": SI_JOINT, "SIJ": SI_JOINT})


def parse_level(raw: str) -> str:
    """Normalise a typed level ("l4/5", "L4-5", "L4–L5") to its canonical form ("L4-L5")."""
    text = str(raw).strip().upper().replace("–", "-").replace("—", "-").replace("/", "-")
    text = re.sub(r"\s*-\s*", "-", text)
    shorthand = re.fullmatch(r"([CTLS])(\d{1,2})-(\d{1,2})", text)
    if shorthand:  # "L4-5" means L4-L5
        text = f"{shorthand[1]}{shorthand[2]}-{shorthand[1]}{shorthand[3]}"
    if text in _LEVEL_LOOKUP:
        return _LEVEL_LOOKUP[text]
    raise ValueError(
        f"{raw!r} is not a spinal level; allowed: vertebrae C1-C7, T1-T12, L1-L5, S1-S5, "
        f"adjacent segments such as C5-C6, T12-L1 or L5-S1, 'coccyx' or 'SIJ'"
    )


def level_region(level: str) -> Region:
    """Region of a canonical level. A segment belongs to its upper vertebra's region (C7-T1 is
    cervical, L5-S1 lumbar), matching how junctional injections are reported."""
    if level in (COCCYX, SI_JOINT):
        return Region.SACRAL
    return _REGION_OF_PREFIX[level[0]]


def level_order(level: str) -> int:
    """Position along the spine, to print levels top to bottom."""
    if level == SI_JOINT:  # below the whole spine (positions are 2 per vertebra)
        return len(SPINE) * 2 + 2
    if level == COCCYX:
        return len(SPINE) * 2 + 1
    return SPINE.index(level.split("-")[0]) * 2 + (1 if "-" in level else 0)
