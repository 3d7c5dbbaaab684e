"""Checking an export as its receiver would: no database, only the folder (or its zip).

`verify_export` rechecks every SHA-256 listed in SHA256SUMS and in manifest.json, each file's
size, and each CSV's record count, read with the csv module (a quoted newline inside a cell is
not a new record), and names every file that is missing, unlisted or different.
"""

from __future__ import annotations

import csv
import json
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audit.export import cells as csvsafe
from audit.export.cells import FileInfo
from audit.export.manifest import FORMAT, MANIFEST, SUMS, sha256_file


@dataclass
class VerifyReport:
    """What verify_export found; `problems` names each file and what differs."""

    path: Path
    checked: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def message(self) -> str:
        if self.ok:
            return (f"export intact: {len(self.checked)} files match SHA256SUMS and the "
                    f"manifest ({', '.join(self.checked)})")
        return "export DOES NOT MATCH:\n" + "\n".join(f"  {p}" for p in self.problems)


def verify_export(path: Path | str) -> VerifyReport:
    """Recheck an export folder (or its zip): every SHA-256 in SHA256SUMS and the manifest,
    byte sizes, CSV record counts (read with the csv module), and files nobody listed."""
    path = Path(path)
    if path.is_file() and zipfile.is_zipfile(path):
        return _verify_zip(path)
    report = VerifyReport(path)
    if not path.is_dir():
        report.problems.append(f"{path}: not an export folder or zip")
        return report
    sums = _read_sums(path / SUMS, report)
    manifest = _read_manifest(path / MANIFEST, report)
    listed = {e.get("name"): e for e in manifest.get("files", []) if isinstance(e, dict)}
    present = {p.name for p in path.iterdir() if p.is_file()}
    for name in sorted(present - set(sums) - {SUMS}):
        report.problems.append(f"{name}: present but not listed in {SUMS}")
    for name in sorted(set(sums) | set(listed)):
        file = path / name
        if "/" in name or name.startswith(".."):
            report.problems.append(f"{name}: not a plain file name")
            continue
        if not file.is_file():
            report.problems.append(f"{name}: listed but missing")
            continue
        actual = sha256_file(file)
        if name in sums and sums[name] != actual.sha256:
            report.problems.append(f"{name}: SHA-256 differs from {SUMS} (expected "
                                   f"{sums[name]}, found {actual.sha256})")
        if name != MANIFEST and name not in listed:
            report.problems.append(f"{name}: not listed in {MANIFEST}")
        entry = listed.get(name)
        if entry is not None:
            _compare_entry(file, entry, actual, report)
        report.checked.append(name)
    return report


def _compare_entry(file: Path, entry: Mapping[str, Any], actual: FileInfo,
                   report: VerifyReport) -> None:
    name = file.name
    if entry.get("sha256") != actual.sha256:
        report.problems.append(f"{name}: SHA-256 differs from {MANIFEST} (expected "
                               f"{entry.get('sha256')}, found {actual.sha256})")
    if entry.get("bytes") != actual.bytes:
        report.problems.append(f"{name}: {actual.bytes} bytes, {MANIFEST} says "
                               f"{entry.get('bytes')}")
    if name.endswith(".csv") and isinstance(entry.get("rows"), int):
        try:
            rows = csvsafe.count_records(file)
        except (UnicodeDecodeError, csv.Error) as exc:
            report.problems.append(f"{name}: not readable as UTF-8 CSV ({exc})")
            return
        if rows != entry["rows"]:
            report.problems.append(f"{name}: {rows} records, {MANIFEST} says {entry['rows']}")


_SUMS_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")


def _read_sums(path: Path, report: VerifyReport) -> dict[str, str]:
    """SHA256SUMS in GNU format: "<hex>  <name>" (or "<hex> *<name>", binary mode)."""
    if not path.is_file():
        report.problems.append(f"{SUMS}: missing")
        return {}
    sums: dict[str, str] = {}
    for number, line in enumerate(path.read_text("utf-8", errors="replace").splitlines(), 1):
        match = _SUMS_LINE.match(line)
        if match is None:
            report.problems.append(f"{SUMS}: line {number} is not '<sha256>  <file>'")
            continue
        sums[match[2]] = match[1].lower()
    return sums


def _read_manifest(path: Path, report: VerifyReport) -> dict[str, Any]:
    if not path.is_file():
        report.problems.append(f"{MANIFEST}: missing")
        return {}
    try:
        manifest = json.loads(path.read_text("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        report.problems.append(f"{MANIFEST}: not valid JSON ({exc})")
        return {}
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        report.problems.append(f"{MANIFEST}: not a fluoro-audit export manifest (expected "
                               f"format {FORMAT!r})")
        return manifest if isinstance(manifest, dict) else {}
    return manifest


def _verify_zip(path: Path) -> VerifyReport:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        tops = {n.split("/", 1)[0] for n in names}
        if len(tops) != 1 or any(n.startswith("/") or ".." in n.split("/") for n in names):
            report = VerifyReport(path)
            report.problems.append(f"{path.name}: expected one export folder inside")
            return report
        archive.extractall(tmp)
        inner = verify_export(Path(tmp) / tops.pop())
    inner.path = path
    return inner
