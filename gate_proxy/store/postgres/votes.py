"""Approval votes (N-of-M review)."""

import asyncpg

from gate_proxy.store.base import EventDraft, Row
from gate_proxy.store.postgres.connection import PostgresConnection


class VoteTables(PostgresConnection):
    async def add_vote(self, vote: Row, event: EventDraft) -> None:
        async def insert(conn: asyncpg.Connection) -> None:
            await conn.execute(
                "INSERT INTO approval_votes (intent_id, reviewer_id, vote, reason, created_at) "
                "VALUES ($1, $2, $3, $4, $5)",
                vote["intent_id"],
                vote["reviewer_id"],
                vote["vote"],
                vote["reason"],
                vote["created_at"],
            )

        await self.write(insert, [event])

    async def list_votes(self, intent_id: str) -> list[Row]:
        return await self._fetch(
            "SELECT * FROM approval_votes WHERE intent_id = $1 ORDER BY created_at", (intent_id,)
        )
