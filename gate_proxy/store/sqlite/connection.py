"""Opening and closing the database: one writer connection, one read-only reader."""

import contextlib
from pathlib import Path
from typing import Any

import aiosqlite

from gate_proxy.keys import Signer
from gate_proxy.store.base import Row
from gate_proxy.store.sqlite.rows import decode, fetch_all
from gate_proxy.store.sqlite.schema import DB_FILE, migrate
from gate_proxy.store.sqlite.writer import GroupCommitWriter


class SqliteConnection(GroupCommitWriter):
    """The connections, migrations and reads every table module builds on."""

    def __init__(self, data_dir: Path, signer: Signer, *, synchronous: str = "NORMAL") -> None:
        super().__init__(signer)
        self.path = data_dir / DB_FILE
        self._synchronous = synchronous.upper()
        self._reader: aiosqlite.Connection | None = None

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = await aiosqlite.connect(self.path, isolation_level=None)
        await self._writer.execute("PRAGMA journal_mode=WAL")
        await self._writer.execute(f"PRAGMA synchronous={self._synchronous}")
        await self._writer.execute("PRAGMA busy_timeout=5000")
        await self._run(migrate)
        self.path.chmod(0o600)
        for suffix in ("-wal", "-shm"):  # created before the chmod above, with the umask's mode
            with contextlib.suppress(FileNotFoundError):
                self.path.with_name(self.path.name + suffix).chmod(0o600)
        self._reader = await aiosqlite.connect(f"file:{self.path}?mode=ro", uri=True)
        await self._reader.execute("PRAGMA busy_timeout=5000")
        await self._start_writer()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._stop_writer()
        if self._writer is not None:
            await self._writer.close()
        if self._reader is not None:
            await self._reader.close()

    async def _fetch(self, sql: str, params: tuple[Any, ...] = ()) -> list[Row]:
        assert self._reader is not None
        # One thread hop that runs the statement to completion and closes its cursor. A
        # cursor left open between hops keeps its read snapshot, and another coroutine's
        # read on this shared connection would then miss writes committed since.
        description, values = await self._reader._execute(
            fetch_all, self._reader._conn, sql, params
        )
        return [decode(description, row) for row in values]

    async def _fetch_one(self, sql: str, params: tuple[Any, ...] = ()) -> Row | None:
        rows = await self._fetch(sql, params)
        return rows[0] if rows else None
