"""Exports a receiver can check (issue 10): the manifest is signed with the site's Ed25519 key,
and verify-export catches what sums alone cannot, an edited file whose SHA256SUMS line and
manifest entry were recomputed, naming the file, on both databases."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from audit.auth import Actor
from audit.cli import main
from audit.export.registry import KINDS
from audit.export.runner import ExportResult, export
from audit.export.signing import TrustedKey, signature_matches
from audit.export.verify import verify_export
from audit.keys import fingerprint, load_keys, public_key_b64
from audit.log.service import ProcedureLog
from audit.storage.models import AuditEvent
from audit.trail import head
from audit.vocab import Role
from tests.conftest import Databases, valid_record

RSO = Actor("rso1", Role.RSO)
EDITED = "procedures.csv: differs from the export's audit event"
CHANGED = ("manifest.sig: manifest signature does not match: manifest.json was changed after "
           "signing")


@pytest.fixture
def two_records(service: ProcedureLog, admin: Actor) -> None:
    service.log_many([valid_record(),
                      valid_record(performed_at="2026-04-02T10:00:00Z", patient_id="MRN0002",
                                   site="Northgate", room="Suite A")],
                     admin, create_missing=True)


@pytest.fixture
def site(engine: Engine) -> TrustedKey:
    return TrustedKey(load_keys(engine).public_key_b64(), "this site's key")


@pytest.fixture
def no_default_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A receiver's machine: no FLUORO_AUDIT_DB, no var/fluoro-audit.sqlite3 here."""
    monkeypatch.delenv("FLUORO_AUDIT_DB", raising=False)
    monkeypatch.chdir(tmp_path)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def forge(folder: Path, key: Ed25519PrivateKey | None = None) -> None:
    """What a forger does: lower a DAP in procedures.csv, recompute its manifest entry and
    SHA256SUMS; with `key`, also re-sign the manifest with their own key and ship its public
    half in place of the site's."""
    path = folder / "procedures.csv"
    data = path.read_bytes()
    at = data.index(b"0.71")
    path.write_bytes(data[:at] + b"0.07" + data[at + 4:])
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text("utf-8"))
    if key is not None:
        public = public_key_b64(key.public_key())
        manifest["signing"] |= {"public_key": public, "fingerprint": fingerprint(public)}
        (folder / "signing_public_key.txt").write_text(f"public_key: {public}\n")
    for entry in manifest["files"]:
        file = folder / entry["name"]
        entry |= {"sha256": _sha(file), "bytes": file.stat().st_size}
    manifest_path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", "utf-8")
    if key is not None:
        signature = key.sign(manifest_path.read_bytes())
        (folder / "manifest.sig").write_text(base64.b64encode(signature).decode() + "\n")
    names = sorted(p.name for p in folder.iterdir() if p.name != "SHA256SUMS")
    (folder / "SHA256SUMS").write_text("".join(f"{_sha(folder / n)}  {n}\n" for n in names))


def zipped(folder: Path) -> Path:
    target = folder.with_name(folder.name + "-forged.zip")
    with zipfile.ZipFile(target, "x") as archive:
        for path in sorted(folder.iterdir()):
            archive.write(path, f"{folder.name}/{path.name}")
    return target


def _sha256sum(folder: Path) -> int:
    return subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=folder,
                          capture_output=True, check=False).returncode


# --- what a signed export carries ----------------------------------------------------------------

def test_the_manifest_is_signed_with_the_site_key_and_points_at_its_audit_event(
    engine: Engine, two_records: None, tmp_path: Path
) -> None:
    keys = load_keys(engine)
    with Session(engine) as s:
        before = head(s)
    result = export(engine, RSO, tmp_path / "x")
    folder = result.path
    manifest = json.loads((folder / "manifest.json").read_text("utf-8"))
    assert manifest["signing"] == {
        "algorithm": "Ed25519", "public_key": keys.public_key_b64(),
        "fingerprint": keys.fingerprint(), "signature_file": "manifest.sig",
        "signed": "the exact bytes of manifest.json"}
    signature = (folder / "manifest.sig").read_text("ascii")
    assert signature_matches(keys.public_key_b64(), (folder / "manifest.json").read_bytes(),
                             signature)
    assert before is not None and manifest["trail_head"] == before.as_dict()
    with Session(engine) as s:
        event = s.get(AuditEvent, result.audit_event_id)
        assert event is not None and head(s) is not None
        assert manifest["audit_event"]["event_id"] == event.id
        assert manifest["audit_event"]["mac"] == event.hash
    shipped = (folder / "signing_public_key.txt").read_text("ascii")
    assert f"public_key:  {keys.public_key_b64()}" in shipped
    assert f"fingerprint: {keys.fingerprint()}" in shipped
    readme = (folder / "README.txt").read_text("utf-8")
    assert keys.fingerprint() in readme and "fluoro-audit keys show" in readme
    assert result.fingerprint == keys.fingerprint()
    if shutil.which("openssl"):  # what README.txt tells a receiver without fluoro-audit
        raw = tmp_path / "sig.bin"
        raw.write_bytes(base64.b64decode(signature))
        checked = subprocess.run(
            ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", "signing_public_key.txt",
             "-rawin", "-in", "manifest.json", "-sigfile", str(raw)], cwd=folder,
            capture_output=True, text=True, check=False)
        assert "Signature Verified Successfully" in checked.stdout, checked.stderr


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_export_kind_and_its_zip_is_signed_and_verifies(
    engine: Engine, two_records: None, tmp_path: Path, site: TrustedKey, kind: str
) -> None:
    result = export(engine, RSO, tmp_path / kind, sections=KINDS[kind], make_zip=True)
    assert result.zip_path is not None
    for path in (result.path, result.zip_path):
        report = verify_export(path, trusted=site, engine=engine)
        assert report.ok, report.problems
        assert report.signed_by == site.fingerprint
        assert any(n.startswith("signature: valid, made with this site's key")
                   for n in report.notes)
        assert any(f"audit event {result.audit_event_id} " in n for n in report.notes)


# --- forgeries ---------------------------------------------------------------------------------

def test_a_forged_export_with_recomputed_sums_is_rejected_naming_the_file(
    engine: Engine, db_url: str, two_records: None, tmp_path: Path, site: TrustedKey,
    capsys: pytest.CaptureFixture[str], no_default_database: None,
) -> None:
    result = export(engine, RSO, tmp_path / "x", make_zip=True)
    forge(result.path)
    assert _sha256sum(result.path) == 0  # the sums alone no longer tell

    alone = verify_export(result.path)  # the receiver: no key of their own, no database
    assert not alone.ok and CHANGED in alone.problems[0]
    at_site = verify_export(result.path, trusted=site, engine=engine)
    assert any(p.startswith(EDITED) for p in at_site.problems), at_site.problems
    assert any(p.startswith(CHANGED) for p in at_site.problems)

    code, _, err = run(capsys, "verify-export", str(result.path))
    assert code == 1 and CHANGED in err and "export DOES NOT MATCH" in err
    for where in (["--db", db_url, "verify-export", str(result.path)],
                  ["verify-export", str(result.path), "--db", db_url],
                  ["verify-export", str(zipped(result.path)), "--db", db_url]):
        code, _, err = run(capsys, *where)
        assert code == 1 and EDITED in err and CHANGED in err, (where, err)


def test_a_manifest_re_signed_with_another_key_fails_on_the_fingerprint(
    engine: Engine, db_url: str, two_records: None, tmp_path: Path, site: TrustedKey,
    capsys: pytest.CaptureFixture[str], no_default_database: None,
) -> None:
    result = export(engine, RSO, tmp_path / "x")
    forger = Ed25519PrivateKey.generate()
    forged_fp = fingerprint(public_key_b64(forger.public_key()))
    forge(result.path, forger)
    mismatch = (f"manifest.sig: signed by a different key: the export names fingerprint "
                f"{forged_fp}")

    # Against the shipped key alone it is consistent: the report says what that proves and
    # prints the forger's fingerprint for the receiver to compare with the site's.
    alone = verify_export(result.path)
    assert alone.ok and alone.signed_by == forged_fp != site.fingerprint
    code, out, _ = run(capsys, "verify-export", str(result.path))
    assert code == 0 and f"valid for the key shipped in the export, fingerprint {forged_fp}" \
        in out and "not that the site did" in out

    trusted = verify_export(result.path, trusted=site)
    assert [p for p in trusted.problems if p.startswith(mismatch)], trusted.problems
    assert site.fingerprint in trusted.problems[0]
    code, _, err = run(capsys, "verify-export", str(result.path), "--public-key", site.b64)
    assert code == 1 and mismatch in err and f"has fingerprint {site.fingerprint}" in err
    code, _, err = run(capsys, "verify-export", str(zipped(result.path)), "--db", db_url)
    assert code == 1 and mismatch in err and EDITED in err
    assert "an export from another site: check it with --public-key" in err


def test_an_unsigned_export_is_refused(
    engine: Engine, two_records: None, tmp_path: Path, site: TrustedKey
) -> None:
    folder = export(engine, RSO, tmp_path / "x").path
    (folder / "manifest.sig").unlink()
    sums = folder / "SHA256SUMS"
    sums.write_text("".join(line + "\n" for line in sums.read_text().splitlines()
                            if not line.endswith("manifest.sig")))
    report = verify_export(folder, trusted=site)
    assert [p for p in report.problems if p.startswith("manifest.sig: missing")]


# --- untouched exports -------------------------------------------------------------------------

def test_an_untouched_export_verifies_with_and_without_the_database(
    engine: Engine, db_url: str, two_records: None, tmp_path: Path, site: TrustedKey,
    capsys: pytest.CaptureFixture[str], no_default_database: None,
) -> None:
    result: ExportResult = export(engine, RSO, tmp_path / "x", include_phi=True, make_zip=True)
    assert result.zip_path is not None
    for path in (result.path, result.zip_path):
        code, out, _ = run(capsys, "--db", db_url, "verify-export", str(path))
        assert code == 0 and out.startswith("export intact: 6 files"), out
        assert f"made with this site's key (key directory {load_keys(engine).directory})" in out
        assert f"audit event {result.audit_event_id} (export by rso1" in out

        code, out, _ = run(capsys, "verify-export", str(path))
        assert code == 0 and "valid for the key shipped in the export, fingerprint " \
            f"{site.fingerprint}" in out and "audit event" not in out

        shipped = str(result.path / "signing_public_key.txt")
        for key in (site.b64, shipped):
            code, out, _ = run(capsys, "verify-export", str(path), "--public-key", key)
            assert code == 0 and "made with the key given with --public-key: fingerprint " \
                f"{site.fingerprint}" in out


def test_verify_against_another_database_says_it_has_no_record(
    engine: Engine, two_records: None, tmp_path: Path, site: TrustedKey,
    databases: Databases, backend: str,
) -> None:
    """The test databases share one key directory, so the key matches and only the trail
    tells: this database never recorded the export."""
    result = export(engine, RSO, tmp_path / "x")
    from audit.storage.engine import make_engine

    other = make_engine(databases.sqlite() if backend == "sqlite" else databases.postgresql())
    try:
        report = verify_export(result.path, trusted=site, engine=other)
    finally:
        other.dispose()
    assert [p for p in report.problems if "is not in this database" in p], report.problems
    with Session(engine) as s:
        assert s.scalar(select(AuditEvent.id).where(
            AuditEvent.entity_id == result.export_id,
            AuditEvent.id == result.audit_event_id)) is not None


def test_a_bad_public_key_is_refused(
    engine: Engine, db_url: str, two_records: None, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], no_default_database: None,
) -> None:
    folder = export(engine, RSO, tmp_path / "x").path
    code, _, err = run(capsys, "verify-export", str(folder), "--public-key", "c2hvcnQ=")
    assert code == 1 and "error: --public-key 'c2hvcnQ=': not an Ed25519 public key" in err


def test_the_default_database_is_at_hand_when_it_exists(
    engine: Engine, db_url: str, two_records: None, tmp_path: Path, site: TrustedKey,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At the site (FLUORO_AUDIT_DB set, no --db): its key is trusted and its trail compared;
    a key given for another site's export keeps this site's trail out of it."""
    monkeypatch.setenv("FLUORO_AUDIT_DB", db_url)
    monkeypatch.chdir(tmp_path)
    result = export(engine, RSO, tmp_path / "x")
    code, out, _ = run(capsys, "verify-export", str(result.path))
    assert code == 0 and "made with this site's key" in out
    assert f"audit event {result.audit_event_id} (export by rso1" in out

    other = Ed25519PrivateKey.generate()
    code, _, err = run(capsys, "verify-export", str(result.path), "--public-key",
                       public_key_b64(other.public_key()))
    assert code == 1 and "signed by a different key" in err and "audit event" not in err

    forge(result.path)
    code, _, err = run(capsys, "verify-export", str(result.path))
    assert code == 1 and EDITED in err and CHANGED in err
