"""`fluoro-audit receive`: a DICOM Storage SCP for dose reports (pynetdicom).

What it accepts: C-ECHO, and C-STORE of X-Ray Radiation Dose SR, Enhanced SR and
Comprehensive SR (the SOP classes C-arms and PACS send dose reports as). Any other SOP class is
refused at association time (its presentation context is not accepted), so a CT image never
reaches the importer.

What it answers, per object (audit.dicom_net.inbox for the why):

- ``0x0000`` success: the object is on disk in the inbox, and imported (or a duplicate of a
  stored report), or waiting in the inbox because the database is unavailable;
- ``0xC000`` (failure, "cannot understand") with the reason in Error Comment: the importer
  refused the object (not a fluoroscopy dose report, a number out of bounds, ...); the file is
  kept in ``rejected/`` with its reason, and the refusal is logged and recorded;
- ``0xA700`` (out of resources): the inbox could not store it (disk full); the sender keeps
  its copy.

Who may send: audit.dicom_net.access (loopback only until an administrator or --allow names
senders). A refused association is answered A-ASSOCIATE-RJ "calling AE title not recognised",
logged and recorded. The allow list from the settings is read again with each heartbeat, so an
administrator's change applies within seconds without a restart.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.sop_class import Verification
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from audit.auth import Actor
from audit.dicom_net import status
from audit.dicom_net.access import AccessPolicy, AllowRule
from audit.dicom_net.inbox import (
    OUT_OF_RESOURCES,
    REFUSED,
    SUCCESS,
    Inbox,
    Intake,
    Receipt,
    now_text,
)
from audit.dose_reports.store import DoseImporter

LOG = logging.getLogger("fluoro_audit.receiver")

#: The SOP classes a dose report arrives as (PS3.4 B.5).
DOSE_SR_CLASSES: dict[str, str] = {
    "1.2.840.10008.5.1.4.1.1.88.67": "X-Ray Radiation Dose SR",
    "1.2.840.10008.5.1.4.1.1.88.22": "Enhanced SR",
    "1.2.840.10008.5.1.4.1.1.88.33": "Comprehensive SR",
}
#: Seconds between two looks at the inbox for files that waited for the database.
DRAIN_SECONDS = 2.0


def tls_context(cert: str | None, key: str | None, ca: str | None) -> ssl.SSLContext | None:
    """A server TLS context from PEM files; with ``ca``, senders must present a certificate
    signed by it (mutual TLS). None when no certificate is given."""
    if not cert and not key and not ca:
        return None
    if not cert or not key:
        raise ValueError("TLS needs both --tls-cert and --tls-key")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    if ca:
        context.load_verify_locations(ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


class Receiver:
    """The Storage SCP, its inbox and its upkeep thread (drain and heartbeat).

    ``allow`` are the command line's rules; the settings' are added at each heartbeat.
    ``port`` 0 takes a free port (:attr:`port` tells which, after :meth:`start`).
    """

    def __init__(self, engine: Engine, actor: Actor, inbox: str | Path, *,
                 ae_title: str = "FLUORO_AUDIT", port: int = 11112, address: str = "0.0.0.0",
                 allow: Sequence[AllowRule] = (), ssl_context: ssl.SSLContext | None = None):
        self.engine = engine
        self.actor = actor
        self.ae_title = ae_title
        self.address = address
        self.port = port
        self.ssl_context = ssl_context
        self._cli_rules = tuple(allow)
        self.policy = AccessPolicy(self._cli_rules)
        self.inbox = Inbox(inbox)
        self.intake = Intake(DoseImporter(engine, actor), self.inbox,
                             record=lambda receipt: status.record_receipt(engine, actor, receipt))
        self._server: Any = None
        self._stop = threading.Event()
        self._upkeep: threading.Thread | None = None
        self._listener_id: int | None = None

    # --- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        """Listen (non-blocking); the upkeep thread drains the inbox and beats."""
        self._refresh_policy()
        ae = AE(ae_title=self.ae_title)
        ae.add_supported_context(Verification)
        for uid in DOSE_SR_CLASSES:
            ae.add_supported_context(uid)
        ae.maximum_pdu_size = 0  # no limit on what we receive
        handlers = [(evt.EVT_REQUESTED, self._on_requested), (evt.EVT_C_STORE, self._on_store)]
        self._server = ae.start_server((self.address, self.port), block=False,
                                       evt_handlers=handlers, ssl_context=self.ssl_context)
        self.port = int(self._server.server_address[1])
        self._beat()
        self._upkeep = threading.Thread(target=self._maintain, name="receiver-upkeep",
                                        daemon=True)
        self._upkeep.start()
        LOG.info("listening as %s on %s:%d%s; senders: %s", self.ae_title, self.address,
                 self.port, " (TLS)" if self.ssl_context else "", self.policy.describe())

    def stop(self) -> None:
        """Stop listening, let the upkeep thread finish, record the stop."""
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        if self._upkeep is not None:
            self._upkeep.join(timeout=30)
        if self._listener_id is not None:
            try:
                status.listener_stopped(self.engine, self.actor, self._listener_id)
            except SQLAlchemyError as exc:
                LOG.warning("stop not recorded: %s", getattr(exc, "orig", None) or exc)
        LOG.info("stopped")

    def _maintain(self) -> None:
        last_beat = time.monotonic()
        while not self._stop.wait(DRAIN_SECONDS):
            try:
                if self.inbox.waiting() or self.inbox.unrecorded():
                    for result in self.intake.drain():
                        LOG.info("from the inbox: %s %s%s", result.status, result.file,
                                 f": {result.reason}" if result.reason else "")
            except SQLAlchemyError as exc:
                LOG.debug("database still unavailable: %s", exc)
            except Exception:  # keep receiving whatever happens here
                LOG.exception("draining the inbox failed; retrying")
            if time.monotonic() - last_beat >= status.HEARTBEAT_SECONDS:
                last_beat = time.monotonic()
                self._refresh_policy()
                self._beat()

    def _beat(self) -> None:
        try:
            if self._listener_id is None:
                self._listener_id = status.listener_started(
                    self.engine, self.actor, self.ae_title, self.port, self.ssl_context is not None)
            else:
                status.heartbeat(self.engine, self._listener_id)
        except SQLAlchemyError as exc:
            LOG.warning("heartbeat not recorded (database unavailable?): %s",
                        getattr(exc, "orig", None) or exc)

    def _refresh_policy(self) -> None:
        try:
            rules = status.allowed_from_settings(status.receiver_settings(self.engine))
        except SQLAlchemyError:
            return  # keep the last known list while the database is away
        except Exception as exc:  # a malformed setting: say so, keep the command line's
            LOG.error("setting receiver_allowed ignored: %s", exc)
            rules = []
        self.policy = AccessPolicy.combine(self._cli_rules, rules)

    # --- DICOM events -----------------------------------------------------------------------
    def _on_requested(self, event: evt.Event) -> None:
        requestor = event.assoc.requestor
        calling = str(requestor.primitive.calling_ae_title or "").strip()
        address = str(requestor.address)
        reason = self.policy.refusal(calling, address)
        if reason is None:
            return
        LOG.warning("association refused: %s", reason)
        event.assoc.acse.send_reject(0x01, 0x01, 0x03)  # permanent; calling AE not recognised
        try:
            status.record_refusal(self.engine, self.actor, calling, address, reason)
        except SQLAlchemyError as exc:
            LOG.warning("refusal not recorded: %s", getattr(exc, "orig", None) or exc)
        # Wait until the rejection is on the wire (pynetdicom's own rejections do the same):
        # send_reject only queues it, and the association closes the socket as soon as this
        # handler returns, so on a loaded machine the sender saw the connection drop (an
        # abort) instead of the rejection.
        event.assoc.kill()

    def _on_store(self, event: evt.Event) -> int | Dataset:
        requestor = event.assoc.requestor
        request = event.request
        receipt = Receipt(
            via="receive", calling_ae=str(requestor.ae_title).strip(),
            peer_address=str(requestor.address),
            sop_instance_uid=str(request.AffectedSOPInstanceUID or ""),
            sop_class_uid=str(request.AffectedSOPClassUID or ""), received_at=now_text())
        try:
            result = self.intake.receive(event.encoded_dataset(include_meta=True), receipt)
        except OSError as exc:
            LOG.error("cannot store %s from %s: %s", receipt.sop_instance_uid,
                      receipt.calling_ae, exc)
            return OUT_OF_RESOURCES
        if result is None or result.status != "rejected":
            LOG.info("received %s from %s@%s: %s", receipt.sop_instance_uid, receipt.calling_ae,
                     receipt.peer_address, result.status if result else "waiting for database")
            return SUCCESS
        LOG.warning("refused %s from %s@%s: %s", receipt.sop_instance_uid, receipt.calling_ae,
                    receipt.peer_address, result.reason)
        answer = Dataset()
        answer.Status = REFUSED
        comment = (result.reason or "not a fluoroscopy dose report").encode("ascii", "replace")
        answer.ErrorComment = comment.decode("ascii").replace("\\", "/")[:64]
        return answer
