"""Comparing an export with what the site's database recorded about it (verify-export at the
site: `--db`, or the default database).

Why: the signature proves the manifest is as signed; the export's completion event, written
in the append-only, chained audit trail before the manifest, holds every file's SHA-256 as
exported. Comparing the files with it names the file that differs even if someone holding
the key re-signed a doctored manifest, and the MACs the manifest recorded (its own event's,
and the trail's head as the export saw it) show whether the trail was rewritten since.

The event is found by the id the manifest gives (audit_event.event_id); an export made
before manifests carried it is found by its export id.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from audit.export.events import COMPLETED, ENTITY
from audit.export.manifest import AFTER_EVENT, MANIFEST, sha256_file
from audit.storage.models import AuditEvent
from audit.vocab import AuditAction


@dataclass
class Findings:
    """What the comparison found: problems (each naming a file or the manifest) and notes."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def compare_with_event(engine: Engine, folder: Path, manifest: Mapping[str, Any]) -> Findings:
    """Every way the folder differs from the export's audit event (audit.export.verify adds
    them to its report; this module does not import it, to keep the verifier database-free)."""
    report = Findings()
    try:
        with Session(engine) as session:
            _compare(session, folder, manifest, report)
    except SQLAlchemyError as exc:
        report.problems.append(f"database: the export's audit event could not be read "
                               f"({type(exc).__name__}: {str(exc).splitlines()[0]})")
    return report


def _find(session: Session, manifest: Mapping[str, Any]) -> AuditEvent | None:
    recorded = manifest.get("audit_event")
    if isinstance(recorded, dict) and isinstance(recorded.get("event_id"), int):
        return session.get(AuditEvent, recorded["event_id"])
    events = session.scalars(select(AuditEvent).where(
        AuditEvent.action == AuditAction.EXPORT.value, AuditEvent.entity == ENTITY,
        AuditEvent.entity_id == str(manifest.get("export_id"))).order_by(AuditEvent.id)).all()
    done = [e for e in events if (e.after or {}).get("stage", COMPLETED) == COMPLETED]
    return done[-1] if done else None


def _compare(session: Session, folder: Path, manifest: Mapping[str, Any],
             report: Findings) -> None:
    export_id = manifest.get("export_id")
    recorded = manifest.get("audit_event")
    recorded = recorded if isinstance(recorded, dict) else {}
    event = _find(session, manifest)
    where = f"audit event {recorded.get('event_id', '')}".rstrip()
    if event is None:
        report.problems.append(f"{MANIFEST}: {where} of export {export_id} is not in this "
                               "database: it has no record of this export")
        return
    after: dict[str, Any] = event.after or {}
    if (event.action, event.entity, event.entity_id) != (AuditAction.EXPORT.value, ENTITY,
                                                         str(export_id)):
        report.problems.append(f"{MANIFEST}: audit event {event.id} is not export {export_id}'s "
                               f"(it records {event.action} on {event.entity} "
                               f"{event.entity_id})")
        return
    if after.get("stage", COMPLETED) != COMPLETED:
        report.problems.append(f"{MANIFEST}: audit event {event.id} is the export's "
                               f"{after.get('stage')} event, not its completion")
        return
    problems = len(report.problems)
    if recorded.get("mac") not in (None, event.hash):
        report.problems.append(f"audit event {event.id}: its MAC is not the one {MANIFEST} "
                               "recorded: the trail was rewritten after the export")
    _compare_head(session, manifest.get("trail_head"), report)
    _compare_files(folder, after.get("files") or [], report)
    sections = [s.get("name") for s in manifest.get("sections", []) if isinstance(s, dict)]
    for key, in_manifest in (("include_phi", manifest.get("include_phi")),
                             ("filters", manifest.get("filters")), ("sections", sections)):
        if key in after and after[key] != in_manifest:
            report.problems.append(f"{MANIFEST}: {key} differs from the export's audit event "
                                   f"(event: {after[key]}, manifest: {in_manifest})")
    if len(report.problems) == problems:
        report.notes.append(f"audit event {event.id} (export by {event.actor}, "
                            f"{event.occurred_at:%Y-%m-%d %H:%M} UTC): every file matches the "
                            "SHA-256 it recorded")


def _compare_head(session: Session, head: Any, report: Findings) -> None:
    """The trail's head as the export saw it must still be there, with the same MAC."""
    if not isinstance(head, dict) or not isinstance(head.get("event_id"), int):
        return
    mac = session.scalar(select(AuditEvent.hash).where(AuditEvent.id == head["event_id"]))
    if mac is None:
        report.problems.append(f"audit trail: event {head['event_id']}, its head when the "
                               "export was made, is gone: the trail was cut back")
    elif mac != head.get("mac"):
        report.problems.append(f"audit trail: event {head['event_id']}, its head when the "
                               "export was made, has another MAC now: the trail was rewritten")


def _compare_files(folder: Path, recorded: list[Any], report: Findings) -> None:
    by_name = {f["name"]: f for f in recorded if isinstance(f, dict) and "name" in f}
    for name, entry in sorted(by_name.items()):
        file = folder / name
        if "/" in name or not file.is_file():
            report.problems.append(f"{name}: in the export's audit event but not in the export")
            continue
        found = sha256_file(file).sha256
        if found != entry.get("sha256"):
            report.problems.append(f"{name}: differs from the export's audit event (recorded "
                                   f"SHA-256 {entry.get('sha256')}, found {found})")
    for file in sorted(folder.iterdir()):
        if file.is_file() and file.name not in by_name and file.name not in AFTER_EVENT:
            report.problems.append(f"{file.name}: not in the export's audit event (added "
                                   "after the export)")
