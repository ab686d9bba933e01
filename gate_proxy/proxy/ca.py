"""The gate's certificate authority, stored where mitmproxy's CertStore looks for it.

mitmproxy (``CertStore.from_store``) only reads ``<confdir>/mitmproxy-ca.pem`` (private key
PEM followed by the CA certificate) and generates a brand-new CA when that file is missing.
We generate the CA ourselves so that its subject, key type and file modes are ours, and so
that mitmproxy never silently rotates the CA that clients were told to trust.

Nothing in this module logs or raises with key material in the message.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import logging
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

import certifi
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

logger = logging.getLogger(__name__)

# mitmproxy's CONF_BASENAME is "mitmproxy"; these are the names CertStore.from_store uses.
CA_KEY_AND_CERT = "mitmproxy-ca.pem"  # key + cert, read by mitmproxy, 0600
CA_CERT = "mitmproxy-ca-cert.pem"  # cert only, what clients trust (served by the API), 0600
DHPARAM = "mitmproxy-dhparam.pem"  # mitmproxy writes it on load if missing; we pre-create it

CA_COMMON_NAME = "Gate Proxy CA"
CA_ORGANIZATION = "Gate Proxy"
CA_VALIDITY = datetime.timedelta(days=3650)
TRUST_BUNDLE_PREFIX = "trust-bundle-"


class CaError(RuntimeError):
    """The CA files exist but cannot be used (unreadable, corrupt, key/cert mismatch)."""


@dataclass(frozen=True)
class CaFiles:
    certs_dir: Path
    key_and_cert_path: Path  # mitmproxy-ca.pem: the gate's secret; pass certs_dir as confdir
    cert_path: Path  # mitmproxy-ca-cert.pem: give this to clients
    cert_pem: bytes
    created: bool  # True when this call generated a new CA


def ensure_ca(certs_dir: Path) -> CaFiles:
    """Load the gate CA from ``certs_dir`` or create it on first start."""
    certs_dir = Path(certs_dir)
    _ensure_dir(certs_dir)
    key_and_cert_path = certs_dir / CA_KEY_AND_CERT
    cert_path = certs_dir / CA_CERT

    created = False
    if key_and_cert_path.exists():
        _tighten_mode(key_and_cert_path, 0o600)
        cert = _load_existing(key_and_cert_path)
    else:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _build_ca_cert(key)
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        atomic_write(
            key_and_cert_path, key_pem + cert.public_bytes(serialization.Encoding.PEM), 0o600
        )
        created = True
        logger.info(
            "created gate CA in %s (subject %s, sha256 %s)",
            certs_dir,
            cert.subject.rfc4514_string(),
            cert.fingerprint(hashes.SHA256()).hex(),
        )

    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    # Keep the client-facing copy in sync with the CA mitmproxy actually signs with.
    if not cert_path.exists() or cert_path.read_bytes() != cert_pem:
        atomic_write(cert_path, cert_pem, 0o600)
    if not (certs_dir / DHPARAM).exists():
        # mitmproxy would write this itself on first load; doing it here lets the
        # directory be read-only at run time.
        from mitmproxy.certs import DEFAULT_DHPARAM

        atomic_write(certs_dir / DHPARAM, DEFAULT_DHPARAM, 0o600)
    # Every file the gate writes is 0600, public ones included: copies left by an older
    # version are tightened quietly (nothing secret was in them).
    for public in (cert_path, certs_dir / DHPARAM):
        if stat.S_IMODE(public.stat().st_mode) != 0o600:
            public.chmod(0o600)

    if cert.not_valid_after_utc < datetime.datetime.now(datetime.UTC):
        logger.warning("gate CA in %s has expired; clients will reject intercepted TLS", certs_dir)

    return CaFiles(
        certs_dir=certs_dir,
        key_and_cert_path=key_and_cert_path,
        cert_path=cert_path,
        cert_pem=cert_pem,
        created=created,
    )


def combined_trust_bundle(extra_bundle: Path | None, out_dir: Path) -> Path | None:
    """certifi's roots + ``extra_bundle`` in a new file named by content hash.

    ``ssl_verify_upstream_trusted_ca`` replaces mitmproxy's trust store (certifi) instead of
    extending it, so the extra CAs must be shipped together with the public roots. mitmproxy
    caches SSL contexts per file path, so a changed bundle must get a new path; old files are
    left in place because a running process may still reference them.
    """
    if extra_bundle is None:
        return None
    extra = Path(extra_bundle).read_bytes()
    try:
        x509.load_pem_x509_certificates(extra)
    except ValueError as e:
        raise ValueError(f"{extra_bundle}: no PEM certificate found ({e})") from e
    public = Path(certifi.where()).read_bytes()
    content = public.rstrip(b"\n") + b"\n" + extra.rstrip(b"\n") + b"\n"
    digest = hashlib.sha256(content).hexdigest()[:16]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{TRUST_BUNDLE_PREFIX}{digest}.pem"
    if not path.exists() or path.read_bytes() != content:
        atomic_write(path, content, 0o600)
    elif stat.S_IMODE(path.stat().st_mode) != 0o600:
        path.chmod(0o600)
    return path


def _build_ca_cert(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, CA_COMMON_NAME),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, CA_ORGANIZATION),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    public_key = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        # Backdate a little so clients with slightly skewed clocks accept it.
        .not_valid_before(now - datetime.timedelta(days=2))
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        # mitmproxy copies this SKI into each leaf's AKI, which strict verifiers check.
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .sign(key, hashes.SHA256())
    )


def _load_existing(path: Path) -> x509.Certificate:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise CaError(f"cannot read {path}: {e.strerror}") from e
    try:
        key = serialization.load_pem_private_key(raw, password=None)
        certs = x509.load_pem_x509_certificates(raw)
    except (ValueError, TypeError) as e:
        # The exception text from cryptography never contains the key, but keep it short.
        raise CaError(
            f"{path} must hold an unencrypted private key followed by a "
            f"CA certificate in PEM ({type(e).__name__})"
        ) from e
    cert = certs[0]
    if cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        raise CaError(f"{path}: the private key does not match the first certificate")
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise CaError(f"{path}: the first certificate is not a CA (BasicConstraints CA=False)")
    return cert


def _ensure_dir(path: Path) -> None:
    if not path.exists():
        path.mkdir(parents=True, mode=0o700)
        os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o022:
        logger.warning(
            "certs dir %s is writable by group/others (mode %o); anyone who can write it "
            "can replace the gate CA",
            path,
            mode,
        )


def _tighten_mode(path: Path, wanted: int) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & ~wanted:
        logger.warning(
            "%s had mode %o, looser than %o; fixing it. The CA key may have been exposed.",
            path,
            mode,
            wanted,
        )
        os.chmod(path, wanted)


def atomic_write(path: Path, data: bytes, mode: int) -> None:
    """Write via a temp file + rename so that readers never see a half-written file and the
    file never exists with a looser mode than ``mode``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)  # mkstemp creates 0600 already; say it explicitly
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
