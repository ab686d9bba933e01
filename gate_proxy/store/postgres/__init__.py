"""PostgreSQL backend (asyncpg) for a fleet of gate processes sharing one database.

connection.py opens the pools (schema.py migrates, migrations.py holds the schema);
writer.py commits every ledger-carrying write and chains the ledger under a row lock on
``ledger_head``; notify.py listens for growth; agents, intents, votes, executions,
webhooks, ledger, leases and sessions hold the SQL of each table; store.py assembles
them into PostgresStore; verify.py checks and exports a ledger. docs/postgres.md has the
operator's view.
"""

from gate_proxy.store.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
