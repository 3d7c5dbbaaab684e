"""The schema, as SQLAlchemy 2 typed ORM classes: one import for every table.

The classes live by area (audit.storage.models.log: the procedure log, its reference data, the
audit trail and the settings; audit.storage.models.dose: dose reports, reference levels and
alerts; audit.storage.models.network: the DICOM receiver's receipts and heartbeat;
audit.storage.models.irradiation: each dose report's irradiation events;
audit.storage.models.complications: each procedure's adverse events; audit.storage.models.summary:
the per-day summary of the records; audit.storage.models.facts: one narrow row of derived
columns per final record; audit.storage.models.figures: figure results shared by the
app processes; audit.storage.models.rules: rule packs and follow-ups) and
are re-exported here, so that importing this package registers every table on Base.metadata:
the complete schema that Alembic's autogenerate and `alembic check` compare the migrations
with. Base and utcnow (audit.storage.types) are re-exported because every caller that stamps or
creates rows needs them beside the classes.

Conventions: see audit.storage.types; nothing is deleted: records are voided, accounts and rooms
deactivated.
"""

from audit.storage.models.complications import Complication
from audit.storage.models.dose import (
    Alert,
    AlertAcknowledgement,
    DoseDiscrepancy,
    DoseReport,
    ReferenceLevel,
)
from audit.storage.models.facts import RecordFact, RecordFactState
from audit.storage.models.figures import FigureResult
from audit.storage.models.irradiation import IrradiationEvent
from audit.storage.models.log import (
    AuditEvent,
    NameAlias,
    Patient,
    Physician,
    Procedure,
    ProcedureLevel,
    ProcedureType,
    Room,
    Setting,
    Site,
    UserAccount,
    UserSession,
)
from audit.storage.models.network import DicomListener, DicomReceipt
from audit.storage.models.rules import (
    FollowUp,
    RuleFinding,
    RuleFindingCount,
    RuleFindingState,
    RulePack,
)
from audit.storage.models.summary import (
    CountSummary,
    CountSummaryState,
    DailySummary,
    DailySummaryState,
    DoseBucket,
    DoseBucketEdge,
    DoseBucketState,
)
from audit.storage.types import Base, utcnow

__all__ = [
    "Alert",
    "AlertAcknowledgement",
    "AuditEvent",
    "Base",
    "Complication",
    "CountSummary",
    "CountSummaryState",
    "DailySummary",
    "DailySummaryState",
    "DicomListener",
    "DicomReceipt",
    "DoseBucket",
    "DoseBucketEdge",
    "DoseBucketState",
    "DoseDiscrepancy",
    "DoseReport",
    "FigureResult",
    "FollowUp",
    "IrradiationEvent",
    "NameAlias",
    "Patient",
    "Physician",
    "Procedure",
    "ProcedureLevel",
    "ProcedureType",
    "RecordFact",
    "RecordFactState",
    "ReferenceLevel",
    "Room",
    "RuleFinding",
    "RuleFindingCount",
    "RuleFindingState",
    "RulePack",
    "Setting",
    "Site",
    "UserAccount",
    "UserSession",
    "utcnow",
]
