"""Applying the PostgreSQL migrations, safely when several replicas start at once."""

import logging

import asyncpg

from gate_proxy.clock import utc_iso
from gate_proxy.store.base import StoreError
from gate_proxy.store.postgres.migrations import MIGRATIONS

# pg_advisory_xact_lock key: any constant that other applications sharing the database
# are unlikely to use ("gate" as ASCII, as an int).
MIGRATION_LOCK = 0x67617465

log = logging.getLogger("gate.store")

LATEST_VERSION = max(version for version, _ in MIGRATIONS)


async def schema_version(conn: asyncpg.Connection) -> int:
    """The highest applied version, 0 for an empty database."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return 0
    return int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_migrations"))


async def migrate(conn: asyncpg.Connection) -> list[int]:
    """Apply every migration not yet applied; return the versions applied now.

    Each version runs in its own transaction under a transaction-scoped advisory lock, and
    re-reads what is applied after taking it: two replicas starting together apply each
    step once, the second waits and then finds nothing to do. An up-to-date database is
    only read (a role without CREATE can run the gate once an owner migrated it).
    """
    await _check_encoding(conn)
    current = await schema_version(conn)
    if current > LATEST_VERSION:
        # Migrations only add (see migrations.py), so an older gate still works on a newer
        # schema: a rolling update (or a rollback) keeps its replicas running.
        log.warning(
            "database schema version %d is newer than this gate's %d", current, LATEST_VERSION
        )
    applied_now: list[int] = []
    for version, script in MIGRATIONS:
        if version <= current:
            continue
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                "version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            done = await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)", version
            )
            if done:  # another replica applied it while we waited for the lock
                continue
            await conn.execute(script)  # simple protocol: several statements, $$ bodies
            await conn.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                version,
                utc_iso(),
            )
            applied_now.append(version)
    return applied_now


async def _check_encoding(conn: asyncpg.Connection) -> None:
    # Event bodies are hashed as UTF-8 bytes: a database in another encoding could not
    # hand back the exact text that was hashed.
    encoding = await conn.fetchval("SHOW server_encoding")
    if str(encoding).upper() not in {"UTF8", "UTF-8"}:
        raise StoreError(f"the database encoding is {encoding}; the gate needs UTF8")


async def apply_migrations(dsn: str) -> list[int]:
    """Migrate the database at ``dsn`` (e.g. with an owner role, before the gate runs as a
    role that may not create tables); return the versions applied."""
    conn = await asyncpg.connect(dsn)
    try:
        return await migrate(conn)
    finally:
        await conn.close()


# What the role a gate runs as needs once an owner role has migrated the database. It
# owns nothing, so it cannot disable the append-only triggers (ALTER TABLE is the
# owner's), and must not be a superuser (session_replication_role would skip them).
# {role} is an identifier the operator chooses; docs/postgres.md shows this text.
RUNTIME_GRANTS = """
GRANT USAGE ON SCHEMA {schema} TO {role};
GRANT SELECT ON schema_migrations TO {role};
GRANT SELECT, INSERT ON ledger, ledger_checkpoints, approval_votes, webhooks,
    webhook_deliveries TO {role};
GRANT SELECT, UPDATE ON ledger_head TO {role};
GRANT SELECT, INSERT, UPDATE ON agents, intents, executions TO {role};
GRANT SELECT, INSERT, UPDATE, DELETE ON leases, dashboard_sessions TO {role};
"""


async def grant_runtime_role(conn: asyncpg.Connection, role: str, schema: str = "public") -> None:
    """Give ``role`` exactly RUNTIME_GRANTS (run as the owner, after migrating)."""
    await conn.execute(RUNTIME_GRANTS.format(role=_identifier(role), schema=_identifier(schema)))


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
