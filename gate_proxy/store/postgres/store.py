"""PostgresStore: the Store (see store/base.py) on PostgreSQL, one class per table.

Each table class builds on PostgresConnection (pools, migrations, reads, LISTEN) and its
GroupCommitWriter (every ledger-carrying write, the chain, checkpoints); see writer.py
for how the chain stays single with any number of writer processes.
"""

from gate_proxy.store.postgres.agents import AgentTables
from gate_proxy.store.postgres.executions import ExecutionTables
from gate_proxy.store.postgres.intents import IntentTables
from gate_proxy.store.postgres.leases import LeaseTables
from gate_proxy.store.postgres.ledger import LedgerReads
from gate_proxy.store.postgres.sessions import SessionTables
from gate_proxy.store.postgres.votes import VoteTables
from gate_proxy.store.postgres.webhooks import WebhookTables


class PostgresStore(
    AgentTables,
    IntentTables,
    VoteTables,
    ExecutionTables,
    WebhookTables,
    LedgerReads,
    LeaseTables,
    SessionTables,
):
    """PostgreSQL backend (asyncpg): group commit, the chain owned by the database."""
