"""The files that describe and vouch for an export: data_dictionary.csv, README.txt,
manifest.json and SHA256SUMS, and the format constants they share with the verifier.

Kept apart from the runner so that audit.export.verify, which checks an export without a
database, reads the same names and format string the writer wrote, without importing the
runner (and through it the sections and the database).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit._version import __version__
from audit.export import cells as csvsafe
from audit.export.cells import FileInfo, Kind

if TYPE_CHECKING:  # annotations only: the verifier imports this module without the database
    from audit.auth import Actor
    from audit.export.types import Column, Section
    from audit.filters import Filters

MANIFEST = "manifest.json"
SUMS = "SHA256SUMS"
#: The manifest's "format": how verify-export and the CSV importer recognise our exports.
FORMAT = "fluoro-audit export 1"
DICTIONARY_FILE = "data_dictionary.csv"
README = "README.txt"
#: The site's Ed25519 signature of manifest.json's bytes, and the key to check it with
#: (audit.export.signing writes both).
SIGNATURE_FILE = "manifest.sig"
PUBLIC_KEY_FILE = "signing_public_key.txt"
#: Files the export's completion event cannot hold the hash of: they are written after it
#: (the manifest records the event's id and MAC) or are made from the manifest.
AFTER_EVENT = frozenset({MANIFEST, SIGNATURE_FILE, SUMS})
DICTIONARY_HEADER = ("file", "field", "type", "unit", "allowed_values", "required", "description")


def sha256_file(path: Path) -> FileInfo:
    """Size and SHA-256 of a file (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return FileInfo(path.name, None, path.stat().st_size, digest.hexdigest())


def write_sums(path: Path, files: list[FileInfo]) -> None:
    """GNU coreutils format, so `sha256sum -c SHA256SUMS` checks the folder: "<hex>  <name>"
    (two spaces: text mode), LF line ends, sorted by name."""
    lines = "".join(f"{f.sha256}  {f.name}\n" for f in sorted(files, key=lambda f: f.name))
    with open(path, "x", encoding="ascii", newline="\n") as handle:
        handle.write(lines)


def write_dictionary(folder: Path, columns: Mapping[str, Sequence[Column]]) -> FileInfo:
    """data_dictionary.csv: one row per column of every CSV of the export, in file order."""
    rows = [[filename, c.name, c.kind, c.unit, c.allowed, c.required, c.description]
            for filename, cols in columns.items() for c in cols]
    rendered = [[csvsafe.cell(v, Kind.TEXT) for v in row] for row in rows]
    return csvsafe.write_rows(folder / DICTIONARY_FILE, DICTIONARY_HEADER, rendered)


def write_readme(folder: Path, export_id: str, generated_at: datetime, actor: Actor,
                 sections: Sequence[Section], filters: Filters, include_phi: bool,
                 files: Sequence[FileInfo], fingerprint: str) -> FileInfo:
    """README.txt: what the folder holds and how to check it, for whoever opens the zip."""
    titles = {s.filename: s.title for s in sections}
    titles[DICTIONARY_FILE] = "Every column of every CSV: type, unit, allowed values, meaning"
    width = max(len(n) for n in [*(f.name for f in files), PUBLIC_KEY_FILE]) + 2
    listing = [f"  {f.name:<{width}}{f'{f.rows:,} rows':>14}  {titles.get(f.name, '')}"
               for f in files if f.rows is not None]
    blank = " " * 16
    applied = [f"{k}={v}" for k, v in filters.as_dict().items() if v not in (None, False)]
    identity = ("INCLUDES patient_id (medical record numbers): protected health information; "
                "keep it secure." if include_phi else
                "patients appear only as patient_ref, a keyed pseudonym (HMAC-SHA-256 with the "
                "site's secret): stable across exports, not reversible.")
    lines = [
        f"fluoro-audit export {export_id}",
        f"Generated {csvsafe.timestamp_text(generated_at)} by {actor.username} "
        f"({actor.role.value}) with fluoro-audit {__version__}.",
        f"Patient identity: {identity}",
        f"Filters: {', '.join(applied) or 'none (everything)'}; voided records "
        f"{'included (status void, with void_reason)' if filters.include_voided else 'left out'}.",
        "",
        "Files",
        *listing,
        f"  {README:<{width}}{blank}this file",
        f"  {MANIFEST:<{width}}{blank}what was exported, with which filters; each file's rows, "
        "size and SHA-256",
        f"  {PUBLIC_KEY_FILE:<{width}}{blank}the site's public signing key, its fingerprint, "
        "and how to check the signature",
        f"  {SIGNATURE_FILE:<{width}}{blank}the site's signature of {MANIFEST}",
        f"  {SUMS:<{width}}{blank}SHA-256 of every file",
        "",
        "Checking the export",
        "  1. Every file is as the manifest lists it:",
        "     Linux or macOS, in this folder:   sha256sum -c SHA256SUMS   (every line must say OK)",
        "     Windows PowerShell:               Get-FileHash -Algorithm SHA256 <file>",
        "  2. The manifest is the site's: sums alone can be recomputed by whoever edits a file,",
        f"     so {SIGNATURE_FILE} holds the site's Ed25519 signature of {MANIFEST} (which lists",
        "     every file's SHA-256). This export was signed by the key with fingerprint",
        f"         {fingerprint}",
        "     Ask the site for its fingerprint by another channel (telephone, letter; the site",
        "     reads it from `fluoro-audit keys show`) and compare: a forger can ship a key too.",
        "     fluoro-audit verify-export <folder or zip> --public-key <the site's public key>",
        "     checks sums, row counts and the signature; for OpenSSL alone see",
        f"     {PUBLIC_KEY_FILE}.",
        "  3. At the site, `fluoro-audit verify-export <folder or zip>` also compares every file",
        f"     with the export's audit event (action export, entity_id {export_id}),",
        "     which holds each file's SHA-256.",
        "",
        "Reading the CSV files",
        "  UTF-8 with a byte-order mark, comma-separated, CRLF line ends, RFC 4180 quoting.",
        "  Times are ISO 8601 in UTC (2026-03-14T14:30:00Z). Numbers use '.' as the decimal",
        "  mark and no thousands separator. Lists are separated by ';'.",
        "  Text that a spreadsheet could take for a formula (starting with = + - @, tab, CR or",
        "  LF) begins with an apostrophe ('), and so does text that itself began with one:",
        "  remove one leading apostrophe (from each list item) to get the stored text.",
    ]
    path = folder / README
    with open(path, "x", encoding="utf-8", newline="\r\n") as handle:
        handle.write("\n".join(lines) + "\n")
    return sha256_file(path)


def build_manifest(export_id: str, generated_at: datetime, actor: Actor,
                   sections: Sequence[Section], filters: Filters, include_phi: bool,
                   files: Sequence[FileInfo], *, signing: Mapping[str, str],
                   trail_head: Mapping[str, Any] | None,
                   audit_event: Mapping[str, Any]) -> dict[str, Any]:
    """manifest.json: what was exported, by whom, with which filters, and each file's rows,
    bytes and SHA-256; which key signs it (manifest.sig), the audit trail's head as the
    export's snapshot saw it, and the export's own audit event (id and MAC), so that the
    site can find the event and compare (verify-export --db)."""
    return {
        "format": FORMAT,
        "export_id": export_id,
        "generated_at": csvsafe.timestamp_text(generated_at),
        "generated_by": actor.username,
        "generated_by_role": actor.role.value,
        "tool": "fluoro-audit",
        "tool_version": __version__,
        "include_phi": include_phi,
        "filters": filters.as_dict(),
        "sections": [{"name": s.name, "file": s.filename, "title": s.title,
                      "filters": list(s.honours), "period_of": s.period_of}
                     for s in sections],
        "files": [f.as_dict() for f in files],
        "csv": {"encoding": "UTF-8 with BOM", "line_end": "CRLF", "quoting": "RFC 4180",
                "timestamps": "ISO 8601 UTC", "lists": "';'-separated",
                "formula_guard": "a leading apostrophe on text starting with = + - @ tab CR LF "
                "or an apostrophe; restore by removing one leading apostrophe from each text "
                "cell (from each item of a list cell)"},
        "signing": dict(signing),
        "trail_head": dict(trail_head) if trail_head is not None else None,
        "audit_event": {**audit_event, "action": "export", "entity": "export",
                        "entity_id": export_id,
                        "holds": "every file's SHA-256 except " + ", ".join(sorted(AFTER_EVENT))},
    }


def write_json(path: Path, payload: Mapping[str, Any]) -> None:
    """Pretty, UTF-8, LF-terminated JSON in a new file (never overwritten)."""
    with open(path, "x", encoding="utf-8", newline="\n") as handle:
        json.dump(payload, handle, indent=2, ensure_ascii=False)
        handle.write("\n")
