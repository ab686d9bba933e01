#!/usr/bin/env bash
# Installs the PostgreSQL server the store tests start themselves (tests/pg_server.py runs
# initdb and postgres from /usr/lib/postgresql/<version>/bin on a port and socket dir of
# their own; nothing is configured system-wide and no service is started). Idempotent:
# does nothing when a server binary is already there. Tests never skip without it: they
# fail and name this script.
set -euo pipefail

have_server() {
    compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null
}

if have_server; then
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1; then
    sudo=(sudo -n)
else
    echo "postgres.sh: no /usr/lib/postgresql/*/bin/postgres and this user cannot run apt-get" >&2
    exit 1
fi

echo "postgres.sh: installing Debian's postgresql server" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q >&2
# The "postgresql" metapackage pulls the distribution's current major version and creates
# the postgres user the tests run initdb as (initdb refuses root).
"${sudo[@]}" apt-get install -y -q --no-install-recommends postgresql >&2

if ! have_server; then
    echo "postgres.sh: apt-get finished but /usr/lib/postgresql/*/bin/postgres is missing" >&2
    exit 1
fi
# Debian's package starts a cluster on 5432; the tests do not use it.
ls -d /usr/lib/postgresql/*/bin >&2
