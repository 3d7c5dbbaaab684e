"""`fluoro-audit rules` and `fluoro-audit followup` from the shell: thin layers over the library,
refusals naming the parameter or field, exit 1."""

from __future__ import annotations

import json
import subprocess
import sys

from audit.log.service import ProcedureLog
from tests.rules.helpers import logged, session


def cli(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "audit.cli", "--db", db_url, *args],
                          capture_output=True, text=True, check=False, timeout=180)


def test_rules_list_enable_set_and_a_refusal_naming_the_parameter(db_url: str,
                                                                   service: ProcedureLog) -> None:
    done = cli(db_url, "rules", "enable", "lcd_esi")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"key": "lcd_esi", "enabled": True}
    done = cli(db_url, "rules", "set", "lcd_esi", "window_days", "20")
    assert done.returncode == 1
    assert "window_days" in done.stderr and "from 30 to 730" in done.stderr
    done = cli(db_url, "rules", "set", "lcd_esi", "window_days", "180")
    assert done.returncode == 0, done.stderr
    listed = [json.loads(line) for line in cli(db_url, "rules", "list").stdout.splitlines()]
    esi = next(p for p in listed if p["key"] == "lcd_esi")
    assert esi["enabled"] and esi["parameters"]["window_days"] == 180


def test_followup_add_and_list(db_url: str, service: ProcedureLog) -> None:
    record, = logged(service, [session("2026-01-10")])
    done = cli(db_url, "followup", "add", str(record), "--date", "2026-04-20", "--relief", "60",
               "--duration-days", "100", "--note", "clinic visit")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["record_id"] == record
    done = cli(db_url, "followup", "add", str(record), "--date", "2026-04-20", "--relief",
               "160", "--duration-days", "100")
    assert done.returncode == 1 and "relief_percent" in done.stderr
    rows = [json.loads(line) for line in
            cli(db_url, "followup", "list", str(record)).stdout.splitlines()]
    assert [(r["relief_percent"], r["relief_days"]) for r in rows] == [(60, 100)]
