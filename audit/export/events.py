"""An export's audit events: started (PHI exports, before the first byte), completed (every
export, with every file's hash), failed (whenever an event was already written).

All three are action `export`, entity `export`, entity_id = the export id, told apart by
`after["stage"]`, so the audit vocabulary (and its CHECK constraint) stays as it is.

Why "started" is committed before anything is written: an export with medical record numbers
that is killed halfway (SIGKILL, power loss) may leave files behind that no completion event
will ever describe; the started event says who asked for PHI, with which filters, written
where, whatever happens next. Exports without PHI write their completion event only: a failed
one leaves no file (audit.export.staging) and nothing to account for.

Why the completion event does not hold manifest.json's hash: the manifest records this event's
id and MAC (so the signed manifest points at the event, and `verify-export --db` finds it), so
the event is written first. The event holds the hash of every other file the export carries
and the manifest's content that matters (sections, filters, include_phi), which verify-export
compares; the signature covers the manifest itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from audit.storage.engine import retrying, write_session
from audit.trail import Head, head, record_event
from audit.vocab import AuditAction

if TYPE_CHECKING:
    from audit.auth import Actor
    from audit.export.cells import FileInfo
    from audit.export.types import Section
    from audit.filters import Filters

ENTITY = "export"
STARTED, COMPLETED, FAILED = "started", "completed", "failed"


def describe(exc: BaseException) -> str:
    """What stopped an export, for the failure event (no traceback, bounded length)."""
    if isinstance(exc, SystemExit):
        return f"stopped (exit status {exc.code}; the command line exits 143 on SIGTERM)"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (Ctrl-C)"
    return f"{type(exc).__name__}: {exc}"[:500]


class ExportAudit:
    """The events of one export, in order; each committed in its own transaction."""

    def __init__(self, engine: Engine, actor: Actor, export_id: str,
                 sections: Sequence[Section], filters: Filters, include_phi: bool,
                 target: Path, details: dict[str, Any] | None = None):
        self.engine = engine
        self.actor = actor
        self.export_id = export_id
        self.base: dict[str, Any] = {
            "sections": [s.name for s in sections], "filters": filters.as_dict(),
            "include_phi": include_phi, "target": str(target.absolute()), **(details or {}),
        }
        self.started_event_id: int | None = None
        self.completed_event: Head | None = None

    def _record(self, after: dict[str, Any]) -> Head:
        def work() -> Head:
            with write_session(self.engine) as session:
                event = record_event(session, actor=self.actor.username,
                                     action=AuditAction.EXPORT, entity=ENTITY,
                                     entity_id=self.export_id, after=after)
                now = head(session)  # this event: the chain is locked by record_event
                assert now is not None and now.event_id == event.id
                return now

        return retrying(work)

    def start(self) -> int:
        """The started event, committed: who, what, filters, include_phi, target."""
        self.started_event_id = self._record({"stage": STARTED, **self.base}).event_id
        return self.started_event_id

    def complete(self, files: Sequence[FileInfo]) -> Head:
        """The completion event with every file's hash; its id and MAC go into the manifest."""
        self.completed_event = self._record({
            "stage": COMPLETED, **self.base, "files": [f.as_dict() for f in files],
            "started_event_id": self.started_event_id})
        return self.completed_event

    def fail(self, exc: BaseException) -> int | None:
        """The failure event, when an earlier event of this export needs closing; None
        otherwise. Never raises: the export's own error is what the caller must see."""
        if self.started_event_id is None and self.completed_event is None:
            return None
        after = {"stage": FAILED, **self.base, "error": describe(exc),
                 "started_event_id": self.started_event_id,
                 "completed_event_id": (self.completed_event.event_id
                                        if self.completed_event else None),
                 "files_removed": True}
        try:
            return self._record(after).event_id
        except Exception:  # the database may be what failed; the started event stands
            return None
