"""What the DICOM network tests share: a receiver on a free port, a sender (pynetdicom's
StoreSCU, or dcmtk's storescu/echoscu), objects that are not fluoroscopy dose reports, and the
tools (dcmtk, Orthanc) that CI installs: a missing tool skips locally and fails under CI."""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import Verification
from sqlalchemy import Engine, select

from audit.dicom_net.scp import DOSE_SR_CLASSES
from audit.storage.engine import read_session
from audit.storage.models import DicomReceipt, DoseReport
from tests.conftest import IN_CI

COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"


def need(tool: str) -> str:
    """The path of ``tool``; skipped when absent locally, a failure under CI=true."""
    path = shutil.which(tool)
    if path is None:
        if IN_CI:
            pytest.fail(f"{tool} is not installed: CI installs it (.ci/run)")
        pytest.skip(f"{tool} is not installed")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def non_loopback_address() -> str | None:
    """This machine's address on its network (the route out), or None without one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))
            address = str(s.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") else address


def sender(calling_ae: str = "MODALITY") -> AE:
    ae = AE(ae_title=calling_ae)
    ae.add_requested_context(Verification)
    for uid in DOSE_SR_CLASSES:
        ae.add_requested_context(uid)
    return ae


def send(port: int, paths: list[Path], calling_ae: str = "MODALITY",
         host: str = "127.0.0.1", **options: object) -> list[int]:
    """C-STORE each file on one association with pynetdicom's StoreSCU; the statuses."""
    assoc = sender(calling_ae).associate(host, port, ae_title="FLUORO_AUDIT", **options)
    assert assoc.is_established, "association refused"
    try:
        return [int(assoc.send_c_store(path).Status) for path in paths]
    finally:
        assoc.release()


def plain_text_sr(path: Path) -> Path:
    """A Comprehensive SR that is a plain text report, not a dose report."""
    ds = Dataset()
    ds.SOPClassUID = COMPREHENSIVE_SR
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "SR"
    ds.PatientID = "TEXT-1"
    ds.StudyDate, ds.StudyTime = "20250102", "101500"
    ds.ValueType = "CONTAINER"
    title = Dataset()
    title.CodeValue, title.CodingSchemeDesignator = "11528-7", "LN"
    title.CodeMeaning = "Radiology Report"
    ds.ConceptNameCodeSequence = DicomSequence([title])
    ds.ContinuityOfContent = "SEPARATE"
    item = Dataset()
    item.RelationshipType, item.ValueType = "CONTAINS", "TEXT"
    finding = Dataset()
    finding.CodeValue, finding.CodingSchemeDesignator = "121071", "DCM"
    finding.CodeMeaning = "Finding"
    item.ConceptNameCodeSequence = DicomSequence([finding])
    item.TextValue = "No acute findings."
    ds.ContentSequence = DicomSequence([item])
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    dcmwrite(path, ds, enforce_file_format=True)
    return path


def wait_until(check: Callable[[], bool], seconds: float = 15) -> bool:
    """Poll ``check`` until it holds (a refusal is recorded just after it is answered)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def receipts(engine: Engine) -> list[DicomReceipt]:
    with read_session(engine) as session:
        return list(session.scalars(select(DicomReceipt).order_by(DicomReceipt.id)))


def stored_uids(engine: Engine) -> list[str]:
    with read_session(engine) as session:
        return sorted(session.scalars(select(DoseReport.sop_instance_uid)))
