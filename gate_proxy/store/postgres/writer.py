"""The group-commit writer on PostgreSQL: every write of the store, and the ledger chain.

Concurrent writes of this process queue up and are committed together in one
transaction, each in its own SAVEPOINT (one failed write never takes its neighbours
down), as in the SQLite writer. What differs is who owns the chain: several processes
(replicas, workers) write to one database, so the head is never kept in memory. Each
transaction starts by locking the one-row ``ledger_head`` table (SELECT ... FOR UPDATE),
chains its events after the head it read, and advances the head before it commits. The
lock serialises every writer of every process, so there is one unbroken chain, and a
count read inside the transaction sees every row committed before it (limits hold
across replicas). The same transaction sends NOTIFY with the new head's seq.
"""

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from gate_proxy.clock import utc_iso
from gate_proxy.keys import Signer
from gate_proxy.ledger import checkpoint_message, event_body, seal
from gate_proxy.store.base import DuplicateKey, EventDraft, StoreError

log = logging.getLogger("gate.store")

# Sign a checkpoint after this many events, or this many seconds after the last one.
CHECKPOINT_EVERY_EVENTS = 1000
CHECKPOINT_EVERY_SECONDS = 10.0
# Each write of a batch runs in a subtransaction that gets its own transaction id; past 64
# in one transaction PostgreSQL's per-backend cache of them overflows and every other
# session's snapshots get slower. So at most 64 writes share a commit.
MAX_BATCH = 64
LEDGER_CHANNEL = "gate_ledger"

WriteFn = Callable[[asyncpg.Connection], Awaitable[Any]]

_LOCK_HEAD = (
    "SELECT seq, hash, checkpoint_seq, checkpoint_at FROM ledger_head WHERE singleton FOR UPDATE"
)
# One round trip at the end of a batch: its events, a checkpoint when one is due, the
# head moved past both, and the notification (delivered by PostgreSQL at COMMIT).
_ADVANCE = f"""
WITH appended AS (
    INSERT INTO ledger (seq, id, intent_id, type, created_at, body, hash)
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[],
                         $6::text[], $7::text[])
), signed AS (
    INSERT INTO ledger_checkpoints (seq, hash, created_at, key_id, signature)
    SELECT $8::bigint, $9::text, $12::text, $13::text, $14::text WHERE $12::text IS NOT NULL
), moved AS (
    UPDATE ledger_head SET seq = $8::bigint, hash = $9::text, checkpoint_seq = $10::bigint,
        checkpoint_at = $11::float8
    WHERE singleton
)
SELECT pg_notify('{LEDGER_CHANNEL}', $8::bigint::text) WHERE cardinality($1::bigint[]) > 0
"""


@dataclass
class _Write:
    fn: WriteFn | None
    events: list[EventDraft]
    future: asyncio.Future[Any]
    result: Any = None
    error: BaseException | None = None
    # fn returns (result, events): the events are only known inside the transaction.
    builds_events: bool = False
    force_checkpoint: bool = False


@dataclass
class _Head:
    """The head as read under the lock, advanced in memory until the batch commits."""

    seq: int
    hash: str
    checkpoint_seq: int
    checkpoint_at: float
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    checkpoint: tuple[str, str, str] | None = None  # (created_at, key_id, signature)
    # The last write's savepoint is left open: releasing it travels with the next
    # write's SAVEPOINT (one round trip), and COMMIT releases the last one.
    savepoint_open: bool = False


class GroupCommitWriter:
    """Queues writes and commits them in batches on the writer connection."""

    def __init__(self, signer: Signer) -> None:
        self._signer = signer
        self._write_pool: asyncpg.Pool | None = None
        self._queue: asyncio.Queue[_Write] = asyncio.Queue()
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False
        # (first, last) sequence numbers of batches this process committed, newest last:
        # the ledger feed skips them (this process already told its own listeners).
        self._own_ranges: deque[tuple[int, int]] = deque(maxlen=4096)

    def written_here(self, seq: int) -> bool:
        """Whether this process committed ledger event ``seq`` (recently)."""
        for first, last in reversed(self._own_ranges):
            if last < seq:
                return False
            if first <= seq:
                return True
        return False

    def _ledger_grew(self, seq: int) -> None:
        """Called after a commit that appended events (wakes this process's waiters)."""

    def _start_writer(self) -> None:
        self._flusher = asyncio.create_task(self._flush_loop(), name="gate-ledger-writer")

    async def _stop_writer(self) -> None:
        """Commit every queued write, sign a last checkpoint, and stop."""
        if self._flusher is None:
            return
        with contextlib.suppress(Exception):
            await self._enqueue(_Write(None, [], self._future(), force_checkpoint=True))
        await self._queue.join()
        self._flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._flusher

    @staticmethod
    def _future() -> asyncio.Future[Any]:
        return asyncio.get_running_loop().create_future()

    async def _enqueue(self, item: _Write) -> Any:
        self._queue.put_nowait(item)
        return await item.future

    async def write(self, fn: WriteFn | None, events: list[EventDraft]) -> Any:
        """Run ``fn`` and append ``events`` atomically; return what ``fn`` returned."""
        if self._closed:
            raise StoreError("store is closed")
        return await self._enqueue(_Write(fn, events, self._future()))

    async def write_built(self, fn: WriteFn) -> Any:
        """Like write(), for a ``fn`` that returns ``(result, events)``."""
        if self._closed:
            raise StoreError("store is closed")
        return await self._enqueue(_Write(fn, [], self._future(), builds_events=True))

    async def append(self, events: list[EventDraft]) -> None:
        await self.write(None, events)

    async def checkpoint(self) -> None:
        """Sign the head now (after every write queued before this call has landed)."""
        if self._closed:
            raise StoreError("store is closed")
        await self._enqueue(_Write(None, [], self._future(), force_checkpoint=True))

    async def _flush_loop(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                grown = await self._flush(batch)
                if grown is not None:
                    self._own_ranges.append(grown)
                    self._ledger_grew(grown[1])
            except BaseException as exc:  # the whole transaction failed
                log.error("ledger write failed: %s", type(exc).__name__)
                for item in batch:
                    if item.error is None:
                        item.error = StoreError(f"ledger write failed: {type(exc).__name__}")
                if isinstance(exc, asyncio.CancelledError):
                    raise
            finally:
                for item in batch:
                    if not item.future.done():
                        if item.error is not None:
                            item.future.set_exception(item.error)
                        else:
                            item.future.set_result(item.result)
                    self._queue.task_done()

    async def _flush(self, batch: list[_Write]) -> tuple[int, int] | None:
        """One transaction for the batch; (first, last) seq of the events it appended."""
        assert self._write_pool is not None
        async with self._write_pool.acquire() as conn, conn.transaction():
            locked = await conn.fetchrow(_LOCK_HEAD)
            if locked is None:
                raise StoreError("ledger_head is missing: the schema is damaged")
            head = _Head(*locked)
            start_seq = head.seq
            for item in batch:
                await self._apply_one(conn, item, head)
            self._maybe_checkpoint(head, force=any(item.force_checkpoint for item in batch))
            if head.rows or head.checkpoint is not None:
                await conn.execute(_ADVANCE, *self._advance_params(head))
        return (start_seq + 1, head.seq) if head.seq > start_seq else None

    async def _apply_one(self, conn: asyncpg.Connection, item: _Write, head: _Head) -> None:
        at = utc_iso()
        if item.fn is None:
            # A pure append cannot fail halfway on its own: no savepoint needed.
            self._chain(head, item.events, at)
            return
        await conn.execute(
            "RELEASE SAVEPOINT item; SAVEPOINT item" if head.savepoint_open else "SAVEPOINT item"
        )
        head.savepoint_open = True
        try:
            item.result = await item.fn(conn)
        except Exception as exc:
            # Undo this write alone. If the connection itself is gone, the ROLLBACK TO
            # raises and the whole transaction fails (as does a cancel).
            await conn.execute("ROLLBACK TO SAVEPOINT item; RELEASE SAVEPOINT item")
            head.savepoint_open = False
            item.error = _store_error(exc)
            item.result = None
            return
        events = item.result[1] if item.builds_events else item.events
        self._chain(head, events, at)

    @staticmethod
    def _chain(head: _Head, events: list[EventDraft], at: str) -> None:
        """Seal ``events`` after the head and advance it (in memory, until COMMIT)."""
        if not events:
            return
        # One urandom call for these event ids, not one per event.
        entropy = secrets.token_hex(8 * len(events))
        for index, draft in enumerate(events):
            head.seq += 1
            event_id = "evt_" + entropy[index * 16 : index * 16 + 16]
            body = event_body(
                head.seq, event_id, draft.type, draft.intent_id, draft.actor, draft.agent_id,
                at, draft.data, head.hash,
            )  # fmt: skip
            text, head.hash = seal(body)
            head.rows.append((head.seq, event_id, draft.intent_id, draft.type, at, text, head.hash))

    def _maybe_checkpoint(self, head: _Head, force: bool) -> None:
        # Decided on the head read under the lock: with several writers, the last
        # checkpoint may be another process's.
        pending = head.seq - head.checkpoint_seq
        if pending <= 0:
            return
        now = time.time()  # wall time: the age is compared across processes
        age = now - head.checkpoint_at
        if force or pending >= CHECKPOINT_EVERY_EVENTS or age >= CHECKPOINT_EVERY_SECONDS:
            at = utc_iso()
            key_id = self._signer.key_id
            signature = self._signer.sign(checkpoint_message(head.seq, head.hash, at, key_id))
            head.checkpoint = (at, key_id, signature)
            head.checkpoint_seq = head.seq
            head.checkpoint_at = now

    @staticmethod
    def _advance_params(head: _Head) -> tuple[Any, ...]:
        columns: list[list[Any]] = [list(column) for column in zip(*head.rows, strict=True)]
        if not columns:
            columns = [[] for _ in range(7)]
        created_at, key_id, signature = head.checkpoint or (None, None, None)
        return (
            *columns,
            head.seq,
            head.hash,
            head.checkpoint_seq,
            head.checkpoint_at,
            created_at,
            key_id,
            signature,
        )


def _store_error(exc: BaseException) -> StoreError:
    if isinstance(exc, asyncpg.UniqueViolationError):
        return DuplicateKey(str(exc))
    if isinstance(exc, StoreError):
        return exc
    return StoreError(f"{type(exc).__name__}: {exc}")
