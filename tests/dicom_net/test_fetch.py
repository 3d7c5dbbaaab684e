"""`fluoro-audit fetch` from a real Orthanc (the Debian package): the real reports are uploaded
over Orthanc's REST API, fetched with C-FIND and C-GET and imported; a second run retrieves
nothing and counts them skipped."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from audit.cli import main
from audit.dicom_net.fetch import Source, date_range
from audit.errors import ValidationFailed
from tests.dicom_net.net_helpers import free_port, need, receipts, stored_uids
from tests.dose_reports.dose_helpers import REAL_FILES


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A running Orthanc holding the real reports; yields its DICOM port."""
    binary = need("Orthanc")
    folder = tmp_path_factory.mktemp("orthanc")
    dicom, http = free_port(), free_port()
    config = {
        "Name": "fluoro-audit-test", "StorageDirectory": str(folder / "db"),
        "IndexDirectory": str(folder / "db"), "HttpPort": http, "DicomPort": dicom,
        "DicomAet": "ORTHANC", "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
        "DicomCheckCalledAet": False, "Plugins": [], "HttpServerEnabled": True,
        # C-GET is answered for the AE titles Orthanc knows: ours.
        "DicomModalities": {"fluoro": ["FLUORO_AUDIT", "127.0.0.1", free_port()]},
    }
    (folder / "config.json").write_text(json.dumps(config))
    log = open(folder / "orthanc.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen([binary, str(folder / "config.json")], stdout=log,
                              stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{http}"
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{base}/system", timeout=2).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, \
                    (folder / "orthanc.log").read_text()
                time.sleep(0.2)
        for path in REAL_FILES:
            request = urllib.request.Request(f"{base}/instances", data=path.read_bytes(),
                                             method="POST")
            with urllib.request.urlopen(request, timeout=30) as response:
                assert json.load(response)["Status"] in ("Success", "AlreadyStored")
        yield dicom
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_fetch_imports_then_skips(engine: Engine, db_url: str, orthanc: int, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    command = ["--db", db_url, "fetch", "--from", f"ORTHANC@127.0.0.1:{orthanc}",
               "--since", "1990-01-01", "--inbox", str(tmp_path / "inbox")]
    assert main(command) == 0
    first = capsys.readouterr()
    assert "3 dose reports found: 3 imported" in first.out
    assert len(stored_uids(engine)) == len(REAL_FILES)
    assert {(r.via, r.calling_ae, r.outcome) for r in receipts(engine)} == {
        ("fetch", "ORTHANC", "imported")}

    assert main(command) == 0
    second = capsys.readouterr()
    assert "0 imported, 0 duplicate, 3 skipped (already imported)" in second.out
    assert second.err.count("skipped ") == 3  # progress, one line each, on stderr
    assert len(receipts(engine)) == 3  # nothing retrieved the second time


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_fetch_outside_the_dates_finds_nothing_and_a_dead_pacs_fails(
        db_url: str, orthanc: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--db", db_url, "fetch", "--inbox", str(tmp_path / "inbox")]
    assert main([*base, "--from", f"ORTHANC@127.0.0.1:{orthanc}", "--until",
                 "1990-01-01"]) == 0
    assert "0 studies, 0 dose reports found" in capsys.readouterr().out
    assert main([*base, "--from", f"ORTHANC@127.0.0.1:{free_port()}"]) == 1
    assert "could not associate" in capsys.readouterr().err


def test_source_and_dates_read_as_dicom() -> None:
    from datetime import date

    assert Source.parse("PACS@10.1.2.3:104") == Source("PACS", "10.1.2.3", 104)
    for bad in ("PACS@10.1.2.3", "10.1.2.3:104", "PACS@host:0", "TOO_LONG_AE_TITLE_X@h:1"):
        with pytest.raises(ValidationFailed):
            Source.parse(bad)
    assert date_range(date(2025, 1, 2), None) == "20250102-"
    assert date_range(None, date(2025, 1, 2)) == "-20250102"
    assert date_range(None, None) == ""
