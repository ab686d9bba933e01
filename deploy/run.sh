#!/usr/bin/env bash
# Set up (first run only) and start the gate with embedded defaults:
# SQLite in ./data, the example policies in ./policies, a CA generated into ./certs.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GATE_EXTRAS="${GATE_EXTRAS:-dev}" bash "$root/deploy/bootstrap.sh"
cd "$root"
exec "$root/.venv/bin/gate-proxy" serve "$@"
