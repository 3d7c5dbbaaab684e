"""`fluoro-audit settings list|set`: the receiver's settings changed from the command line,
audited; a value the receiver could not use is refused and nothing is written."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import Engine, select

from audit.cli import main
from audit.dicom_net.status import receiver_settings
from audit.storage.engine import read_session
from audit.storage.models import AuditEvent


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_set_and_list_receiver_settings(db_url: str, engine: Engine,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--db", db_url, "settings", "set", "receiver_allowed",
                 "CARM1@10.1.2.7 PACS@10.1.3.0/24"]) == 0
    assert main(["--db", db_url, "settings", "set", "receiver_enabled", "true"]) == 0
    assert main(["--db", db_url, "settings", "set", "receiver_port", "104"]) == 0
    settings = receiver_settings(engine)
    assert (settings.receiver_allowed, settings.receiver_enabled, settings.receiver_port) == (
        "CARM1@10.1.2.7 PACS@10.1.3.0/24", True, 104)
    with read_session(engine) as session:
        changed = session.scalars(select(AuditEvent.entity_id)
                                  .where(AuditEvent.action == "setting")).all()
    assert set(changed) >= {"receiver_allowed", "receiver_enabled", "receiver_port"}
    capsys.readouterr()
    assert main(["--db", db_url, "settings", "list"]) == 0
    listed = {row["key"]: row["value"] for row in map(json.loads,
                                                      capsys.readouterr().out.splitlines())}
    assert listed["receiver_ae_title"] == "FLUORO_AUDIT" and listed["receiver_port"] == 104

    assert main(["--db", db_url, "settings", "set", "receiver_allowed", "CARM1@nowhere"]) == 1
    assert main(["--db", db_url, "settings", "set", "receiver_enabled", "3"]) == 1
    assert "expected true or false" in capsys.readouterr().err
    assert receiver_settings(engine).receiver_enabled is True
    assert receiver_settings(engine).receiver_allowed == "CARM1@10.1.2.7 PACS@10.1.3.0/24"
