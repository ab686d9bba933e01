"""SQLite backend (aiosqlite), WAL mode, with group commit for the ledger.

connection.py opens the database (schema.py migrates it); writer.py commits every write
and chains the ledger; agents, intents, votes, executions, webhooks and ledger hold the
SQL of each table; store.py assembles them into SqliteStore.
"""

from gate_proxy.store.sqlite.schema import DB_FILE
from gate_proxy.store.sqlite.store import SqliteStore

__all__ = ["DB_FILE", "SqliteStore"]
