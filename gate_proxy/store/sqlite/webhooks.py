"""Webhook subscriptions and the record of their deliveries."""

import sqlite3

from gate_proxy.clock import utc_iso
from gate_proxy.store.base import Row
from gate_proxy.store.sqlite.connection import SqliteConnection


class WebhookTables(SqliteConnection):
    async def insert_webhook(self, webhook: Row) -> None:
        def insert(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO webhooks (id, intent_id, owner_id, url, secret, created_at) "
                "VALUES (:id, :intent_id, :owner_id, :url, :secret, :created_at)",
                webhook,
            )

        await self.write(insert, [])

    async def webhooks_for(self, intent_id: str) -> list[Row]:
        return await self._lookup("SELECT * FROM webhooks WHERE intent_id = ?", (intent_id,))

    async def has_webhooks(self) -> bool:
        return bool(await self._lookup("SELECT 1 FROM webhooks LIMIT 1"))

    async def record_delivery(self, webhook_id: str, event: str, ok: bool, detail: str) -> None:
        def insert(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO webhook_deliveries (webhook_id, event, ok, detail, at) "
                "VALUES (?, ?, ?, ?, ?)",
                (webhook_id, event, int(ok), detail[:500], utc_iso()),
            )

        await self.write(insert, [])
