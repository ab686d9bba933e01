"""Approval votes (N-of-M review)."""

import sqlite3

from gate_proxy.store.base import EventDraft, Row
from gate_proxy.store.sqlite.connection import SqliteConnection


class VoteTables(SqliteConnection):
    async def add_vote(self, vote: Row, event: EventDraft) -> None:
        def insert(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO approval_votes (intent_id, reviewer_id, vote, reason, created_at) "
                "VALUES (:intent_id, :reviewer_id, :vote, :reason, :created_at)",
                vote,
            )

        await self.write(insert, [event])

    async def list_votes(self, intent_id: str) -> list[Row]:
        return await self._lookup(
            "SELECT * FROM approval_votes WHERE intent_id = ? ORDER BY created_at", (intent_id,)
        )
