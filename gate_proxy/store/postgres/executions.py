"""Executions: signed execution orders and their reports, with the intent's status."""

import json
from typing import Any

import asyncpg

from gate_proxy.core.intents import Status, transition
from gate_proxy.store.base import Conflict, EventDraft, Row
from gate_proxy.store.postgres.connection import PostgresConnection
from gate_proxy.store.postgres.rows import encode, insert_statement


class ExecutionTables(PostgresConnection):
    async def insert_execution(
        self, execution: Row, intent_id: str, events: list[EventDraft]
    ) -> None:
        # approved -> scheduled. From scheduled it re-issues an order after the last one
        # expired unused: the status stays, executed_at moves (not a TRANSITIONS entry).
        sql, params = insert_statement("executions", encode(execution))

        async def insert(conn: asyncpg.Connection) -> None:
            # The writer holds the ledger head's lock: no other process issues an order
            # for this intent between this check and the insert.
            active = await conn.fetchval(
                "SELECT 1 FROM executions WHERE intent_id = $1 AND status = 'pending' "
                "AND expires_at > $2",
                intent_id,
                execution["created_at"],
            )
            if active:
                raise Conflict("an active execution already exists for this intent")
            updated = await conn.fetchval(
                "UPDATE intents SET status = 'scheduled', executed_at = $1 "
                "WHERE id = $2 AND status IN ('approved', 'scheduled') RETURNING 1",
                execution["created_at"],
                intent_id,
            )
            if updated is None:
                raise Conflict("intent is not approved")
            await conn.execute(sql, *params)

        await self.write(insert, events)

    async def get_execution(self, execution_id: str) -> Row | None:
        return await self._fetch_one("SELECT * FROM executions WHERE id = $1", (execution_id,))

    async def list_executions(self, intent_id: str) -> list[Row]:
        return await self._fetch(
            "SELECT * FROM executions WHERE intent_id = $1 ORDER BY created_at", (intent_id,)
        )

    async def complete_execution(
        self,
        execution_id: str,
        status: str,
        report: Any,
        completed_at: str,
        intent_status: str,
        events: list[EventDraft],
    ) -> None:
        transition(Status.SCHEDULED, intent_status)  # raises before anything is queued

        async def update(conn: asyncpg.Connection) -> None:
            intent_id = await conn.fetchval(
                "UPDATE executions SET status = $1, report = $2, completed_at = $3, "
                "token_used = 1 WHERE id = $4 AND status = 'pending' AND token_used = 0 "
                "RETURNING intent_id",
                status,
                json.dumps(report),
                completed_at,
                execution_id,
            )
            if intent_id is None:
                raise Conflict("execution already reported")
            await conn.execute(
                "UPDATE intents SET status = $1, completed_at = $2 WHERE id = $3 "
                "AND status = 'scheduled'",
                str(intent_status),
                completed_at,
                intent_id,
            )

        await self.write(update, events)

    async def expire_execution(self, execution_id: str) -> None:
        async def update(conn: asyncpg.Connection) -> None:
            await conn.execute(
                "UPDATE executions SET status = 'expired' WHERE id = $1 AND status = 'pending'",
                execution_id,
            )

        await self.write(update, [])
