"""The Dose reports page shows the DICOM receiver's state (dashboard/receiver_panel.py), from
the receiving log a real receiver keeps, under Streamlit's AppTest (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest

from audit.auth import Actor, cli_actor
from audit.dicom_net.access import parse_rule
from audit.dicom_net.scp import Receiver
from audit.vocab import Role
from tests.dicom_net.net_helpers import plain_text_sr, receipts, send, sender, wait_until
from tests.dose_reports.dose_helpers import REAL_FILES

VIEWS = Path(__file__).resolve().parents[2] / "dashboard" / "views"
TECH = Actor("tech1", Role.TECHNOLOGIST)


def dose_reports_page() -> AppTest:
    app = AppTest.from_file(str(VIEWS / "dose_reports.py"), default_timeout=30)
    app.session_state["actor"] = TECH
    return app.run()


def metrics(app: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in app.metric}


def test_never_run_says_not_listening(app_db: str) -> None:
    app = dose_reports_page()
    assert not app.exception
    assert any("never run" in i.value for i in app.info)
    assert metrics(app)["Imported today"] == "0"


def test_listening_counts_and_rejections_in_words(app_db: str, engine: Engine,
                                                  tmp_path: Path) -> None:
    receiver = Receiver(engine, cli_actor(), tmp_path / "inbox", port=0, address="127.0.0.1",
                        allow=[parse_rule("CARM1")])
    receiver.start()
    try:
        text = plain_text_sr(tmp_path / "text.dcm")
        assert send(receiver.port, [REAL_FILES[0], text], calling_ae="CARM1") == [0, 0xC000]
        assoc = sender("STRANGER").associate("127.0.0.1", receiver.port)
        # Refused: rejected, or (on a machine too loaded to finish the rejection before the
        # requestor gives up) aborted; never accepted. The receipt below says which it was.
        assert not assoc.is_established
        assert wait_until(lambda: len(receipts(engine)) == 3)
        app = dose_reports_page()
        assert not app.exception
        assert any(f"Listening as FLUORO_AUDIT on port {receiver.port}" in s.value
                   for s in app.success)
        shown = metrics(app)
        assert (shown["Imported today"], shown["Rejected today"],
                shown["Senders refused today"]) == ("1", "1", "1")
        assert any("Last object received" in t.value and "CARM1" in t.value
                   for t in app.text)
        table = app.dataframe[-1].value
        assert set(table["outcome"]) == {"Rejected", "Sender not allowed"}
        assert table["reason"].str.len().min() > 0
    finally:
        receiver.stop()
    app = dose_reports_page()
    assert any("Not listening" in w.value and "stopped" in w.value for w in app.warning)
