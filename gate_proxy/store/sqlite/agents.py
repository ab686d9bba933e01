"""Agents: their rows, keys (by hash) and status."""

import sqlite3

from gate_proxy.clock import utc_iso
from gate_proxy.store.base import Conflict, EventDraft, Row
from gate_proxy.store.sqlite.connection import SqliteConnection
from gate_proxy.store.sqlite.rows import encode, insert_statement


class AgentTables(SqliteConnection):
    async def insert_agent(self, agent: Row, event: EventDraft) -> None:
        sql, params = insert_statement("agents", encode(agent))

        def insert(conn: sqlite3.Connection) -> None:
            conn.execute(sql, params)

        await self.write(insert, [event])

    async def get_agent(self, agent_id: str) -> Row | None:
        return await self._lookup_one("SELECT * FROM agents WHERE id = ?", (agent_id,))

    async def get_agent_by_name(self, name: str) -> Row | None:
        return await self._lookup_one("SELECT * FROM agents WHERE name = ?", (name,))

    async def get_agent_by_key_hash(self, key_hash: str) -> Row | None:
        return await self._lookup_one("SELECT * FROM agents WHERE key_hash = ?", (key_hash,))

    async def list_agents(self) -> list[Row]:
        return await self._fetch("SELECT * FROM agents ORDER BY created_at")

    async def set_agent_status(self, agent_id: str, status: str, event: EventDraft) -> bool:
        def update(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "UPDATE agents SET status = ?, updated_at = ? WHERE id = ? AND status != 'revoked'",
                (status, utc_iso(), agent_id),
            )
            if cursor.rowcount != 1:
                raise Conflict("agent not found or already revoked")
            return cursor.rowcount

        try:
            await self.write(update, [event])
        except Conflict:
            return False
        return True
