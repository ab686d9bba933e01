"""The storage interface, implemented on SQLite (embedded) and PostgreSQL (a fleet).

The use cases speak only in these terms. Every write that changes state carries the
ledger events that record it, and a backend must commit both atomically: an intent
never changes status without its event, and an event never exists without its change.

Intents cross this boundary as ``core.intents.Intent`` values; how a backend stores them
is its own business. Agents, votes, executions, webhooks and ledger events are still
plain rows (``Row``).
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from gate_proxy.core.decide import Counts  # the counts a decision needs (core: pure)
from gate_proxy.core.intents import Intent


class StoreError(RuntimeError):
    """The store could not do what was asked (I/O, corruption, closed)."""


class Conflict(StoreError):
    """A conditional write found the row in another state (a lost race)."""


class DuplicateKey(StoreError):
    """A uniqueness constraint refused the write (for example an idempotency key)."""


@dataclass(frozen=True, slots=True)
class EventDraft:
    """A ledger event before the store gives it a sequence number and a hash."""

    type: str
    intent_id: str | None
    actor: str
    agent_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


Row = dict[str, Any]
# The other columns a transition sets (column name -> value), e.g. decided_at.
IntentChanges = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class CountQuery:
    """The counts a decision needs, read in the same transaction that records it."""

    agent_id: str
    policy: str
    destination: str
    fingerprint: str
    since_hour: str
    since_day: str
    rates: bool = False  # intents by this agent in the last hour and day
    budgets: bool = False  # value spent under this policy (agent and all agents)
    dedupe_since: str | None = None  # same agent+destination+fingerprint since then


# Builds the intent and its events from counts read inside the write transaction.
# Pure and quick: it runs while the store holds its write lock.
BuildIntent = Callable[[Counts], tuple[Intent, list[EventDraft]]]


class Store(Protocol):
    async def open(self) -> None: ...
    async def close(self) -> None: ...

    # Agents
    async def insert_agent(self, agent: Row, event: EventDraft) -> None: ...
    async def get_agent(self, agent_id: str) -> Row | None: ...
    async def get_agent_by_name(self, name: str) -> Row | None: ...
    async def get_agent_by_key_hash(self, key_hash: str) -> Row | None: ...
    async def list_agents(self) -> list[Row]: ...
    async def set_agent_status(self, agent_id: str, status: str, event: EventDraft) -> bool: ...

    # Intents
    async def insert_intent(self, intent: Intent, events: list[EventDraft]) -> None: ...
    async def insert_decided_intent(
        self, query: CountQuery | None, build: BuildIntent
    ) -> tuple[Intent, list[EventDraft]]:
        """Read the counts, build the intent from them and insert it, atomically: no other
        write (of this or any process) lands between the count and the insert, so N
        concurrent requests can never exceed a limit."""
        ...

    async def transition_intent(
        self,
        intent_id: str,
        from_statuses: tuple[str, ...],
        to_status: str,
        fields: IntentChanges,
        events: list[EventDraft],
    ) -> None: ...
    async def get_intent(self, intent_id: str) -> Intent | None: ...
    async def list_intents(
        self, *, agent_id: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[Intent]: ...
    async def find_by_idempotency_key(self, agent_id: str, key: str) -> Intent | None: ...
    async def count_recent_intents(
        self, agent_id: str, since_hour: str, since_day: str
    ) -> tuple[int, int]: ...
    async def sum_recent_value(
        self, agent_id: str, policy: str, since_hour: str, since_day: str
    ) -> tuple[float, float, float, float]: ...
    async def find_recent_duplicate(
        self, agent_id: str, destination: str, fingerprint: str, since: str
    ) -> str | None: ...
    async def find_open_calls(
        self, agent_id: str, destination: str, fingerprint: str, limit: int = 20
    ) -> list[Intent]: ...
    async def next_pending_expiry(self) -> str | None: ...
    async def due_pending(self, now: str) -> list[Intent]: ...
    async def intent_metrics(self, agent_id: str | None = None) -> Row: ...

    # Approval votes (N-of-M)
    async def add_vote(self, vote: Row, event: EventDraft) -> None: ...
    async def list_votes(self, intent_id: str) -> list[Row]: ...

    # Executions
    async def insert_execution(
        self, execution: Row, intent_id: str, events: list[EventDraft]
    ) -> None: ...
    async def get_execution(self, execution_id: str) -> Row | None: ...
    async def list_executions(self, intent_id: str) -> list[Row]: ...
    async def complete_execution(
        self,
        execution_id: str,
        status: str,
        report: Any,
        completed_at: str,
        intent_status: str,
        events: list[EventDraft],
    ) -> None: ...
    async def expire_execution(self, execution_id: str) -> None: ...

    # Webhooks
    async def insert_webhook(self, webhook: Row) -> None: ...
    async def webhooks_for(self, intent_id: str) -> list[Row]: ...
    async def has_webhooks(self) -> bool: ...  # any at all (one cheap read per loop tick)
    async def record_delivery(self, webhook_id: str, event: str, ok: bool, detail: str) -> None: ...

    # Ledger
    async def append(self, events: list[EventDraft]) -> None: ...
    async def ledger_events(
        self, *, intent_id: str | None = None, after_seq: int = 0, limit: int = 1000
    ) -> list[Row]: ...
    async def checkpoint(self) -> None: ...
    def written_here(self, seq: int) -> bool:
        """Whether this process (this store object) committed ledger event ``seq``; the
        ledger feed passes on only the others' events. Recent events suffice."""
        ...

    async def ledger_head_seq(self) -> int:
        """The last committed sequence number (0 for an empty ledger)."""
        ...

    async def wait_for_ledger(self, after_seq: int, timeout_s: float) -> None:
        """Return soon after the ledger grows past ``after_seq`` (in any process), or after
        ``timeout_s``; callers re-read either way. SQLite polls; PostgreSQL listens
        (LISTEN/NOTIFY sent by the writing transaction)."""
        ...

    # Leases: one holder at a time across every process sharing this store (the expiry
    # sweeper; a process's liveness, ``instance:<id>``). Times are the gate's clock.
    async def try_lease(self, name: str, holder: str, now: float, ttl_s: float) -> bool:
        """Take ``name`` (free, expired, or already ours) until ``now + ttl_s``; False if
        another holder's lease is live. One conditional write: two callers never both
        get True for overlapping terms."""
        ...

    async def release_lease(self, name: str, holder: str) -> None: ...
    async def live_leases(self, prefix: str, now: float) -> dict[str, str]:
        """Unexpired leases whose name starts with ``prefix``: name -> holder."""
        ...

    # Dashboard sessions (rows: id_hash, key_hash, principal_id, csrf_token, created,
    # last_seen; times are epoch seconds). The id is stored only as its SHA-256.
    async def insert_session(self, session: Row) -> None: ...
    async def get_session(self, id_hash: str) -> Row | None: ...
    async def touch_session(self, id_hash: str, last_seen: float) -> None: ...
    async def delete_session(self, id_hash: str) -> None: ...
    async def delete_sessions_of_key(self, key_hash: str) -> None: ...
    async def prune_sessions(self, created_before: float, seen_before: float) -> None: ...
