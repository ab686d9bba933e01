"""SqliteStore: the Store (see store/base.py) on SQLite, assembled from one class per table.

Each table class builds on SqliteConnection (connections, migrations, reads) and its
GroupCommitWriter (every write, the ledger chain, checkpoints); see writer.py for how
concurrent writes are committed together.
"""

from gate_proxy.store.sqlite.agents import AgentTables
from gate_proxy.store.sqlite.coordination import Coordination
from gate_proxy.store.sqlite.executions import ExecutionTables
from gate_proxy.store.sqlite.intents import IntentTables
from gate_proxy.store.sqlite.ledger import LedgerReads
from gate_proxy.store.sqlite.sessions import SessionTables
from gate_proxy.store.sqlite.votes import VoteTables
from gate_proxy.store.sqlite.webhooks import WebhookTables


class SqliteStore(
    AgentTables,
    IntentTables,
    VoteTables,
    ExecutionTables,
    WebhookTables,
    LedgerReads,
    Coordination,
    SessionTables,
):
    """SQLite backend (stdlib sqlite3), WAL mode, with group commit for the ledger."""
