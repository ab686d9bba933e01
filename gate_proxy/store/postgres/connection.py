"""Connections: one writer (group commit), a pool for reads, one LISTEN connection.

asyncpg speaks PostgreSQL's binary protocol and prepares and caches every statement per
connection, so a hot read (an agent by key hash, an intent by id) costs one round trip
with no re-parsing; it is asyncio-native, which fits the gate's single event loop.
"""

import contextlib
from typing import Any

import asyncpg

from gate_proxy.keys import Signer
from gate_proxy.store.base import DuplicateKey, Row, StoreError
from gate_proxy.store.postgres.notify import RECONNECT_TIMEOUT_S, LedgerListener
from gate_proxy.store.postgres.rows import decode
from gate_proxy.store.postgres.schema import migrate
from gate_proxy.store.postgres.writer import GroupCommitWriter

# Errors of the database or of the connection to it; reads turn them into StoreError.
DATABASE_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)

# A writer that stops mid-transaction (a frozen process) holds the ledger head's lock;
# the server ends such a session after this long, so the fleet's writes resume. A writer
# waiting longer than LOCK_TIMEOUT for the head fails its batch (the requests are refused)
# instead of hanging.
IDLE_IN_TRANSACTION_TIMEOUT = "30s"
LOCK_TIMEOUT = "15s"
CONNECT_TIMEOUT_S = 10.0


async def _writer_session(conn: asyncpg.Connection) -> None:
    await conn.execute(
        f"SET idle_in_transaction_session_timeout = '{IDLE_IN_TRANSACTION_TIMEOUT}'; "
        f"SET lock_timeout = '{LOCK_TIMEOUT}'"
    )


class PostgresConnection(GroupCommitWriter):
    """The connections, migrations and reads every table module builds on."""

    def __init__(self, dsn: str, signer: Signer, *, read_pool_size: int = 8) -> None:
        super().__init__(signer)
        self.dsn = dsn
        self._read_pool_size = read_pool_size
        self._read_pool: asyncpg.Pool | None = None
        self._listener = LedgerListener(dsn)

    async def open(self) -> None:
        try:
            self._write_pool = await asyncpg.create_pool(
                self.dsn, min_size=1, max_size=1, init=_writer_session, timeout=CONNECT_TIMEOUT_S
            )
            async with self._write_pool.acquire() as conn:
                await migrate(conn)
            self._read_pool = await asyncpg.create_pool(
                self.dsn, min_size=1, max_size=self._read_pool_size, timeout=CONNECT_TIMEOUT_S
            )
            await self._listener.start()
        except DATABASE_ERRORS as exc:
            await self._close_connections()
            message = f"cannot open the PostgreSQL store: {type(exc).__name__}: {exc}"
            raise StoreError(message) from exc
        except BaseException:
            await self._close_connections()
            raise
        self._start_writer()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._stop_writer()
        await self._close_connections()

    async def _close_connections(self) -> None:
        await self._listener.stop()
        for pool in (self._read_pool, self._write_pool):
            if pool is not None:
                with contextlib.suppress(Exception):
                    await pool.close()

    def _ledger_grew(self, seq: int) -> None:
        self._listener.observe(seq)

    async def _fetch(self, sql: str, params: tuple[Any, ...] = ()) -> list[Row]:
        records = await self._on_pool("fetch", sql, params)
        return [decode(record) for record in records]

    async def _fetch_one(self, sql: str, params: tuple[Any, ...] = ()) -> Row | None:
        rows = await self._fetch(sql, params)
        return rows[0] if rows else None

    async def _fetch_value(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return await self._on_pool("fetchval", sql, params)

    async def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> str:
        """One autocommitted statement (leases, sessions: no ledger events)."""
        status: str = await self._on_pool("execute", sql, params)
        return status

    async def _on_pool(self, method: str, sql: str, params: tuple[Any, ...]) -> Any:
        if self._read_pool is None or self._closed:
            raise StoreError("store is closed")
        try:
            return await getattr(self._read_pool, method)(sql, *params)
        except asyncpg.UniqueViolationError as exc:
            raise DuplicateKey(str(exc)) from exc
        except DATABASE_ERRORS as exc:
            raise StoreError(f"database error: {type(exc).__name__}: {exc}") from exc

    async def _listen_ready(self, timeout_s: float) -> LedgerListener:
        await self._listener.ensure_listening(min(timeout_s, RECONNECT_TIMEOUT_S))
        return self._listener
