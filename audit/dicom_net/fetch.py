"""`fluoro-audit fetch`: pull dose reports from a PACS with C-FIND and C-GET.

Why C-GET rather than C-MOVE: C-GET brings the objects back on the association that asked for
them, so fetch needs no receiver running, no port open towards it, and no entry for us in the
PACS's list of move destinations beyond the AE title it already has to know.

The query walks the Study Root model level by level, as every PACS supports: studies in the
date range that hold SR (ModalitiesInStudy), their SR series, then the instances of those
series with their SOP class. Instances whose SOP class is not a dose report's
(audit.dicom_net.scp.DOSE_SR_CLASSES) are not retrieved, and those already stored (by SOP
instance UID, the importer's own duplicate test) are skipped and counted: a second run over the
same dates retrieves nothing. Each retrieved object goes through the receiver's path: durably
into the inbox, then the importer, then the receiving log (via ``fetch``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
)
from sqlalchemy import Engine

from audit.auth import Actor
from audit.dicom_net import status
from audit.dicom_net.inbox import REFUSED, SUCCESS, Inbox, Intake, Receipt, now_text
from audit.dicom_net.scp import DOSE_SR_CLASSES
from audit.dose_reports.store import DoseImporter
from audit.errors import FieldError, ValidationFailed

LOG = logging.getLogger("fluoro_audit.fetch")
_SOURCE = re.compile(r"^(?P<ae>[^@]{1,16})@(?P<host>\[[^\]]+\]|[^:@]+):(?P<port>\d{1,5})$")


@dataclass(frozen=True)
class Source:
    """A PACS to fetch from: its AE title, host and port (AE@HOST:PORT)."""

    ae_title: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Source:
        found = _SOURCE.match(text.strip())
        port = int(found["port"]) if found else 0
        if not found or not 1 <= port <= 65535:
            raise ValidationFailed([FieldError("from", f"{text!r} is not AE@HOST:PORT (as "
                                               "PACS@10.1.2.3:104)")])
        return cls(found["ae"].strip(), found["host"].strip("[]"), port)

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


@dataclass
class FetchSummary:
    """What one fetch found and did; ``failures`` says what went wrong, in words."""

    studies: int = 0
    found: int = 0
    skipped: int = 0
    imported: int = 0
    duplicate: int = 0
    rejected: int = 0
    waiting: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.failures or self.rejected or self.waiting)

    def line(self) -> str:
        text = (f"{self.studies} studies, {self.found} dose reports found: {self.imported} "
                f"imported, {self.duplicate} duplicate, {self.skipped} skipped (already "
                f"imported), {self.rejected} rejected")
        if self.waiting:
            text += f", {self.waiting} waiting in the inbox for the database"
        if self.failures:
            text += f"; {len(self.failures)} failures"
        return text


def date_range(since: date | None, until: date | None) -> str:
    """A DICOM date range (PS3.5 6.2: "A-B", "A-", "-B"; empty: any date)."""
    if since is None and until is None:
        return ""
    return (f"{since:%Y%m%d}" if since else "") + "-" + (f"{until:%Y%m%d}" if until else "")


def _find(assoc: Any, query: Dataset) -> list[Dataset]:
    """The identifiers of one C-FIND; raises RuntimeError on a failure status."""
    found = []
    for answer, identifier in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind):
        code = getattr(answer, "Status", None)
        if code is None:
            raise RuntimeError("no answer to C-FIND (association aborted or timed out)")
        if code in (0xFF00, 0xFF01) and identifier is not None:
            found.append(identifier)
        elif code != 0x0000:
            raise RuntimeError(f"C-FIND failed with status 0x{code:04X}")
    return found


def _level(level: str, **keys: str) -> Dataset:
    query = Dataset()
    query.QueryRetrieveLevel = level
    for name, value in keys.items():
        setattr(query, name, value)
    return query


def _instances(assoc: Any, dates: str) -> tuple[int, list[tuple[str, str, str, str]]]:
    """(number of studies, [(study, series, instance, SOP class)]) of dose report SRs."""
    studies = _find(assoc, _level("STUDY", StudyDate=dates, ModalitiesInStudy="SR",
                                  StudyInstanceUID=""))
    found = []
    for study in studies:
        study_uid = str(study.get("StudyInstanceUID", ""))
        for series in _find(assoc, _level("SERIES", StudyInstanceUID=study_uid, Modality="SR",
                                          SeriesInstanceUID="")):
            series_uid = str(series.get("SeriesInstanceUID", ""))
            for item in _find(assoc, _level("IMAGE", StudyInstanceUID=study_uid,
                                            SeriesInstanceUID=series_uid, SOPInstanceUID="",
                                            SOPClassUID="")):
                sop_class = str(item.get("SOPClassUID", "") or "")
                if sop_class and sop_class not in DOSE_SR_CLASSES:
                    continue  # a key image note, a measurement report: not ours
                found.append((study_uid, series_uid, str(item.get("SOPInstanceUID", "")),
                              sop_class))
    return len(studies), found


def fetch_reports(engine: Engine, actor: Actor, source: Source, inbox: str | Path, *,
                  ae_title: str = "FLUORO_AUDIT", since: date | None = None,
                  until: date | None = None,
                  progress: Callable[[str], None] = lambda _line: None) -> FetchSummary:
    """Query ``source`` and retrieve the dose reports not stored yet (module docstring)."""
    summary = FetchSummary()
    intake = Intake(DoseImporter(engine, actor), Inbox(inbox),
                    record=lambda receipt: status.record_receipt(engine, actor, receipt))
    intake.drain()  # what an earlier run left waiting for the database
    ae = AE(ae_title=ae_title)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    for uid in DOSE_SR_CLASSES:
        ae.add_requested_context(uid)
    roles = [build_role(uid, scp_role=True) for uid in DOSE_SR_CLASSES]

    delivered = [0]

    def on_store(event: evt.Event) -> int | Dataset:
        delivered[0] += 1
        request = event.request
        receipt = Receipt(via="fetch", calling_ae=source.ae_title, peer_address=source.host,
                          sop_instance_uid=str(request.AffectedSOPInstanceUID or ""),
                          sop_class_uid=str(request.AffectedSOPClassUID or ""),
                          received_at=now_text())
        try:
            result = intake.receive(event.encoded_dataset(include_meta=True), receipt)
        except OSError as exc:
            summary.failures.append(f"{receipt.sop_instance_uid}: not stored: {exc}")
            return 0xA700
        if result is None:
            summary.waiting += 1
            progress(f"waiting   {receipt.sop_instance_uid}: the database is unavailable")
            return SUCCESS
        if result.status == "ok":
            summary.imported += 1
        elif result.status == "duplicate":
            summary.duplicate += 1
        else:
            summary.rejected += 1
        progress(f"{result.status:<9} {receipt.sop_instance_uid}"
                 + (f": {result.reason}" if result.reason else ""))
        return REFUSED if result.status == "rejected" else SUCCESS

    assoc = ae.associate(source.host, source.port, ae_title=source.ae_title, ext_neg=roles,
                         evt_handlers=[(evt.EVT_C_STORE, on_store)])
    if not assoc.is_established:
        summary.failures.append(f"could not associate with {source} (refused, aborted or no "
                                "answer)")
        return summary
    try:
        try:
            summary.studies, instances = _instances(assoc, date_range(since, until))
        except RuntimeError as exc:
            summary.failures.append(str(exc))
            return summary
        summary.found = len(instances)
        known = status.known_instances(engine, [uid for _s, _r, uid, _c in instances])
        progress(f"{summary.studies} studies, {len(instances)} dose reports, "
                 f"{len(known)} already imported")
        for study_uid, series_uid, sop_uid, _sop_class in instances:
            if sop_uid in known:
                summary.skipped += 1
                progress(f"skipped   {sop_uid}: already imported")
                continue
            query = _level("IMAGE", StudyInstanceUID=study_uid, SeriesInstanceUID=series_uid,
                           SOPInstanceUID=sop_uid)
            last, before = None, delivered[0]
            for answer, _identifier in assoc.send_c_get(
                    query, StudyRootQueryRetrieveInformationModelGet):
                last = getattr(answer, "Status", None)
            if last is None:
                summary.failures.append(f"{sop_uid}: no answer to C-GET")
                if not assoc.is_established:
                    break
            elif delivered[0] == before:  # nothing came: the PACS says why in its status
                summary.failures.append(f"{sop_uid}: C-GET sent nothing (status 0x{last:04X})")
    finally:
        if assoc.is_established:
            assoc.release()
    return summary
