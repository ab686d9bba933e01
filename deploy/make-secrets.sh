#!/usr/bin/env bash
# Generates the key material a fleet of gates shares, once, into a directory (default
# deploy/secrets), with the gate's own code so the formats are exactly what it loads:
#   admin.key              the admin key (gate_sk_...)               -> GATE_ADMIN_KEY_FILE
#   signing.key            Ed25519 ledger signing key, PKCS#8 PEM    -> GATE_SIGNING_KEY_FILE
#   mitmproxy-ca.pem       proxy CA: private key + certificate       -> GATE_CA_FILE
#   mitmproxy-ca-cert.pem  the CA certificate alone: what agents trust (public)
#   database.env           POSTGRES_PASSWORD and GATE_DATABASE_URL for deploy/compose.yaml
# Existing files are kept: rerunning never rotates a key. Private files are 0600; run as
# root, they are given to uid/gid 10001, the gate's user in deploy/Dockerfile (set
# GATE_SECRETS_OWNER=uid:gid to change that). For Kubernetes, turn them into the Secret:
#   kubectl -n gate-system create secret generic gate-keys --from-file=DIR/admin.key \
#     --from-file=DIR/signing.key --from-file=DIR/mitmproxy-ca.pem
# Usage: deploy/make-secrets.sh [DIR]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/deploy/secrets}"
python="${GATE_PYTHON:-$root/.venv/bin/python}"
[ -x "$python" ] || python="python3"
owner="${GATE_SECRETS_OWNER:-10001:10001}"

"$python" -c 'import gate_proxy.keys, gate_proxy.proxy.ca' 2>/dev/null || {
    echo "make-secrets: $python cannot import the gate: run deploy/bootstrap.sh first," \
        "or set GATE_PYTHON to the python of an installed gate" >&2
    exit 1
}
umask 077
mkdir -p "$out"
"$python" - "$out" <<'PY'
import secrets
import shutil
import sys
import tempfile
from pathlib import Path

from gate_proxy.keys import generate_api_key, load_or_create_signer, write_private_file
from gate_proxy.proxy.ca import CA_CERT, CA_KEY_AND_CERT, ensure_ca

out = Path(sys.argv[1])
made = []


def keep_or_write(name: str, data: bytes) -> None:
    if not (out / name).exists():
        write_private_file(out / name, data)
        made.append(name)


keep_or_write("admin.key", (generate_api_key() + "\n").encode())
password = secrets.token_urlsafe(32)  # URL-safe: goes into the URL as it is
keep_or_write(
    "database.env",
    (
        f"POSTGRES_PASSWORD={password}\n"
        f"GATE_DATABASE_URL=postgresql://gate:{password}@postgres:5432/gate\n"
    ).encode(),
)
with tempfile.TemporaryDirectory() as scratch:
    if not (out / "signing.key").exists():
        load_or_create_signer(Path(scratch))  # writes signing.key, 0600
        shutil.copyfile(Path(scratch) / "signing.key", out / "signing.key")
        made.append("signing.key")
    if not (out / CA_KEY_AND_CERT).exists():
        ensure_ca(Path(scratch) / "ca")
        keep_or_write(CA_KEY_AND_CERT, (Path(scratch) / "ca" / CA_KEY_AND_CERT).read_bytes())
        (out / CA_CERT).unlink(missing_ok=True)  # a new CA: its public copy must follow
if not (out / CA_CERT).exists():
    # Always derived from the key file, so the two can never disagree.
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate((out / CA_KEY_AND_CERT).read_bytes())
    keep_or_write(CA_CERT, cert.public_bytes(serialization.Encoding.PEM))
print(f"make-secrets: wrote {', '.join(made) or 'nothing (all present)'} in {out}")
PY
# database.env stays root's: compose reads it on the host, not in the container.
chmod 0600 "$out"/admin.key "$out"/signing.key "$out"/mitmproxy-ca.pem "$out"/database.env
chmod 0644 "$out"/mitmproxy-ca-cert.pem  # public: every agent container reads it
if [ "$(id -u)" -eq 0 ]; then
    chown "$owner" "$out"/admin.key "$out"/signing.key "$out"/mitmproxy-ca.pem \
        "$out"/mitmproxy-ca-cert.pem
else
    echo "make-secrets: not root; give the files to the container's user yourself:" >&2
    echo "  sudo chown $owner $out/{admin.key,signing.key,mitmproxy-ca.pem,mitmproxy-ca-cert.pem}" >&2
fi
