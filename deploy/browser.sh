#!/usr/bin/env bash
# Installs the browser the dashboard tests drive: Debian's `chromium` at /usr/bin/chromium.
# (Playwright's own browser download cannot be used here; the tests point Playwright at this
# binary with executable_path.) Idempotent: does nothing when chromium is already there.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1; then
    sudo=(sudo -n)
else
    echo "browser.sh: /usr/bin/chromium is missing and this user cannot run apt-get" >&2
    exit 1
fi

echo "browser.sh: installing Debian chromium" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q >&2
"${sudo[@]}" apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core >&2

if [ ! -x /usr/bin/chromium ]; then
    echo "browser.sh: apt-get finished but /usr/bin/chromium is still missing" >&2
    exit 1
fi
/usr/bin/chromium --version >&2 || true
