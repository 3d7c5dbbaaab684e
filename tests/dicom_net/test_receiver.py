"""`fluoro-audit receive` in this process on a free port, sent to with dcmtk's echoscu and
storescu and with pynetdicom's StoreSCU, against a real SQLite file and a real PostgreSQL."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from audit.dicom_net.inbox import REFUSED, SUCCESS
from audit.dicom_net.scp import Receiver
from audit.storage.engine import read_session
from audit.storage.models import AuditEvent
from tests.dicom_net.net_helpers import (
    need,
    plain_text_sr,
    receipts,
    send,
    sender,
    stored_uids,
)
from tests.dose_reports.dose_helpers import REAL_FILES
from tests.dose_reports.rdsr_builder import build_ct_report, write


def real_uids() -> list[str]:
    from pydicom import dcmread

    return sorted(str(dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in REAL_FILES)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # no database in an echo
def test_echoscu_gets_an_answer(receiver: Receiver) -> None:
    done = subprocess.run([need("echoscu"), "-aet", "CHECK", "-aec", "FLUORO_AUDIT",
                           "127.0.0.1", str(receiver.port)], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr


@pytest.mark.slow  # three real reports imported, then sent again, on both databases
def test_storescu_reports_are_imported_once_then_duplicates(
        engine: Engine, receiver: Receiver) -> None:
    done = subprocess.run([need("storescu"), "-aet", "CARM1", "-aec", "FLUORO_AUDIT",
                           "127.0.0.1", str(receiver.port), *map(str, REAL_FILES)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert stored_uids(engine) == real_uids()
    # the second send, from pynetdicom's StoreSCU: success, and nothing new
    assert send(receiver.port, list(REAL_FILES)) == [SUCCESS] * len(REAL_FILES)
    assert stored_uids(engine) == real_uids()
    rows = receipts(engine)
    assert [r.outcome for r in rows] == ["imported"] * 3 + ["duplicate"] * 3
    assert {(r.calling_ae, r.peer_address, r.dicom_status) for r in rows[:3]} == {
        ("CARM1", "127.0.0.1", 0)}
    assert all(r.dose_report_id is not None for r in rows)
    assert not receiver.inbox.waiting()
    with read_session(engine) as session:
        audited = session.scalars(select(AuditEvent.entity)
                                  .where(AuditEvent.action == "import")).all()
    assert audited.count("dose_report") == 3 and audited.count("dicom_receipt") == 6


def test_a_ct_dose_report_and_a_text_report_get_a_failure_status(
        engine: Engine, receiver: Receiver, tmp_path: Path) -> None:
    ct = write(build_ct_report(), tmp_path / "ct.dcm")
    text = plain_text_sr(tmp_path / "text.dcm")
    assert send(receiver.port, [ct, text, REAL_FILES[0]]) == [REFUSED, REFUSED, SUCCESS]
    assoc = sender().associate("127.0.0.1", receiver.port, ae_title="FLUORO_AUDIT")
    try:
        answer = assoc.send_c_store(text)  # the reason travels in Error Comment
    finally:
        assoc.release()
    assert answer.Status == REFUSED and str(answer.ErrorComment).startswith("not a")
    rows = receipts(engine)
    assert [r.outcome for r in rows] == ["rejected", "rejected", "imported", "rejected"]
    assert [r.dicom_status for r in rows] == [REFUSED, REFUSED, SUCCESS, REFUSED]
    assert all(r.reason for r in rows[:2])
    assert len(stored_uids(engine)) == 1
    kept = sorted(p.name for p in (receiver.inbox.folder / "rejected").iterdir())
    assert len([n for n in kept if n.endswith(".dcm")]) == 3
    assert len([n for n in kept if n.endswith(".reason.txt")]) == 3
