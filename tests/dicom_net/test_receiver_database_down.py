"""The database is unavailable: C-STORE still succeeds, the object waits in the inbox, and it
is imported (and its receipt recorded) once the database is there."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from pydicom import dcmread
from sqlalchemy import Engine, text

from audit.dicom_net.inbox import SUCCESS, Inbox, Receipt
from audit.dicom_net.scp import Receiver
from audit.storage.engine import make_engine
from tests.conftest import Databases, _pg_admin_engine, pg_admin_url
from tests.dicom_net.net_helpers import receipts, send, stored_uids
from tests.dose_reports.dose_helpers import REAL_FILES


def _wait_until(check: Callable[[], bool], seconds: float = 15) -> bool:
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return check()


def _receive_while_down(url: str, bring_up: Callable[[], None],
                        start_receiver: Callable[..., Receiver]) -> None:
    engine = make_engine(url)
    try:
        receiver = start_receiver(engine)
        assert send(receiver.port, [REAL_FILES[0]]) == [SUCCESS]
        waiting = receiver.inbox.waiting()
        assert len(waiting) == 1
        assert dcmread(waiting[0]).SOPInstanceUID == dcmread(REAL_FILES[0]).SOPInstanceUID
        bring_up()
        # the receiver's upkeep imports it within a few seconds
        assert _wait_until(lambda: not receiver.inbox.waiting())
        assert _wait_until(lambda: len(receipts(engine)) == 1)
        assert len(stored_uids(engine)) == 1
        row = receipts(engine)[0]
        assert (row.outcome, row.dicom_status, row.calling_ae) == ("imported", SUCCESS,
                                                                   "MODALITY")
        assert not receiver.inbox.unrecorded()
    finally:
        engine.dispose()


def test_sqlite_file_unopenable(databases: Databases, tmp_path: Path,
                                start_receiver: Callable[..., Receiver]) -> None:
    """A folder where the file should be: SQLite cannot open it (as with a file on a share
    that is gone); then the real file takes its place."""
    later = tmp_path / "audit.sqlite3"
    later.mkdir()
    template = databases.sqlite().removeprefix("sqlite:///")

    def bring_up() -> None:
        later.rmdir()
        shutil.copyfile(template, later)

    _receive_while_down(f"sqlite:///{later}", bring_up, start_receiver)


def test_postgresql_database_not_there_yet(databases: Databases,
                                           start_receiver: Callable[..., Receiver]) -> None:
    databases.postgresql()  # makes the migrated template
    admin_url = pg_admin_url() or ""
    name = f"fa_down_{uuid.uuid4().hex[:10]}"
    databases._pg_dbs.append(name)

    def bring_up() -> None:
        admin = _pg_admin_engine(admin_url)
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{databases._pg_template}"'))
        admin.dispose()

    _receive_while_down(Databases._url(admin_url, name), bring_up, start_receiver)


def test_what_a_crash_left_in_the_inbox_is_imported_at_the_next_start(
        engine: Engine, tmp_path: Path, start_receiver: Callable[..., Receiver]) -> None:
    left = Inbox(tmp_path / "inbox")  # received and synced, then the process died
    left.accept(REAL_FILES[1].read_bytes(), Receipt(
        via="receive", calling_ae="CARM1", peer_address="127.0.0.1",
        sop_instance_uid=str(dcmread(REAL_FILES[1]).SOPInstanceUID), sop_class_uid=None,
        received_at="2026-01-02T03:04:05+00:00", dicom_status=SUCCESS))
    receiver = start_receiver(engine, inbox=tmp_path / "inbox")
    assert _wait_until(lambda: not receiver.inbox.waiting() and len(receipts(engine)) == 1)
    assert len(stored_uids(engine)) == 1
    assert (receipts(engine)[0].calling_ae, receipts(engine)[0].outcome) == ("CARM1", "imported")
