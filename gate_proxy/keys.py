"""Key material: agent API keys, the admin key and the Ed25519 signing key.

API keys carry 256 bits of randomness, so a plain SHA-256 is the right storage hash:
a slow KDF protects low-entropy passwords, and it would cost every proxied request.
"""

import base64
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

API_KEY_PREFIX = "gate_sk_"
EXECUTION_TOKEN_PREFIX = "gex_"
ADMIN_KEY_FILE = "admin.key"
SIGNING_KEY_FILE = "signing.key"


def random_id(prefix: str, nbytes: int = 8) -> str:
    return f"{prefix}{secrets.token_hex(nbytes)}"


def ordered_id(prefix: str, nbytes: int = 8) -> str:
    """A random id that sorts by creation time: the milliseconds since the epoch (11 hex
    digits, good until 2527) before the random part. A table's primary-key index then
    grows at its end instead of dirtying a random page per insert (0.79x the CPU per
    intent insert into 200,000 intents: bench/bench_ids.py, docs/benchmarks.md). The random part
    keeps its full width, so the id is no easier to guess; the time it shows is the
    intent's own created_at, which everyone who may read the intent sees anyway."""
    return f"{prefix}{time.time_ns() // 1_000_000:011x}{secrets.token_hex(nbytes)}"


def generate_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def generate_execution_token() -> str:
    return EXECUTION_TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def keys_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def write_private_file(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 from the start (no window where it is readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def tighten_mode(path: Path) -> None:
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)


def load_or_create_admin_key(data_dir: Path, env_value: str | None) -> tuple[str, bool]:
    """Return (admin key, created). GATE_ADMIN_KEY wins over the key file."""
    if env_value:
        return env_value.strip(), False
    path = data_dir / ADMIN_KEY_FILE
    if path.exists():
        tighten_mode(path)
        return path.read_text().strip(), False
    key = generate_api_key()
    write_private_file(path, (key + "\n").encode())
    return key, True


@dataclass(frozen=True)
class Signer:
    private_key: Ed25519PrivateKey
    key_id: str

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    def sign(self, message: bytes) -> str:
        return base64.b64encode(self.private_key.sign(message)).decode()

    def public_pem(self) -> str:
        return public_key_pem(self.public_key)


def public_key_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def key_id_for(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


def load_or_create_signer(data_dir: Path) -> Signer:
    path = data_dir / SIGNING_KEY_FILE
    if path.exists():
        tighten_mode(path)
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path}: not an Ed25519 private key")
    else:
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_private_file(path, pem)
    return Signer(key, key_id_for(key.public_key()))


def load_public_key(data_dir: Path) -> Ed25519PublicKey:
    """The verifying key, read from the signing key file (``ledger verify`` runs offline)."""
    pub_path = data_dir / "signing.pub"
    if pub_path.exists():
        key = serialization.load_pem_public_key(pub_path.read_bytes())
    else:
        private = serialization.load_pem_private_key(
            (data_dir / SIGNING_KEY_FILE).read_bytes(), password=None
        )
        key = private.public_key()
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("ledger key is not Ed25519")
    return key


def verify_signature(key: Ed25519PublicKey, message: bytes, signature_b64: str) -> bool:
    from cryptography.exceptions import InvalidSignature

    try:
        key.verify(base64.b64decode(signature_b64), message)
    except (InvalidSignature, ValueError):
        return False
    return True
