"""Who may send: the allow list (setting and --allow), loopback only without one, TLS."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from audit.auth import cli_actor
from audit.dicom_net.access import AccessPolicy, parse_rule, parse_rules
from audit.dicom_net.inbox import SUCCESS
from audit.dicom_net.scp import Receiver, tls_context
from audit.errors import ValidationFailed
from audit.settings import update_setting
from tests.dicom_net.net_helpers import (
    non_loopback_address,
    receipts,
    send,
    sender,
    wait_until,
)
from tests.dose_reports.dose_helpers import REAL_FILES


def refused(port: int, calling_ae: str, host: str = "127.0.0.1", **options: object) -> bool:
    assoc = sender(calling_ae).associate(host, port, ae_title="FLUORO_AUDIT", **options)
    if assoc.is_established:
        assoc.release()
        return False
    return bool(assoc.is_rejected)


def test_rules_read_and_refuse_in_words() -> None:
    policy = AccessPolicy((parse_rule("CARM1"), parse_rule("PACS@10.1.2.0/24"),
                           parse_rule("*@10.9.9.9")))
    assert policy.refusal("CARM1", "192.168.1.4") is None
    assert policy.refusal("PACS", "10.1.2.77") is None
    assert policy.refusal("ANYNAME", "10.9.9.9") is None
    assert "not on the allow list" in (policy.refusal("PACS", "10.1.3.1") or "")
    assert "not on the allow list" in (policy.refusal("OTHER", "127.0.0.1") or "")
    nobody = AccessPolicy()
    assert nobody.refusal("X", "127.0.0.1") is None and nobody.refusal("X", "::1") is None
    assert "loopback" in (nobody.refusal("X", "10.1.2.3") or "")
    for bad in ("", "*", "TOO_LONG_FOR_AN_AE_TITLE", "CARM@not-an-address", "A\\B"):
        with pytest.raises(ValidationFailed):
            parse_rule(bad)
    assert parse_rules(" CARM1,PACS@10.0.0.1 ") == [parse_rule("CARM1"),
                                                   parse_rule("PACS@10.0.0.1")]


def test_an_ae_title_off_the_allow_list_is_refused_and_recorded(
        engine: Engine, start_receiver: Callable[..., Receiver]) -> None:
    update_setting(engine, cli_actor(), "receiver_allowed", "CARM1 CARM2@127.0.0.1")
    receiver = start_receiver(engine, allow=[parse_rule("CLIAE")])
    assert refused(receiver.port, "INTRUDER")
    assert not refused(receiver.port, "CARM1")
    assert not refused(receiver.port, "CARM2")
    assert not refused(receiver.port, "CLIAE")
    assert send(receiver.port, [REAL_FILES[0]], calling_ae="CARM1") == [SUCCESS]
    assert wait_until(lambda: len(receipts(engine)) == 2)
    rows = receipts(engine)
    assert [(r.outcome, r.calling_ae) for r in rows] == [("refused", "INTRUDER"),
                                                         ("imported", "CARM1")]
    assert "not on the allow list" in (rows[0].reason or "")


def test_without_a_rule_only_loopback_peers_may_send(
        engine: Engine, start_receiver: Callable[..., Receiver]) -> None:
    address = non_loopback_address()
    if address is None:
        pytest.skip("this machine has no address besides loopback")
    receiver = start_receiver(engine, address="0.0.0.0")
    assert not refused(receiver.port, "ANY", host="127.0.0.1")
    assert refused(receiver.port, "ANY", host=address)
    assert wait_until(lambda: len(receipts(engine)) == 1)
    row = receipts(engine)[-1]
    assert (row.outcome, row.peer_address) == ("refused", address)
    assert "loopback" in (row.reason or "")


def _certificate(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_tls_receives_over_tls_only(engine: Engine, start_receiver: Callable[..., Receiver],
                                    tmp_path: Path) -> None:
    cert, key = _certificate(tmp_path)
    receiver = start_receiver(engine, ssl_context=tls_context(str(cert), str(key), None))
    client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cert))
    assert send(receiver.port, [REAL_FILES[0]], tls_args=(client, "localhost")) == [SUCCESS]
    assoc = sender().associate("127.0.0.1", receiver.port, ae_title="FLUORO_AUDIT")
    assert not assoc.is_established  # plain DICOM to a TLS port gets nowhere
    with pytest.raises(ValueError):
        tls_context(str(cert), None, None)
