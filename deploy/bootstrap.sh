#!/usr/bin/env bash
# Creates ./.venv with a Python >= 3.12 and installs the gate into it.
# Safe to run repeatedly: it reinstalls only when pyproject.toml changes.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
extras="${GATE_EXTRAS:-dev}"

python_ok() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; }

find_python() {
    local candidate
    if [ -n "${GATE_PYTHON:-}" ] && python_ok "$GATE_PYTHON"; then echo "$GATE_PYTHON"; return; fi
    for candidate in python3.13 python3.12 python3; do
        if command -v "$candidate" >/dev/null 2>&1 && python_ok "$candidate"; then
            command -v "$candidate"; return
        fi
    done
    # pyenv keeps other versions out of PATH (its python3.12 shim may fail), so look directly.
    local pyenv_root="${PYENV_ROOT:-$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")}"
    for candidate in $(ls -d "$pyenv_root"/versions/3.1[2-9]* 2>/dev/null | sort -rV); do
        if python_ok "$candidate/bin/python"; then echo "$candidate/bin/python"; return; fi
    done
    for candidate in /usr/bin/python3.13 /usr/bin/python3.12 /usr/local/bin/python3.13 /usr/local/bin/python3.12; do
        if [ -x "$candidate" ] && python_ok "$candidate"; then echo "$candidate"; return; fi
    done
    return 1
}

if [ ! -x "$venv/bin/python" ] || ! python_ok "$venv/bin/python"; then
    py="$(find_python)" || { echo "bootstrap: no Python >= 3.12 found (set GATE_PYTHON)" >&2; exit 1; }
    echo "bootstrap: creating .venv with $py" >&2
    rm -rf "$venv"
    "$py" -m venv "$venv"
fi

stamp="$venv/.gate-installed"
want="$(cat "$root/pyproject.toml" | sha256sum | cut -c1-16)-$extras"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "bootstrap: installing gate-proxy[$extras]" >&2
    "$venv/bin/python" -m pip install --quiet --upgrade pip >&2
    "$venv/bin/python" -m pip install --quiet -e "$root[$extras]" >&2
    echo "$want" > "$stamp"
fi
