"""The inbox: every object received is on disk before it is answered, then imported.

Why an inbox: a sender that gets "success" deletes its copy, so success may be answered only
once the object cannot be lost. :meth:`Inbox.accept` writes it to a hidden temporary file,
fsyncs it, renames it into the inbox and fsyncs the folder; only then does the receiver import
it and answer. Importing is the watch folder's work (audit.dose_reports.watch.Watcher, reused
as is): the file moves to ``done/`` (imported or a duplicate) or ``rejected/`` with a
``.reason.txt``. When the database cannot be reached the file simply stays in the inbox, and
:meth:`Intake.drain` (called by the receiver every few seconds) imports it when the database
is back. Nothing is lost on a crash either: a file still in the inbox is imported at the next
start, a duplicate if it had been stored already.

Who sent each object (calling AE title, peer address, time) is written beside it in
``.receipts/NAME.json`` (hidden, so the watcher never takes it for a report); once the import
has an outcome, it is recorded in the database (audit.dicom_net.status) and the sidecar goes.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from audit.dose_reports.store import DoseImporter, ImportResult
from audit.dose_reports.watch import Watcher

LOG = logging.getLogger("fluoro_audit.receiver")
RECEIPTS, TEMPORARY = ".receipts", ".incoming"
#: C-STORE statuses the receiver answers (PS3.4 Annex B.2.3). 0xC000 "Cannot understand" is the
#: failure family of the Storage service for an object the SCP will not keep: here, one the
#: importer refused (not a fluoroscopy dose report); 0xA700 "Out of resources" when the inbox
#: could not store it (disk full): the sender keeps its copy and may retry.
SUCCESS, REFUSED, OUT_OF_RESOURCES = 0x0000, 0xC000, 0xA700


@dataclass
class Receipt:
    """Who sent one object, and (once imported) what became of it."""

    via: str
    calling_ae: str | None
    peer_address: str | None
    sop_instance_uid: str | None
    sop_class_uid: str | None
    received_at: str
    file_name: str = ""
    outcome: str | None = None
    reason: str | None = None
    dose_report_id: int | None = None
    dicom_status: int | None = None


def now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _safe(text: str | None) -> str:
    return re.sub(r"[^0-9A-Za-z.]", "_", text or "")[:64] or "object"


def _write_durably(target: Path, data: bytes, scratch: Path) -> None:
    """Write ``data`` to ``target`` atomically: temporary file, fsync, rename, fsync folder."""
    scratch.mkdir(parents=True, exist_ok=True)
    temporary = scratch / f"{target.name}.{os.getpid()}.{threading.get_ident()}.part"
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, target)
    folder = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


class Inbox:
    """A folder objects are written into durably (module docstring)."""

    def __init__(self, folder: str | os.PathLike[str]):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / RECEIPTS).mkdir(exist_ok=True)

    def accept(self, data: bytes, receipt: Receipt) -> Path:
        """Store one object and who sent it; returns its path in the inbox. Raises OSError
        (disk full, no permission) when it could not be stored: then nothing is answered as
        received."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        name = f"{stamp}-{_safe(receipt.sop_instance_uid)}.dcm"
        receipt.file_name = name
        scratch = self.folder / TEMPORARY
        _write_durably(self.receipt_path(name),
                       json.dumps(asdict(receipt)).encode("utf-8"), scratch)
        target = self.folder / name
        _write_durably(target, data, scratch)
        return target

    def receipt_path(self, name: str) -> Path:
        return self.folder / RECEIPTS / f"{name}.json"

    def read_receipt(self, name: str) -> Receipt | None:
        try:
            return Receipt(**json.loads(self.receipt_path(name).read_text("utf-8")))
        except (OSError, ValueError, TypeError):
            return None

    def save_receipt(self, receipt: Receipt) -> None:
        _write_durably(self.receipt_path(receipt.file_name),
                       json.dumps(asdict(receipt)).encode("utf-8"), self.folder / TEMPORARY)

    def waiting(self) -> list[Path]:
        """Objects received but not yet imported (the database was unavailable)."""
        return sorted(p for p in self.folder.glob("*.dcm") if p.is_file())

    def unrecorded(self) -> list[Receipt]:
        """Receipts with an outcome the database has not recorded yet."""
        found = []
        for path in sorted((self.folder / RECEIPTS).glob("*.json")):
            receipt = self.read_receipt(path.name.removesuffix(".json"))
            if receipt is not None and receipt.outcome is not None:
                found.append(receipt)
        return found


#: Records an imported object's receipt in the database (audit.dicom_net.status).
Recorder = Callable[[Receipt], None]


class Intake:
    """Imports what the inbox holds, one object at a time, through the watch folder's Watcher.

    One lock serialises the receiver's association threads and its drain loop, so one file is
    never imported twice at once. ``record`` stores each outcome's receipt; when it fails (the
    database went away between the import and the receipt) the receipt stays on disk and the
    next drain records it.
    """

    def __init__(self, importer: DoseImporter, inbox: Inbox, record: Recorder,
                 report: Callable[[ImportResult], None] | None = None):
        self.inbox = inbox
        self.record = record
        self._report = report
        self._lock = threading.Lock()
        # settle 0: files arrive whole (renamed in); attempts 1: the sender is waiting.
        self.watcher = Watcher(importer, inbox.folder, settle=0, attempts=1,
                               retry_delay=0, report=self._imported)

    def receive(self, data: bytes, receipt: Receipt) -> ImportResult | None:
        """Store one object durably in the inbox (Inbox.accept), then import it. None when
        the database is unavailable: the file waits in the inbox. Raises OSError, before
        anything is stored, when the inbox cannot take it."""
        with self._lock:
            path = self.inbox.accept(data, receipt)
            return self._deliver(path)

    def _deliver(self, path: Path) -> ImportResult | None:
        try:
            return self.watcher.process(path)
        except SQLAlchemyError as exc:  # only "unavailable" leaves Watcher.process
            LOG.warning("database unavailable; %s kept in the inbox: %s", path.name,
                        getattr(exc, "orig", None) or exc)
            receipt = self.inbox.read_receipt(path.name)
            if receipt is not None and receipt.via == "receive":
                receipt.dicom_status = SUCCESS  # answered success: it is safe on disk
                self.inbox.save_receipt(receipt)
            return None
        except Exception:  # e.g. the move failed: the file is still in the inbox
            LOG.exception("%s kept in the inbox for the next try", path.name)
            return None

    def drain(self) -> list[ImportResult]:
        """Import every waiting file and record every unrecorded receipt; nothing while the
        database cannot be reached (the files stay), or raises its error if it goes away
        meanwhile."""
        with self._lock:
            waiting = self.inbox.waiting()
            if waiting and not self.watcher.importer.database_reachable():
                return []  # not worth reading the files again: try at the next drain
            results = [self.watcher.process(path) for path in waiting if path.exists()]
            for receipt in self.inbox.unrecorded():
                self._record(receipt)
            return results

    def _imported(self, result: ImportResult) -> None:
        """The watcher's report: the outcome joins the receipt, which goes to the database."""
        name = Path(result.file).name
        receipt = self.inbox.read_receipt(name)
        if self._report is not None:
            self._report(result)
        if receipt is None:
            return
        receipt.outcome = {"ok": "imported"}.get(result.status, result.status)
        if receipt.via == "receive" and receipt.dicom_status is None:
            receipt.dicom_status = REFUSED if result.status == "rejected" else SUCCESS
        receipt.reason = result.reason
        receipt.dose_report_id = result.report_id
        self.inbox.save_receipt(receipt)
        self._record(receipt)

    def _record(self, receipt: Receipt) -> None:
        try:
            self.record(receipt)
        except SQLAlchemyError as exc:
            LOG.warning("receipt of %s not recorded yet (%s); kept for the next try",
                        receipt.file_name, getattr(exc, "orig", None) or exc)
            return
        self.inbox.receipt_path(receipt.file_name).unlink(missing_ok=True)
