"""Ledger reads, the head, and waiting for growth (writes and chaining: writer.py)."""

import asyncio
import json

from gate_proxy.store.base import Row
from gate_proxy.store.postgres.connection import PostgresConnection


class LedgerReads(PostgresConnection):
    async def ledger_events(
        self, *, intent_id: str | None = None, after_seq: int = 0, limit: int = 1000
    ) -> list[Row]:
        if intent_id is not None:
            rows = await self._fetch(
                "SELECT body, hash FROM ledger WHERE intent_id = $1 AND seq > $2 "
                "ORDER BY seq LIMIT $3",
                (intent_id, after_seq, limit),
            )
        else:
            rows = await self._fetch(
                "SELECT body, hash FROM ledger WHERE seq > $1 ORDER BY seq LIMIT $2",
                (after_seq, limit),
            )
        return [{**json.loads(row["body"]), "hash": row["hash"]} for row in rows]

    async def ledger_head_seq(self) -> int:
        """The last committed sequence number (0 for an empty ledger)."""
        return int(await self._fetch_value("SELECT seq FROM ledger_head WHERE singleton"))

    async def wait_for_ledger(self, after_seq: int, timeout_s: float) -> None:
        """Return soon after the ledger grows past ``after_seq`` (a NOTIFY from any process,
        or a commit of this one), or after ``timeout_s``. Also returns early when the
        listening connection is lost; callers re-read either way."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout_s, 0.0)
        listener = await self._listen_ready(timeout_s)
        changed = listener.changed  # taken before the read: a NOTIFY after it still wakes us
        if listener.seen_seq > after_seq or await self.ledger_head_seq() > after_seq:
            return
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                return
            changed = listener.changed
            if listener.seen_seq > after_seq or not listener.listening:
                return
