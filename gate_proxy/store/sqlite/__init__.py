"""SQLite backend (stdlib sqlite3), WAL mode, with group commit for the ledger.

connection.py opens the database (schema.py migrates it) and reads; writer.py commits
every write, one transaction per loop turn, and chain.py chains the ledger inside it;
wal.py checkpoints the WAL on its own thread; agents, intents, votes, executions,
webhooks and ledger hold the SQL of each table; store.py assembles them into SqliteStore.
"""

from gate_proxy.store.sqlite.schema import DB_FILE
from gate_proxy.store.sqlite.store import SqliteStore

__all__ = ["DB_FILE", "SqliteStore"]
