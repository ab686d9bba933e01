"""The gate CA: files and modes, mitmproxy loading it, leaf certs, trust bundles."""

from __future__ import annotations

import ipaddress
import logging
import os
import ssl
import stat
from pathlib import Path

import certifi
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.verification import PolicyBuilder, Store
from mitmproxy.certs import CertStore
from upstreams import make_test_ca

from gate_proxy.proxy.ca import (
    CA_CERT,
    CA_KEY_AND_CERT,
    CaError,
    combined_trust_bundle,
    ensure_ca,
)


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_first_start_creates_ca_files(tmp_path: Path) -> None:
    d = tmp_path / "certs"
    ca = ensure_ca(d)

    assert ca.created
    assert mode(d) == 0o700
    assert ca.key_and_cert_path == d / CA_KEY_AND_CERT
    assert ca.cert_path == d / CA_CERT
    assert mode(ca.key_and_cert_path) == 0o600
    assert mode(ca.cert_path) == 0o600

    raw = ca.key_and_cert_path.read_bytes()
    assert raw.index(b"PRIVATE KEY") < raw.index(b"BEGIN CERTIFICATE")
    assert b"PRIVATE KEY" not in ca.cert_path.read_bytes()
    assert ca.cert_path.read_bytes() == ca.cert_pem

    cert = x509.load_pem_x509_certificate(ca.cert_pem)
    assert cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "Gate Proxy CA"
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.key_cert_sign and ku.crl_sign
    cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    validity = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert validity.days >= 3650
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)


def test_second_start_loads_the_same_ca(tmp_path: Path) -> None:
    first = ensure_ca(tmp_path)
    second = ensure_ca(tmp_path)
    assert not second.created
    assert second.cert_pem == first.cert_pem


def test_loose_key_mode_is_fixed_with_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ca = ensure_ca(tmp_path)
    os.chmod(ca.key_and_cert_path, 0o644)
    with caplog.at_level(logging.DEBUG):
        again = ensure_ca(tmp_path)
    assert mode(again.key_and_cert_path) == 0o600
    assert any("looser" in r.getMessage() for r in caplog.records)
    # Never log key material.
    key_lines = [
        line
        for line in ca.key_and_cert_path.read_text().splitlines()
        if line and not line.startswith("-----")
    ]
    assert "PRIVATE KEY" not in caplog.text
    assert not any(line in caplog.text for line in key_lines)


def test_missing_client_cert_file_is_rewritten(tmp_path: Path) -> None:
    ca = ensure_ca(tmp_path)
    ca.cert_path.unlink()
    again = ensure_ca(tmp_path)
    assert again.cert_path.read_bytes() == ca.cert_pem


def test_corrupt_or_mismatched_ca_is_an_error(tmp_path: Path) -> None:
    (tmp_path / CA_KEY_AND_CERT).write_bytes(b"garbage")
    with pytest.raises(CaError):
        ensure_ca(tmp_path)

    other = tmp_path / "other"
    ca = ensure_ca(other)
    wrong_key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    ca.key_and_cert_path.write_bytes(wrong_key + ca.cert_pem)
    with pytest.raises(CaError, match="does not match"):
        ensure_ca(other)


def test_mitmproxy_loads_our_ca_instead_of_generating_one(tmp_path: Path) -> None:
    ca = ensure_ca(tmp_path)
    before = set(os.listdir(tmp_path))

    store = CertStore.from_store(tmp_path, "mitmproxy", 2048)

    assert store.default_ca.to_cryptography() == x509.load_pem_x509_certificate(ca.cert_pem)
    # create_store would also have written .p12/.cer files.
    assert set(os.listdir(tmp_path)) == before
    assert ca.key_and_cert_path.read_bytes().count(b"BEGIN CERTIFICATE") == 1


def test_leaf_for_ip_address_has_ip_san_and_verifies(tmp_path: Path) -> None:
    ca = ensure_ca(tmp_path)
    store = CertStore.from_store(tmp_path, "mitmproxy", 2048)
    ip = ipaddress.ip_address("127.0.0.1")

    # tlsconfig passes the client's destination IP as an IPAddress SAN (and as the CN).
    entry = store.get_cert("127.0.0.1", [x509.IPAddress(ip)])
    leaf = entry.cert.to_cryptography()
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.IPAddress) == [ip]

    # Strict RFC 5280 path validation (AKI/SKI, EKU, SAN) against our CA only.
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    verifier = PolicyBuilder().store(Store([ca_cert])).build_server_verifier(x509.IPAddress(ip))
    chain = verifier.verify(leaf, [])
    assert chain[-1] == ca_cert


def test_combined_trust_bundle(tmp_path: Path) -> None:
    assert combined_trust_bundle(None, tmp_path / "out") is None

    ca_path, _ = make_test_ca(tmp_path / "up1")
    bundle = combined_trust_bundle(ca_path, tmp_path / "out")
    assert bundle is not None
    content = bundle.read_bytes()
    assert content.startswith(Path(certifi.where()).read_bytes().rstrip(b"\n"))
    assert ca_path.read_bytes().strip() in content
    # Loadable as a CA file, and it still contains the public roots.
    ssl_ctx = ssl.create_default_context(cafile=str(bundle))
    assert len(ssl_ctx.get_ca_certs()) > 50

    # Same content -> same path; different content -> a new path, old one kept.
    assert combined_trust_bundle(ca_path, tmp_path / "out") == bundle
    other_ca, _ = make_test_ca(tmp_path / "up2")
    bundle2 = combined_trust_bundle(other_ca, tmp_path / "out")
    assert bundle2 is not None and bundle2 != bundle
    assert bundle.exists()


def test_combined_trust_bundle_rejects_non_pem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    with pytest.raises(ValueError, match=r"bad\.pem"):
        combined_trust_bundle(bad, tmp_path / "out")
