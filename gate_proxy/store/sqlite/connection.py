"""Opening and closing the database: the writer, a reader on the loop, a reader off it.

- the writer connection: every write (writer.py);
- a read-only reader used on the event loop for point reads (a row by its key or a
  few by an index: tens of microseconds, less than a thread hop);
- a read-only reader on its own thread for reads whose cost grows with the data
  (listings, aggregates), and for any read the loop's reader found locked.

Every read runs its statement to completion and closes its cursor before it returns. A
cursor left open keeps its read snapshot, and a later read on the same shared connection
would then miss writes committed since.
"""

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from gate_proxy.keys import Signer
from gate_proxy.store.base import Row
from gate_proxy.store.sqlite.rows import decode, fetch_all
from gate_proxy.store.sqlite.schema import DB_FILE, migrate
from gate_proxy.store.sqlite.wal import WalCheckpointer
from gate_proxy.store.sqlite.writer import GroupCommitWriter, is_busy

T = TypeVar("T")
BUSY_TIMEOUT_MS = 5000  # connections that wait inside SQLite: never the loop's


class ThreadedConnection:
    """A connection used only from its own single thread."""

    def __init__(self, conn: sqlite3.Connection, name: str) -> None:
        self.conn = conn
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=name)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, self.conn, *args)

    async def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            await self.run(sqlite3.Connection.close)
        self._executor.shutdown(wait=False)


class SqliteConnection(GroupCommitWriter):
    """The connections, migrations and reads every table module builds on."""

    def __init__(self, data_dir: Path, signer: Signer, *, synchronous: str = "NORMAL") -> None:
        super().__init__(signer, synchronous=synchronous)
        self.path = data_dir / DB_FILE
        self._reader: sqlite3.Connection | None = None  # on the loop
        self._threaded_reader: ThreadedConnection | None = None

    async def open(self) -> None:
        # Opening may wait for another process's migration (busy_timeout): off the loop.
        db, reader, threaded = await asyncio.to_thread(self._open_connections)
        self._reader = reader
        self._threaded_reader = ThreadedConnection(threaded, "gate-sqlite-reader")
        self._start_writer(db, WalCheckpointer(self.path, self._synchronous))

    def _open_connections(
        self,
    ) -> tuple[sqlite3.Connection, sqlite3.Connection, sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        _enter_wal(db)
        db.execute(f"PRAGMA synchronous={self._synchronous}")
        db.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints run on their thread: wal.py
        migrate(db)
        self._head.load(db)
        self.path.chmod(0o600)
        for suffix in ("-wal", "-shm"):  # created before the chmod above, with the umask's mode
            with contextlib.suppress(FileNotFoundError):
                self.path.with_name(self.path.name + suffix).chmod(0o600)
        return db, self._open_reader(0), self._open_reader(BUSY_TIMEOUT_MS)

    def _open_reader(self, busy_timeout_ms: int) -> sqlite3.Connection:
        reader = sqlite3.connect(
            f"file:{self.path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
        )
        reader.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        return reader

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._stop_writer()
        # The last connection to close checkpoints the WAL (fsyncs): off the loop.
        for conn in (self._db, self._reader):
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    await asyncio.to_thread(conn.close)
        if self._threaded_reader is not None:
            await self._threaded_reader.close()

    async def _fetch(self, sql: str, params: tuple[Any, ...] = ()) -> list[Row]:
        """Rows of a read whose cost grows with the data: on the reader's thread."""
        assert self._threaded_reader is not None
        description, values = await self._threaded_reader.run(fetch_all, sql, params)
        return [decode(description, row) for row in values]

    async def _fetch_one(self, sql: str, params: tuple[Any, ...] = ()) -> Row | None:
        rows = await self._fetch(sql, params)
        return rows[0] if rows else None

    async def _lookup(self, sql: str, params: tuple[Any, ...] = ()) -> list[Row]:
        """Rows of a point read (by a key or a selective index): on the loop."""
        assert self._reader is not None
        try:
            description, values = fetch_all(self._reader, sql, params)
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise
            return await self._fetch(sql, params)  # waits for the lock off the loop
        return [decode(description, row) for row in values]

    async def _lookup_one(self, sql: str, params: tuple[Any, ...] = ()) -> Row | None:
        rows = await self._lookup(sql, params)
        return rows[0] if rows else None


def _enter_wal(db: sqlite3.Connection) -> None:
    """``PRAGMA journal_mode=WAL``, waiting for other processes that open the same fresh
    file at the same moment (--workers): switching a new file to WAL takes an exclusive
    lock, and SQLite answers "database is locked" there without calling the busy handler.
    Off the loop (opening runs in a thread), so sleeping is fine."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    delay = 0.001
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
