"""Agents: their rows, keys (by hash) and status."""

import asyncpg

from gate_proxy.clock import utc_iso
from gate_proxy.store.base import Conflict, EventDraft, Row
from gate_proxy.store.postgres.connection import PostgresConnection
from gate_proxy.store.postgres.rows import encode, insert_statement


class AgentTables(PostgresConnection):
    async def insert_agent(self, agent: Row, event: EventDraft) -> None:
        sql, params = insert_statement("agents", encode(agent))

        async def insert(conn: asyncpg.Connection) -> None:
            await conn.execute(sql, *params)

        await self.write(insert, [event])

    async def get_agent(self, agent_id: str) -> Row | None:
        return await self._fetch_one("SELECT * FROM agents WHERE id = $1", (agent_id,))

    async def get_agent_by_name(self, name: str) -> Row | None:
        return await self._fetch_one("SELECT * FROM agents WHERE name = $1", (name,))

    async def get_agent_by_key_hash(self, key_hash: str) -> Row | None:
        return await self._fetch_one("SELECT * FROM agents WHERE key_hash = $1", (key_hash,))

    async def list_agents(self) -> list[Row]:
        return await self._fetch("SELECT * FROM agents ORDER BY created_at")

    async def set_agent_status(self, agent_id: str, status: str, event: EventDraft) -> bool:
        async def update(conn: asyncpg.Connection) -> None:
            updated = await conn.fetchval(
                "UPDATE agents SET status = $1, updated_at = $2 "
                "WHERE id = $3 AND status <> 'revoked' RETURNING 1",
                status,
                utc_iso(),
                agent_id,
            )
            if updated is None:
                raise Conflict("agent not found or already revoked")

        try:
            await self.write(update, [event])
        except Conflict:
            return False
        return True
