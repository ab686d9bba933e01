"""Webhook subscriptions and the record of their deliveries."""

import asyncpg

from gate_proxy.clock import utc_iso
from gate_proxy.store.base import Row
from gate_proxy.store.postgres.connection import PostgresConnection


class WebhookTables(PostgresConnection):
    async def insert_webhook(self, webhook: Row) -> None:
        async def insert(conn: asyncpg.Connection) -> None:
            await conn.execute(
                "INSERT INTO webhooks (id, intent_id, owner_id, url, secret, created_at) "
                "VALUES ($1, $2, $3, $4, $5, $6)",
                webhook["id"],
                webhook["intent_id"],
                webhook["owner_id"],
                webhook["url"],
                webhook["secret"],
                webhook["created_at"],
            )

        await self.write(insert, [])

    async def webhooks_for(self, intent_id: str) -> list[Row]:
        return await self._fetch("SELECT * FROM webhooks WHERE intent_id = $1", (intent_id,))

    async def has_webhooks(self) -> bool:
        return bool(await self._fetch("SELECT 1 FROM webhooks LIMIT 1", ()))

    async def record_delivery(self, webhook_id: str, event: str, ok: bool, detail: str) -> None:
        async def insert(conn: asyncpg.Connection) -> None:
            await conn.execute(
                "INSERT INTO webhook_deliveries (webhook_id, event, ok, detail, at) "
                "VALUES ($1, $2, $3, $4, $5)",
                webhook_id,
                event,
                int(ok),
                detail[:500],
                utc_iso(),
            )

        await self.write(insert, [])
