"""Checking an export as its receiver would: the folder (or its zip), a public key, and, at
the site, the database.

`verify_export` rechecks every SHA-256 listed in SHA256SUMS and in manifest.json, each file's
size, and each CSV's record count, read with the csv module (a quoted newline inside a cell is
not a new record), and names every file that is missing, unlisted or different. Then the
signature (manifest.sig, audit.export.signing): sums alone can be recomputed by whoever edits a
file, the signature cannot be remade without the site's private key. Which public key it is
checked against decides what a valid signature proves:

- a `trusted` key (given with --public-key, or the site's own key where its key directory is
  at hand): the manifest is as that key's holder signed it;
- otherwise the key shipped in the export: only that the files are as whoever holds that key
  signed them. The report says so and prints the fingerprint, for the receiver to compare with
  the one the site gives them by another channel.

With an `engine` (the site's database) the files are also compared with the hashes in the
export's own audit event (audit.export.provenance), which names the file that differs even
when the manifest was re-signed with another key.
"""

from __future__ import annotations

import csv
import json
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit.export import cells as csvsafe
from audit.export.cells import FileInfo
from audit.export.manifest import (
    FORMAT,
    MANIFEST,
    PUBLIC_KEY_FILE,
    SIGNATURE_FILE,
    SUMS,
    sha256_file,
)
from audit.export.signing import (
    TrustedKey,
    normalise_key,
    read_public_key,
    signature_matches,
)
from audit.keys import fingerprint

if TYPE_CHECKING:
    from sqlalchemy import Engine


@dataclass
class VerifyReport:
    """What verify_export found: `problems` names each file and what differs; `notes` says
    what the signature (and the audit event) prove, whichever way it went."""

    path: Path
    checked: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: The fingerprint of the key the export names as its signer (None if it names none).
    signed_by: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def message(self) -> str:
        notes = "".join(f"\n{n}" for n in self.notes)
        if self.ok:
            return (f"export intact: {len(self.checked)} files match SHA256SUMS and the "
                    f"manifest ({', '.join(self.checked)}){notes}")
        return ("export DOES NOT MATCH:\n" + "\n".join(f"  {p}" for p in self.problems)
                + notes)


def verify_export(path: Path | str, *, trusted: TrustedKey | None = None,
                  engine: Engine | None = None) -> VerifyReport:
    """Recheck an export folder (or its zip): every SHA-256 in SHA256SUMS and the manifest,
    byte sizes, CSV record counts (read with the csv module), files nobody listed, the
    manifest's signature (against `trusted`, else the shipped key, saying so) and, with the
    site's `engine`, the hashes in the export's audit event."""
    path = Path(path)
    if path.is_file() and zipfile.is_zipfile(path):
        return _verify_zip(path, trusted, engine)
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
        if name not in (MANIFEST, SIGNATURE_FILE) and name not in listed:
            report.problems.append(f"{name}: not listed in {MANIFEST}")
        entry = listed.get(name)
        if entry is not None:
            _compare_entry(file, entry, actual, report)
        report.checked.append(name)
    if manifest:
        _check_signature(path, manifest, trusted, report)
    if engine is not None and manifest:
        from audit.export.provenance import compare_with_event

        found = compare_with_event(engine, path, manifest)
        report.problems.extend(found.problems)
        report.notes.extend(found.notes)
    return report


def _check_signature(folder: Path, manifest: Mapping[str, Any], trusted: TrustedKey | None,
                     report: VerifyReport) -> None:
    """manifest.sig against the trusted key, or the shipped one (and then say what that
    proves); the shipped key file must name the key the manifest names."""
    signing = manifest.get("signing")
    shipped = signing.get("public_key") if isinstance(signing, dict) else None
    try:
        shipped = normalise_key(shipped) if isinstance(shipped, str) else None
    except ValueError:
        shipped = None
    report.signed_by = fingerprint(shipped) if shipped else None
    signature = folder / SIGNATURE_FILE
    if not signature.is_file():
        report.problems.append(f"{SIGNATURE_FILE}: missing: the export is not signed, so a "
                               f"file edited with {SUMS} and {MANIFEST} recomputed would pass")
        return
    if shipped is None:
        report.problems.append(f"{MANIFEST}: names no readable signing key (signing.public_key)")
        if trusted is None:
            return
    key_file = folder / PUBLIC_KEY_FILE
    if shipped and key_file.is_file():
        try:
            in_file = read_public_key(str(key_file))
        except ValueError:
            in_file = None
        if in_file != shipped:
            report.problems.append(f"{PUBLIC_KEY_FILE}: is not the key {MANIFEST} names "
                                   f"({report.signed_by})")
    if trusted is not None and shipped is not None and shipped != trusted.b64:
        hint = (" (an export from another site: check it with --public-key and the key that "
                "site gave you)" if trusted.local else "")
        report.problems.append(
            f"{SIGNATURE_FILE}: signed by a different key: the export names fingerprint "
            f"{report.signed_by}, {trusted.source} has fingerprint {trusted.fingerprint}{hint}")
        return
    key = trusted.b64 if trusted is not None else shipped
    assert key is not None
    if not signature_matches(key, (folder / MANIFEST).read_bytes(),
                             signature.read_text("ascii", errors="replace")):
        report.problems.append(f"{SIGNATURE_FILE}: manifest signature does not match: "
                               f"{MANIFEST} was changed after signing (or {SIGNATURE_FILE} was)")
        return
    if trusted is not None:
        report.notes.append(f"signature: valid, made with {trusted.source}: fingerprint "
                            f"{trusted.fingerprint}")
        return
    report.notes.append(
        f"signature: valid for the key shipped in the export, fingerprint {report.signed_by}.\n"
        "  This proves only that the files are as whoever holds that key signed them, not that "
        "the site did:\n  compare this fingerprint with the one the site gives you by another "
        "channel (the site\n  reads it with `fluoro-audit keys show`), or check with "
        "--public-key <the site's public key>.")


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


def _verify_zip(path: Path, trusted: TrustedKey | None, engine: Engine | None) -> VerifyReport:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        tops = {n.split("/", 1)[0] for n in names}
        if len(tops) != 1 or any(n.startswith("/") or ".." in n.split("/") for n in names):
            report = VerifyReport(path)
            report.problems.append(f"{path.name}: expected one export folder inside")
            return report
        archive.extractall(tmp)
        inner = verify_export(Path(tmp) / tops.pop(), trusted=trusted, engine=engine)
    inner.path = path
    return inner
