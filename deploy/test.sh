#!/usr/bin/env bash
# Set up (first run only) and run the whole test suite: lint, then pytest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/deploy/bootstrap.sh"
cd "$root"
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
# The dashboard's browser tests need Debian's chromium. If it cannot be installed, carry on:
# those tests then fail with the reason (they never skip).
bash "$root/deploy/browser.sh" || echo "test.sh: chromium could not be installed" >&2
# The PostgreSQL store tests start their own server from Debian's binaries (no service, no
# system-wide configuration). Likewise: if it cannot be installed, those tests fail saying so.
bash "$root/deploy/postgres.sh" || echo "test.sh: postgresql could not be installed" >&2
echo "== pytest"
exec .venv/bin/python -m pytest "$@"
