"""Executions: signed execution orders and their reports, with the intent's status."""

import json
import sqlite3
from typing import Any

from gate_proxy.core.intents import Status, transition
from gate_proxy.store.base import Conflict, EventDraft, Row
from gate_proxy.store.sqlite.connection import SqliteConnection
from gate_proxy.store.sqlite.rows import encode, insert_statement


class ExecutionTables(SqliteConnection):
    async def insert_execution(
        self, execution: Row, intent_id: str, events: list[EventDraft]
    ) -> None:
        # approved -> scheduled. From scheduled it re-issues an order after the last one
        # expired unused: the status stays, executed_at moves (not a TRANSITIONS entry).
        sql, params = insert_statement("executions", encode(execution))

        def insert(conn: sqlite3.Connection) -> None:
            active = conn.execute(
                "SELECT 1 FROM executions WHERE intent_id = ? AND status = 'pending' "
                "AND expires_at > ?",
                (intent_id, execution["created_at"]),
            ).fetchone()
            if active:
                raise Conflict("an active execution already exists for this intent")
            updated = conn.execute(
                "UPDATE intents SET status = 'scheduled', executed_at = ? "
                "WHERE id = ? AND status IN ('approved', 'scheduled')",
                (execution["created_at"], intent_id),
            )
            if updated.rowcount != 1:
                raise Conflict("intent is not approved")
            conn.execute(sql, params)

        await self.write(insert, events)

    async def get_execution(self, execution_id: str) -> Row | None:
        return await self._lookup_one("SELECT * FROM executions WHERE id = ?", (execution_id,))

    async def list_executions(self, intent_id: str) -> list[Row]:
        return await self._lookup(
            "SELECT * FROM executions WHERE intent_id = ? ORDER BY created_at", (intent_id,)
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

        def update(conn: sqlite3.Connection) -> None:
            cursor = conn.execute(
                "UPDATE executions SET status = ?, report = ?, completed_at = ?, token_used = 1 "
                "WHERE id = ? AND status = 'pending' AND token_used = 0",
                (status, json.dumps(report), completed_at, execution_id),
            )
            if cursor.rowcount != 1:
                raise Conflict("execution already reported")
            intent_id = conn.execute(
                "SELECT intent_id FROM executions WHERE id = ?", (execution_id,)
            ).fetchone()[0]
            conn.execute(
                "UPDATE intents SET status = ?, completed_at = ? WHERE id = ? "
                "AND status = 'scheduled'",
                (intent_status, completed_at, intent_id),
            )

        await self.write(update, events)

    async def expire_execution(self, execution_id: str) -> None:
        def update(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE executions SET status = 'expired' WHERE id = ? AND status = 'pending'",
                (execution_id,),
            )

        await self.write(update, [])
