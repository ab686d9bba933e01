"""Where a gate's keys come from: generated in its own directories, or mounted files.

One gate on one box generates what it lacks on first start (the admin key and the Ed25519
signing key in ``--data-dir``, the CA in ``--certs-dir``). A fleet must share one of each,
so the platform mounts them (a Kubernetes Secret, compose secrets, systemd credentials)
and names them:

- ``GATE_ADMIN_KEY_FILE``: the admin key (``GATE_ADMIN_KEY`` gives it as a value instead);
- ``GATE_SIGNING_KEY_FILE``: the ledger's Ed25519 signing key, PKCS#8 PEM;
- ``GATE_CA_FILE``: the proxy CA, private key followed by its certificate (mitmproxy's
  ``mitmproxy-ca.pem`` layout).

A named file is used as it is: never generated, never chmod-ed (mounted secrets are often
read-only), and a missing or unreadable one stops the gate with the variable's name.
With a shared database (``database_url``) nothing is generated at all: two replicas that
each made their own signing key would sign one ledger with two keys.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gate_proxy.keys import (
    ADMIN_KEY_FILE,
    SIGNING_KEY_FILE,
    Signer,
    key_id_for,
    load_or_create_admin_key,
    load_or_create_signer,
)
from gate_proxy.proxy.ca import CA_KEY_AND_CERT, atomic_write

__all__ = [
    "AdminKey",
    "KeyMaterialError",
    "admin_key",
    "atomic_write",
    "install_ca",
    "read_admin_key",
    "signer",
]

ADMIN_KEY_VAR = "GATE_ADMIN_KEY_FILE"
SIGNING_KEY_VAR = "GATE_SIGNING_KEY_FILE"
CA_VAR = "GATE_CA_FILE"
MIN_ADMIN_KEY_LENGTH = 16


class KeyMaterialError(RuntimeError):
    """A key cannot be loaded; the message names the variable or file and why."""


@dataclass(frozen=True)
class AdminKey:
    value: str
    created: bool  # generated just now: print it once


def _read_named(variable: str, environ: Mapping[str, str]) -> bytes | None:
    name = environ.get(variable)
    if not name:
        return None
    path = Path(name)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise KeyMaterialError(f"{variable}={path}: {exc.strerror or exc}") from None


def _shared(what: str, variable: str) -> KeyMaterialError:
    return KeyMaterialError(
        f"{what} missing: with a shared database (database_url) every replica must use the "
        f"same one, so the gate does not generate it; set {variable} "
        "(deploy/make-secrets.sh makes one)"
    )


def admin_key(
    data_dir: Path, environ: Mapping[str, str] = os.environ, *, shared: bool = False
) -> AdminKey:
    """GATE_ADMIN_KEY, else GATE_ADMIN_KEY_FILE, else ``<data-dir>/admin.key`` (made if
    missing, unless ``shared``)."""
    if environ.get("GATE_ADMIN_KEY"):
        return AdminKey(environ["GATE_ADMIN_KEY"].strip(), False)
    named = _read_named(ADMIN_KEY_VAR, environ)
    if named is not None:
        value = named.decode("utf-8", "replace").strip()
        if len(value) < MIN_ADMIN_KEY_LENGTH or any(ch.isspace() for ch in value):
            raise KeyMaterialError(
                f"{ADMIN_KEY_VAR}={environ[ADMIN_KEY_VAR]}: not an admin key (one line of at "
                f"least {MIN_ADMIN_KEY_LENGTH} characters)"
            )
        return AdminKey(value, False)
    if shared and not (data_dir / ADMIN_KEY_FILE).exists():
        raise _shared("admin key", ADMIN_KEY_VAR)
    value, created = load_or_create_admin_key(data_dir, None)
    return AdminKey(value, created)


def read_admin_key(data_dir: Path, environ: Mapping[str, str] = os.environ) -> str | None:
    """The admin key for the CLI, from the same places; None if there is none."""
    try:
        return admin_key(data_dir, environ, shared=True).value
    except KeyMaterialError:
        return None


def signer(
    data_dir: Path, environ: Mapping[str, str] = os.environ, *, shared: bool = False
) -> Signer:
    """GATE_SIGNING_KEY_FILE, else ``<data-dir>/signing.key`` (made if missing, unless
    ``shared``)."""
    named = _read_named(SIGNING_KEY_VAR, environ)
    if named is not None:
        try:
            key = serialization.load_pem_private_key(named, password=None)
        except (ValueError, TypeError):
            key = None
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyMaterialError(
                f"{SIGNING_KEY_VAR}={environ[SIGNING_KEY_VAR]}: not an Ed25519 private key "
                "(PKCS#8 PEM, unencrypted)"
            )
        return Signer(key, key_id_for(key.public_key()))
    if shared and not (data_dir / SIGNING_KEY_FILE).exists():
        raise _shared("ledger signing key", SIGNING_KEY_VAR)
    try:
        return load_or_create_signer(data_dir)
    except ValueError as exc:
        raise KeyMaterialError(str(exc)) from None


def install_ca(
    certs_dir: Path, environ: Mapping[str, str] = os.environ, *, shared: bool = False
) -> None:
    """Put the CA named by GATE_CA_FILE where mitmproxy reads it (``<certs-dir>/
    mitmproxy-ca.pem``, replaced atomically when it differs). Without the variable the
    certs dir keeps its own CA (made on first start, unless ``shared``)."""
    named = _read_named(CA_VAR, environ)
    target = certs_dir / CA_KEY_AND_CERT
    if named is None:
        if shared and not target.exists():
            raise _shared("proxy CA", CA_VAR)
        return
    try:
        key = serialization.load_pem_private_key(named, password=None)
        cert = x509.load_pem_x509_certificate(named)
    except (ValueError, TypeError):
        raise KeyMaterialError(
            f"{CA_VAR}={environ[CA_VAR]}: expected the CA's private key and its certificate, "
            "both PEM, in one file"
        ) from None
    if key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        raise KeyMaterialError(
            f"{CA_VAR}={environ[CA_VAR]}: the key does not match the certificate"
        )
    certs_dir.mkdir(parents=True, exist_ok=True)
    if not target.exists() or target.read_bytes() != named:
        atomic_write(target, named, 0o600)
