"""LISTEN for ledger growth on a dedicated connection (NOTIFY is sent by the writers).

A notification only shortens a wait: every waiter also re-reads the head before it
sleeps and returns at its timeout, so a notification missed while the listening
connection was down delays a wake-up, never loses one.
"""

import asyncio
import contextlib
import logging

import asyncpg

from gate_proxy.store.postgres.writer import LEDGER_CHANNEL

log = logging.getLogger("gate.store")

RECONNECT_TIMEOUT_S = 5.0


class LedgerListener:
    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn: asyncpg.Connection | None = None
        self._connecting: asyncio.Lock | None = None
        self.seen_seq = 0
        self._changed = asyncio.Event()
        self._stopped = False

    @property
    def listening(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    @property
    def changed(self) -> asyncio.Event:
        """Set at the next growth; take it BEFORE reading the head, then wait on it."""
        return self._changed

    def observe(self, seq: int) -> None:
        """The ledger reached ``seq`` (a notification, or a commit of this process)."""
        if seq <= self.seen_seq:
            return
        self.seen_seq = seq
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def start(self) -> None:
        await self.ensure_listening(timeout_s=RECONNECT_TIMEOUT_S, required=True)

    async def ensure_listening(self, timeout_s: float, *, required: bool = False) -> None:
        """(Re)connect and LISTEN if the connection is gone; on failure, log (or raise
        when ``required``) and let waiters fall back to their timeout."""
        if self._stopped or self.listening:
            return
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self.listening:
                return
            try:
                conn = await asyncpg.connect(self._dsn, timeout=max(timeout_s, 0.1))
                await conn.add_listener(LEDGER_CHANNEL, self._on_notify)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                if required:
                    raise
                log.warning("ledger listener: cannot connect; waits fall back to polling")
                return
            conn.add_termination_listener(self._on_lost)
            self._conn = conn

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        with contextlib.suppress(ValueError):
            self.observe(int(payload))

    def _on_lost(self, _conn: object) -> None:
        self._conn = None
        # Wake every waiter: they re-read the head (and reconnect) instead of trusting
        # notifications that can no longer arrive.
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def stop(self) -> None:
        self._stopped = True
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)
