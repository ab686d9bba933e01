"""The group-commit writer: every write of the store, and the ledger chain.

All writes go through one writer connection. Concurrent writes queue up and are
committed together in one transaction (each in its own SAVEPOINT, so one failed
write never takes its neighbours down). Chaining happens inside that transaction,
so the head hash only advances for writes that really commit.
"""

import asyncio
import contextlib
import logging
import secrets
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiosqlite

from gate_proxy.clock import utc_iso
from gate_proxy.keys import Signer
from gate_proxy.ledger import GENESIS_HASH, HASH_VERSION, checkpoint_message, seal
from gate_proxy.store.base import DuplicateKey, EventDraft, StoreError

log = logging.getLogger("gate.store")

# Sign a checkpoint after this many events, or this many seconds after the last one.
CHECKPOINT_EVERY_EVENTS = 1000
CHECKPOINT_EVERY_SECONDS = 10.0
MAX_BATCH = 512

WriteFn = Callable[[sqlite3.Connection], Any]


@dataclass
class _Write:
    fn: WriteFn | None
    events: list[EventDraft]
    future: asyncio.Future[Any]
    result: Any = None
    error: BaseException | None = None
    # fn returns (result, events): the events are only known inside the transaction.
    builds_events: bool = False


@dataclass
class _Head:
    seq: int = 0
    hash: str = GENESIS_HASH
    checkpoint_seq: int = 0
    checkpoint_at: float = field(default_factory=time.monotonic)


class GroupCommitWriter:
    """Queues writes and commits them in batches on the writer connection."""

    def __init__(self, signer: Signer) -> None:
        self._signer = signer
        self._writer: aiosqlite.Connection | None = None
        self._queue: asyncio.Queue[_Write] = asyncio.Queue()
        self._flusher: asyncio.Task[None] | None = None
        self._head = _Head()
        self._closed = False
        # (first, last) sequence numbers of batches this process committed, newest last:
        # the ledger feed skips them (this process already told its own listeners).
        self._own_ranges: deque[tuple[int, int]] = deque(maxlen=4096)

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        # aiosqlite runs each call on its connection's own thread; _execute lets one call
        # carry a whole transaction, so a batch costs one thread hop, not one per statement.
        assert self._writer is not None
        return await self._writer._execute(fn, self._writer._conn, *args)

    async def _start_writer(self) -> None:
        """Load the chain head and start committing (the writer connection is open)."""
        await self._run(self._load_head)
        self._flusher = asyncio.create_task(self._flush_loop(), name="gate-ledger-writer")

    async def _stop_writer(self) -> None:
        """Commit every queued write, stop, and sign a last checkpoint."""
        if self._flusher is not None:
            await self._queue.join()
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        if self._writer is not None:
            with contextlib.suppress(Exception):
                await self._run(self._checkpoint_sync, True)

    def _load_head(self, conn: sqlite3.Connection) -> None:
        row = conn.execute("SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1").fetchone()
        if row:
            self._head.seq, self._head.hash = row
        row = conn.execute("SELECT max(seq) FROM ledger_checkpoints").fetchone()
        self._head.checkpoint_seq = row[0] or 0

    async def write(self, fn: WriteFn | None, events: list[EventDraft]) -> Any:
        """Run ``fn`` and append ``events`` atomically; return what ``fn`` returned."""
        if self._closed:
            raise StoreError("store is closed")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Write(fn, events, future))
        return await future

    async def write_built(self, fn: WriteFn) -> Any:
        """Like write(), for a ``fn`` that returns ``(result, events)``."""
        if self._closed:
            raise StoreError("store is closed")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Write(fn, [], future, builds_events=True))
        return await future

    def written_here(self, seq: int) -> bool:
        """Whether this process committed ledger event ``seq`` (recently)."""
        for first, last in reversed(self._own_ranges):
            if last < seq:
                return False
            if first <= seq:
                return True
        return False

    async def append(self, events: list[EventDraft]) -> None:
        await self.write(None, events)

    async def checkpoint(self) -> None:
        await self._queue.join()
        await self._run(self._checkpoint_sync, True)

    async def _flush_loop(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._run(self._flush_sync, batch)
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

    def _flush_sync(self, conn: sqlite3.Connection, batch: list[_Write]) -> None:
        head_before = (self._head.seq, self._head.hash)
        conn.execute("BEGIN IMMEDIATE")
        try:
            # The head is read under the write lock, never trusted from memory: another
            # process (``--workers``) may have appended since our last batch.
            self._load_head(conn)
            first = self._head.seq + 1
            for item in batch:
                self._apply_one(conn, item)
            self._maybe_checkpoint(conn)
            conn.execute("COMMIT")
            if self._head.seq >= first:
                self._own_ranges.append((first, self._head.seq))
        except BaseException:
            self._head.seq, self._head.hash = head_before
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise

    def _apply_one(self, conn: sqlite3.Connection, item: _Write) -> None:
        seq, prev = self._head.seq, self._head.hash
        at = utc_iso()
        if item.fn is None:
            # A pure append cannot fail halfway on its own: no savepoint needed.
            self._head.seq, self._head.hash = self._append_events(conn, item.events, seq, prev, at)
            return
        conn.execute("SAVEPOINT item")
        try:
            item.result = item.fn(conn)
            events = item.events
            if item.builds_events:
                events = item.result[1]
            seq, prev = self._append_events(conn, events, seq, prev, at)
            conn.execute("RELEASE item")
        except BaseException as exc:
            conn.execute("ROLLBACK TO item")
            conn.execute("RELEASE item")
            if isinstance(exc, sqlite3.IntegrityError):
                item.error = DuplicateKey(str(exc))
            elif isinstance(exc, StoreError):
                item.error = exc
            else:
                item.error = StoreError(f"{type(exc).__name__}: {exc}")
            item.result = None
            return
        self._head.seq, self._head.hash = seq, prev

    @staticmethod
    def _append_events(
        conn: sqlite3.Connection, events: list[EventDraft], seq: int, prev: str, at: str
    ) -> tuple[int, str]:
        """Chain and insert ``events`` after (seq, prev); return the new head."""
        if not events:
            return seq, prev
        rows = []
        # One urandom call for the batch's event ids, not one per event.
        entropy = secrets.token_hex(8 * len(events))
        for index, draft in enumerate(events):
            seq += 1
            event_id = "evt_" + entropy[index * 16 : index * 16 + 16]
            body = {
                "seq": seq,
                "id": event_id,
                "type": draft.type,
                "intent_id": draft.intent_id,
                "actor": draft.actor,
                "agent_id": draft.agent_id,
                "at": at,
                "data": draft.data,
                "hash_v": HASH_VERSION,
                "prev": prev,
            }
            text, prev = seal(body)
            rows.append((seq, event_id, draft.intent_id, draft.type, at, text, prev))
        conn.executemany(
            "INSERT INTO ledger (seq, id, intent_id, type, created_at, body, hash) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        return seq, prev

    def _maybe_checkpoint(self, conn: sqlite3.Connection, force: bool = False) -> None:
        pending = self._head.seq - self._head.checkpoint_seq
        if pending <= 0:
            return
        age = time.monotonic() - self._head.checkpoint_at
        if force or pending >= CHECKPOINT_EVERY_EVENTS or age >= CHECKPOINT_EVERY_SECONDS:
            at = utc_iso()
            message = checkpoint_message(self._head.seq, self._head.hash, at, self._signer.key_id)
            conn.execute(
                "INSERT INTO ledger_checkpoints (seq, hash, created_at, key_id, signature) "
                "VALUES (?, ?, ?, ?, ?)",
                (
                    self._head.seq,
                    self._head.hash,
                    at,
                    self._signer.key_id,
                    self._signer.sign(message),
                ),
            )
            self._head.checkpoint_seq = self._head.seq
            self._head.checkpoint_at = time.monotonic()

    def _checkpoint_sync(self, conn: sqlite3.Connection, force: bool) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            self._load_head(conn)
            self._maybe_checkpoint(conn, force)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
