"""The receiving log and the receiver's heartbeat, in the database (tables of migration 0013).

Each receipt (an object received or retrieved, an association refused) is one
``dicom_receipt`` row and one audit event in the same transaction: receiving is audited like
any import (the import itself is audited by the importer). A start and a clean stop of the
receiver are audited too; the heartbeat in between is not (it is the receiver's sign of life,
refreshed every few seconds, and would bury the trail), like a session's last-seen time.

:func:`receiver_overview` is what the Dose reports page shows: listening or not, the last
object received, today's counts and the objects refused with their reasons.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select, update

from audit.auth import Actor, Permission, require
from audit.dicom_net.access import AllowRule, parse_rules
from audit.dicom_net.inbox import Receipt
from audit.settings import Settings, load_settings
from audit.storage.engine import read_session, write_session
from audit.storage.models import DicomListener, DicomReceipt, DoseReport, utcnow
from audit.trail import record_event
from audit.vocab import AuditAction

#: How often the receiver refreshes its heartbeat, and how old one may be for "listening".
HEARTBEAT_SECONDS = 10.0
STALE_AFTER = timedelta(seconds=3 * HEARTBEAT_SECONDS)
OUTCOMES = ("imported", "duplicate", "rejected", "refused")


def _parse_time(text: str | None) -> datetime:
    try:
        value = datetime.fromisoformat(text) if text else utcnow()
    except ValueError:
        value = utcnow()
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _clip(text: str | None, limit: int) -> str | None:
    return None if text is None else text.replace("\x00", "")[:limit]


def record_receipt(engine: Engine, actor: Actor, receipt: Receipt) -> int:
    """One receipt and its audit event, in one transaction; returns the row's id."""
    require(actor, Permission.IMPORT)
    with write_session(engine) as session:
        row = DicomReceipt(
            received_at=_parse_time(receipt.received_at), via=receipt.via,
            calling_ae=_clip(receipt.calling_ae, 16), peer_address=_clip(receipt.peer_address, 64),
            sop_instance_uid=_clip(receipt.sop_instance_uid, 64),
            sop_class_uid=_clip(receipt.sop_class_uid, 64), outcome=receipt.outcome or "rejected",
            dicom_status=receipt.dicom_status, reason=receipt.reason,
            file_name=_clip(receipt.file_name, 255) or None,
            dose_report_id=receipt.dose_report_id)
        session.add(row)
        session.flush()
        record_event(session, actor=actor.username, action=AuditAction.IMPORT,
                     entity="dicom_receipt", entity_id=row.id,
                     reason=f"DICOM {receipt.via}: {row.outcome}"
                            + (f" ({receipt.reason})" if receipt.reason else ""),
                     after={"calling_ae": row.calling_ae, "peer_address": row.peer_address,
                            "sop_instance_uid": row.sop_instance_uid,
                            "sop_class_uid": row.sop_class_uid, "outcome": row.outcome,
                            "dicom_status": row.dicom_status, "file_name": row.file_name,
                            "dose_report_id": row.dose_report_id})
        return row.id


def record_refusal(engine: Engine, actor: Actor, calling_ae: str, address: str,
                   reason: str) -> int:
    """An association refused (not on the allow list), recorded like a receipt."""
    return record_receipt(engine, actor, Receipt(
        via="receive", calling_ae=calling_ae.strip(), peer_address=address,
        sop_instance_uid=None, sop_class_uid=None,
        received_at=utcnow().isoformat(), outcome="refused", reason=reason))


def listener_started(engine: Engine, actor: Actor, ae_title: str, port: int, tls: bool) -> int:
    """Record (audited) that the receiver listens; returns the heartbeat row's id."""
    require(actor, Permission.IMPORT)
    with write_session(engine) as session:
        row = DicomListener(ae_title=ae_title, port=port, host=socket.gethostname()[:255],
                            pid=os.getpid(), tls=tls)
        session.add(row)
        session.flush()
        record_event(session, actor=actor.username, action=AuditAction.CREATE,
                     entity="dicom_listener", entity_id=row.id, reason="DICOM receiver started",
                     after={"ae_title": ae_title, "port": port, "host": row.host,
                            "pid": row.pid, "tls": tls})
        return row.id


def heartbeat(engine: Engine, listener_id: int) -> None:
    """Refresh the heartbeat (not audited: see the module docstring)."""
    with write_session(engine) as session:
        session.execute(update(DicomListener).where(DicomListener.id == listener_id)
                        .values(heartbeat_at=utcnow()))


def listener_stopped(engine: Engine, actor: Actor, listener_id: int) -> None:
    """Record (audited) a clean stop."""
    require(actor, Permission.IMPORT)
    with write_session(engine) as session:
        row = session.get(DicomListener, listener_id)
        if row is None or row.stopped_at is not None:
            return
        row.stopped_at = utcnow()
        record_event(session, actor=actor.username, action=AuditAction.AMEND,
                     entity="dicom_listener", entity_id=row.id, reason="DICOM receiver stopped",
                     before={"stopped_at": None},
                     after={"stopped_at": row.stopped_at.isoformat()})


def allowed_from_settings(settings: Settings) -> list[AllowRule]:
    """The administrator's allow list (setting receiver_allowed)."""
    return parse_rules(str(settings.receiver_allowed or ""))


def receiver_settings(engine: Engine) -> Settings:
    with read_session(engine) as session:
        return load_settings(session)


def known_instances(engine: Engine, uids: Iterable[str]) -> set[str]:
    """Which of these SOP instance UIDs are stored dose reports already (fetch skips them)."""
    wanted = list(dict.fromkeys(uids))
    found: set[str] = set()
    with read_session(engine) as session:
        for start in range(0, len(wanted), 500):
            found.update(session.scalars(select(DoseReport.sop_instance_uid).where(
                DoseReport.sop_instance_uid.in_(wanted[start:start + 500]))))
    return found


@dataclass
class ReceiverOverview:
    """What the Dose reports page shows about the receiver."""

    listening: bool
    listener: dict[str, Any] | None
    last_received: dict[str, Any] | None
    today: dict[str, int]
    refused: list[dict[str, Any]] = field(default_factory=list)


def _receipt_dict(row: DicomReceipt) -> dict[str, Any]:
    return {"received_at": row.received_at, "via": row.via, "calling_ae": row.calling_ae,
            "peer_address": row.peer_address, "sop_instance_uid": row.sop_instance_uid,
            "outcome": row.outcome, "dicom_status": row.dicom_status, "reason": row.reason}


def receiver_overview(engine: Engine, now: datetime | None = None,
                      refused_limit: int = 50) -> ReceiverOverview:
    """The receiver's state: listening (a heartbeat younger than STALE_AFTER and no stop),
    its last receipt, today's counts by outcome (UTC day) and the latest rejected or
    refused receipts with their reasons."""
    now = now or utcnow()
    with read_session(engine) as session:
        listener = session.scalars(select(DicomListener)
                                   .order_by(DicomListener.heartbeat_at.desc()).limit(1)).first()
        last = session.scalars(select(DicomReceipt).where(DicomReceipt.outcome != "refused")
                               .order_by(DicomReceipt.id.desc()).limit(1)).first()
        midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        counts = dict(session.execute(
            select(DicomReceipt.outcome, func.count()).where(DicomReceipt.received_at >= midnight)
            .group_by(DicomReceipt.outcome)).all())
        refused = session.scalars(select(DicomReceipt)
                                  .where(DicomReceipt.outcome.in_(("rejected", "refused")))
                                  .order_by(DicomReceipt.id.desc()).limit(refused_limit)).all()
    listening = bool(listener and listener.stopped_at is None
                     and now - listener.heartbeat_at <= STALE_AFTER)
    info = None
    if listener is not None:
        info = {"ae_title": listener.ae_title, "port": listener.port, "host": listener.host,
                "tls": listener.tls, "started_at": listener.started_at,
                "heartbeat_at": listener.heartbeat_at, "stopped_at": listener.stopped_at}
    return ReceiverOverview(
        listening=listening, listener=info,
        last_received=_receipt_dict(last) if last is not None else None,
        today={outcome: int(counts.get(outcome, 0)) for outcome in OUTCOMES},
        refused=[_receipt_dict(r) for r in refused])
