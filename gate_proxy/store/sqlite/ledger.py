"""Ledger reads (writes, chaining and checkpoints are the writer's: see writer.py)."""

import json

from gate_proxy.store.base import Row
from gate_proxy.store.sqlite.connection import SqliteConnection


class LedgerReads(SqliteConnection):
    async def ledger_events(
        self, *, intent_id: str | None = None, after_seq: int = 0, limit: int = 1000
    ) -> list[Row]:
        if intent_id is not None:
            rows = await self._lookup(
                "SELECT body, hash FROM ledger WHERE intent_id = ? AND seq > ? "
                "ORDER BY seq LIMIT ?",
                (intent_id, after_seq, limit),
            )
        else:
            rows = await self._fetch(
                "SELECT body, hash FROM ledger WHERE seq > ? ORDER BY seq LIMIT ?",
                (after_seq, limit),
            )
        return [{**json.loads(row["body"]), "hash": row["hash"]} for row in rows]
