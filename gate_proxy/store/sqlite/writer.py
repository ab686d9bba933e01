"""The group-commit writer: every write of the store, and the ledger chain.

All writes go through one writer connection (stdlib sqlite3). Writes queued during one
turn of the event loop are committed together in one transaction (each in its own
SAVEPOINT, so one failed write never takes its neighbours down). Chaining happens inside
that transaction (chain.py), so the head hash only advances for writes that commit, and
a write's future is resolved only after COMMIT returned: nothing is forwarded before its
``execution_requested`` is committed.

Where the transaction runs depends on the durability:

- ``synchronous=NORMAL`` (the default): on the event loop itself. In WAL mode such a
  commit is a write() into the page cache, no fsync, a few hundred microseconds for a
  batch; a thread hop per batch costs more than that. The fsyncs happen in WAL
  checkpoints, which run on their own thread (wal.py).
- ``synchronous=FULL`` (``durability: full``): every commit fsyncs, which would stall the
  loop, so batches are committed on one writer thread instead; new writes queue up while
  a batch is in flight and go together in the next one.

Several processes may share the file (``--workers``). The write lock is taken with
``BEGIN IMMEDIATE`` and the chain head is re-read under it in every batch. On the loop the
connection has no busy timeout (waiting inside SQLite would block the loop): when another
process holds the lock, the attempt fails at once and is retried a little later, for up
to ``BUSY_TIMEOUT_S``, while the writes wait in the queue.
"""

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from gate_proxy.clock import utc_iso
from gate_proxy.keys import Signer
from gate_proxy.store.base import DuplicateKey, EventDraft, StoreError
from gate_proxy.store.sqlite.chain import Head, insert_events, maybe_checkpoint, seal_events
from gate_proxy.store.sqlite.wal import WalCheckpointer

log = logging.getLogger("gate.store")

MAX_BATCH = 512
BUSY_TIMEOUT_S = 5.0  # as long as a locked database may keep a write waiting
BUSY_RETRY_FIRST_S = 0.0005  # then doubling, up to
BUSY_RETRY_MAX_S = 0.008

WriteFn = Callable[[sqlite3.Connection], Any]


class _Write:
    __slots__ = ("builds_events", "checkpoint", "error", "events", "fn", "future", "result")

    def __init__(
        self,
        fn: WriteFn | None,
        events: list[EventDraft],
        future: asyncio.Future[Any],
        *,
        builds_events: bool = False,
        checkpoint: bool = False,
    ) -> None:
        self.fn = fn
        self.events = events
        self.future = future
        # fn returns (result, events): the events are only known inside the transaction.
        self.builds_events = builds_events
        self.checkpoint = checkpoint  # sign a checkpoint in this batch, whatever its age
        self.result: Any = None
        self.error: BaseException | None = None


def is_busy(exc: sqlite3.Error) -> bool:
    """SQLITE_BUSY (or SQLITE_LOCKED): another connection holds the lock we need."""
    return getattr(exc, "sqlite_errorcode", None) in (
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
    ) or "locked" in str(exc)


class GroupCommitWriter:
    """Queues writes and commits them in batches, one transaction per loop turn."""

    def __init__(self, signer: Signer, *, synchronous: str = "NORMAL") -> None:
        self._signer = signer
        self._synchronous = synchronous.upper()
        self._on_loop = self._synchronous != "FULL"
        self._db: sqlite3.Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._executor: ThreadPoolExecutor | None = None  # FULL only
        self._wal: WalCheckpointer | None = None
        self._pending: deque[_Write] = deque()
        self._flush_handle: asyncio.Handle | None = None  # a flush is scheduled
        self._in_flight = False  # a batch is on the writer thread (FULL)
        self._busy_since: float | None = None
        self._busy_retries = 0
        self.busy_timeout_s = BUSY_TIMEOUT_S
        self._head = Head()
        self._closed = False
        # (first, last) sequence numbers of batches this process committed, newest last:
        # the ledger feed skips them (this process already told its own listeners).
        self._own_ranges: deque[tuple[int, int]] = deque(maxlen=4096)

    # ---------------------------------------------------------------- lifecycle

    def _start_writer(self, db: sqlite3.Connection, checkpointer: WalCheckpointer) -> None:
        """Start committing on ``db`` (open, migrated, head loaded) from this loop."""
        self._db = db
        self._loop = asyncio.get_running_loop()
        self._wal = checkpointer
        checkpointer.start()
        if self._on_loop:
            db.execute("PRAGMA busy_timeout=0")  # never wait inside SQLite on the loop
        else:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="gate-sqlite-writer")

    async def _stop_writer(self) -> None:
        """Commit every queued write, sign a last checkpoint, stop the threads."""
        if self._db is not None and self._loop is not None:
            final = _Write(None, [], self._loop.create_future(), checkpoint=True)
            with contextlib.suppress(Exception):
                await self._submit(final)
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._wal is not None:
            await asyncio.to_thread(self._wal.stop)
        if self._executor is not None:
            await asyncio.to_thread(self._executor.shutdown, True)

    # ---------------------------------------------------------------- the interface

    async def write(self, fn: WriteFn | None, events: list[EventDraft]) -> Any:
        """Run ``fn`` and append ``events`` atomically; return what ``fn`` returned."""
        if self._closed or self._loop is None:
            raise StoreError("store is closed")
        return await self._submit(_Write(fn, events, self._loop.create_future()))

    async def write_built(self, fn: WriteFn) -> Any:
        """Like write(), for a ``fn`` that returns ``(result, events)``."""
        if self._closed or self._loop is None:
            raise StoreError("store is closed")
        return await self._submit(_Write(fn, [], self._loop.create_future(), builds_events=True))

    async def append(self, events: list[EventDraft]) -> None:
        await self.write(None, events)

    async def checkpoint(self) -> None:
        """Sign a checkpoint now, after every write queued before this call."""
        if self._closed or self._loop is None:
            raise StoreError("store is closed")
        await self._submit(_Write(None, [], self._loop.create_future(), checkpoint=True))

    def written_here(self, seq: int) -> bool:
        """Whether this process committed ledger event ``seq`` (recently)."""
        for first, last in reversed(self._own_ranges):
            if last < seq:
                return False
            if first <= seq:
                return True
        return False

    # ---------------------------------------------------------------- scheduling

    def _submit(self, item: _Write) -> asyncio.Future[Any]:
        self._pending.append(item)
        if self._flush_handle is None and not self._in_flight:
            assert self._loop is not None
            self._flush_handle = self._loop.call_soon(self._flush)
        return item.future

    def _take_batch(self) -> list[_Write]:
        pending = self._pending
        count = min(len(pending), MAX_BATCH)
        return [pending.popleft() for _ in range(count)]

    def _flush(self) -> None:
        """Commit the queued writes (called by the loop, at most one flush at a time)."""
        self._flush_handle = None
        if not self._pending or self._in_flight:
            return
        if not self._on_loop:
            self._flush_on_thread()
            return
        assert self._db is not None
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            self._lock_refused(exc)
            return
        self._busy_since = None
        batch = self._take_batch()
        try:
            committed = self._commit(batch)
        finally:
            self._finish(batch)
        self._record(committed)

    def _lock_refused(self, exc: sqlite3.Error) -> None:
        """BEGIN IMMEDIATE failed on the loop: retry soon if locked, else fail a batch."""
        assert self._loop is not None
        now = time.monotonic()
        if is_busy(exc):
            if self._busy_since is None:
                self._busy_since, self._busy_retries = now, 0
            if now - self._busy_since < self.busy_timeout_s:
                delay = min(BUSY_RETRY_MAX_S, BUSY_RETRY_FIRST_S * 2**self._busy_retries)
                self._busy_retries += 1
                self._flush_handle = self._loop.call_later(delay, self._flush)
                return
        self._busy_since = None
        log.error("ledger write failed: %s", type(exc).__name__)
        batch = self._take_batch()
        for item in batch:
            item.error = StoreError(f"ledger write failed: {type(exc).__name__}")
        self._finish(batch)
        # Writes queued behind the failed batch get their own attempt (and their own busy
        # timeout) now, instead of waiting for an unrelated later write to flush them.
        if self._pending and self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self._flush)

    def _flush_on_thread(self) -> None:
        assert self._loop is not None and self._executor is not None
        batch = self._take_batch()
        self._in_flight = True
        future = self._loop.run_in_executor(self._executor, self._commit_blocking, batch)
        future.add_done_callback(lambda done: self._thread_done(batch, done))

    def _commit_blocking(self, batch: list[_Write]) -> tuple[int, int] | None:
        """On the writer thread: wait for the lock (busy_timeout), then commit."""
        assert self._db is not None
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            log.error("ledger write failed: %s", type(exc).__name__)
            for item in batch:
                item.error = StoreError(f"ledger write failed: {type(exc).__name__}")
            return None
        return self._commit(batch)

    def _thread_done(self, batch: list[_Write], done: asyncio.Future[Any]) -> None:
        self._in_flight = False
        committed = None
        if done.cancelled() or done.exception() is not None:
            for item in batch:
                if item.error is None:
                    item.error = StoreError("ledger write failed")
        else:
            committed = done.result()
        self._finish(batch)
        self._record(committed)

    def _record(self, committed: tuple[int, int] | None) -> None:
        """After a batch: remember its range, tell the checkpointer, go on with the rest."""
        if committed is not None:
            self._own_ranges.append(committed)
        if self._wal is not None:
            self._wal.committed()
        if self._pending and self._flush_handle is None and self._loop is not None:
            self._flush_handle = self._loop.call_soon(self._flush)

    @staticmethod
    def _finish(batch: list[_Write]) -> None:
        for item in batch:
            future = item.future
            if future.done():  # the caller gave up; the write stands (or failed) anyway
                continue
            if item.error is not None:
                future.set_exception(item.error)
            else:
                future.set_result(item.result)

    # ---------------------------------------------------------------- the transaction

    def _commit(self, batch: list[_Write]) -> tuple[int, int] | None:
        """Inside BEGIN IMMEDIATE: apply every write, chain, maybe sign, COMMIT. Returns
        the (first, last) sequence numbers committed, if any. A failure of the whole
        transaction rolls back and fails every write of the batch."""
        conn, head = self._db, self._head
        assert conn is not None
        checkpoint_at = head.checkpoint_at
        try:
            # The head is read under the write lock, never trusted from memory: another
            # process (``--workers``) may have appended since our last batch.
            head.load(conn)
            first = head.seq + 1
            force = False
            for item in batch:
                if item.checkpoint:
                    force = True
                else:
                    self._apply_one(conn, item)
            maybe_checkpoint(conn, head, self._signer, force)
            conn.execute("COMMIT")
        except BaseException as exc:  # the whole transaction failed
            head.checkpoint_at = checkpoint_at
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            log.error("ledger write failed: %s", type(exc).__name__)
            for item in batch:
                if item.error is None:
                    item.error = StoreError(f"ledger write failed: {type(exc).__name__}")
            if not isinstance(exc, Exception):
                raise
            return None
        return (first, head.seq) if head.seq >= first else None

    def _apply_one(self, conn: sqlite3.Connection, item: _Write) -> None:
        head = self._head
        at = utc_iso()
        if item.fn is None:
            # A pure append: sealing (which refuses data with no canonical form) comes
            # before the insert, so it needs no savepoint to fail alone.
            try:
                rows, seq, prev = seal_events(item.events, head.seq, head.hash, at)
            except Exception as exc:
                item.error = StoreError(f"{type(exc).__name__}: {exc}")
                return
            insert_events(conn, rows)
            head.seq, head.hash = seq, prev
            return
        conn.execute("SAVEPOINT item")
        try:
            item.result = item.fn(conn)
            events = item.result[1] if item.builds_events else item.events
            rows, seq, prev = seal_events(events, head.seq, head.hash, at)
            insert_events(conn, rows)
            conn.execute("RELEASE item")
        except Exception as exc:
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
        head.seq, head.hash = seq, prev
