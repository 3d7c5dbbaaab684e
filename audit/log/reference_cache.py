"""Reference data the log reads on every write, cached: the catalog, the settings and the
usual KAP and time of each procedure type.

Why cache: every record is validated against the catalog and settings, and its KAP compared
with what is usual for its type. Reading those per record would double the cost of a write;
they change rarely (an admin edits them, then calls ProcedureLog.refresh), so a short-lived
copy is kept per service.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.catalog import Catalog, load_catalog
from audit.log.plausibility import Usual
from audit.settings import Settings, load_settings
from audit.storage.models import Procedure
from audit.vocab import RecordStatus

#: Local medians replace the catalog's typical values once this many records exist.
MIN_LOCAL_RECORDS = 30
#: How many of a type's latest records the local medians are taken from.
LOCAL_SAMPLE = 500
CACHE_SECONDS = 60.0
#: The usual values move slowly (a median of hundreds of records): kept five times longer.
USUAL_CACHE_SECONDS = CACHE_SECONDS * 5


@dataclass
class ReferenceCache:
    """Catalog and settings (reloaded after CACHE_SECONDS) and usual values per type."""

    catalog: Catalog | None = None
    settings: Settings = field(default_factory=Settings)
    loaded_at: float = 0.0
    usual_by_type: dict[int, tuple[float, Usual | None]] = field(default_factory=dict)

    def reference(self, session: Session) -> tuple[Catalog, Settings]:
        """The catalog and settings, read again when older than CACHE_SECONDS."""
        if self.catalog is None or time.monotonic() - self.loaded_at > CACHE_SECONDS:
            self.catalog = load_catalog(session)
            self.settings = load_settings(session)
            self.loaded_at = time.monotonic()
        return self.catalog, self.settings

    def usual(self, session: Session, type_id: int) -> Usual | None:
        """Local median KAP and time of the latest records of a type, if there are enough."""
        cached = self.usual_by_type.get(type_id)
        if cached and time.monotonic() - cached[0] < USUAL_CACHE_SECONDS:
            return cached[1]
        rows = session.execute(
            select(Procedure.dap_gycm2, Procedure.fluoro_time_s)
            .where(Procedure.procedure_type_id == type_id,
                   Procedure.status == RecordStatus.FINAL.value)
            .order_by(Procedure.performed_at.desc())
            .limit(LOCAL_SAMPLE)
        ).all()
        daps = [r[0] for r in rows if r[0] is not None]
        usual = None
        if len(daps) >= MIN_LOCAL_RECORDS:
            usual = Usual(statistics.median(daps), statistics.median(r[1] for r in rows),
                          f"local median of {len(daps)} recent records")
        self.usual_by_type[type_id] = (time.monotonic(), usual)
        return usual
