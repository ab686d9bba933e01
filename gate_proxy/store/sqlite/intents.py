"""Intents: the decided insert (counts read in the same transaction), transitions, reads."""

import sqlite3

from gate_proxy.core.intents import Intent, transition
from gate_proxy.store.base import (
    BuildIntent,
    Conflict,
    CountQuery,
    Counts,
    EventDraft,
    IntentChanges,
    Row,
)
from gate_proxy.store.sqlite.connection import SqliteConnection
from gate_proxy.store.sqlite.intent_rows import (
    INSERT_INTENT_SQL,
    encode_changes,
    intent_from_row,
    intent_values,
)
from gate_proxy.store.sqlite.rows import decode

_RATE_SQL = (
    "SELECT COALESCE(SUM(created_at >= ?), 0) AS hour, COUNT(*) AS day FROM intents "
    "WHERE agent_id = ? AND created_at >= ?"
)
# Spending means it was or may still be executed: blocked, rejected, expired and
# duplicate intents do not count.
_SPEND_SQL = (
    "SELECT "
    "COALESCE(SUM(CASE WHEN agent_id = ? AND created_at >= ? "
    "    THEN estimated_value_usd END), 0) AS agent_hour, "
    "COALESCE(SUM(CASE WHEN agent_id = ? THEN estimated_value_usd END), 0) AS agent_day, "
    "COALESCE(SUM(CASE WHEN created_at >= ? THEN estimated_value_usd END), 0) "
    "    AS policy_hour, "
    "COALESCE(SUM(estimated_value_usd), 0) AS policy_day "
    "FROM intents WHERE policy = ? AND created_at >= ? AND status IN "
    "('pending_approval', 'approved', 'scheduled', 'succeeded', 'failed')"
)
_DUPLICATE_SQL = (
    "SELECT * FROM intents WHERE agent_id = ? AND created_at >= ? "
    "AND destination = ? AND fingerprint = ? "
    "AND status NOT IN ('blocked', 'duplicate_blocked') "
    "ORDER BY created_at, id LIMIT 1"
)
_OPEN_CALLS_SQL = (
    "SELECT * FROM intents WHERE agent_id = ? AND destination = ? AND fingerprint = ? "
    "AND source = 'proxy' AND status IN ('approved', 'pending_approval') "
    "ORDER BY status = 'approved' DESC, created_at DESC, id LIMIT ?"
)
_METRICS_SQL = """SELECT COUNT(*) AS attempted,
    COALESCE(SUM(status = 'blocked' OR status = 'rejected'), 0) AS blocked,
    COALESCE(SUM(status = 'pending_approval'), 0) AS pending,
    COALESCE(SUM(status IN ('approved', 'scheduled', 'succeeded', 'failed')), 0)
        AS approved,
    COALESCE(SUM(status = 'succeeded'), 0) AS succeeded,
    COALESCE(SUM(status = 'failed'), 0) AS failed,
    COALESCE(SUM(status = 'duplicate_blocked'), 0) AS duplicate,
    COALESCE(SUM(status = 'expired'), 0) AS expired,
    AVG(CASE WHEN decided_by IS NOT NULL AND decided_by != 'system'
             AND decided_at IS NOT NULL
             AND status IN ('approved', 'scheduled', 'succeeded', 'failed')
        THEN (julianday(decided_at) - julianday(created_at)) * 86400000.0 END)
        AS avg_approval_latency_ms
FROM intents {where}"""


def read_counts(conn: sqlite3.Connection, query: CountQuery) -> Counts:
    """The counts for one decision, on the writer connection inside its transaction."""
    last_hour = last_day = None
    if query.rates:
        hour, day = conn.execute(
            _RATE_SQL, (query.since_hour, query.agent_id, query.since_day)
        ).fetchone()
        last_hour, last_day = int(hour), int(day)
    spent = None
    if query.budgets:
        values = conn.execute(
            _SPEND_SQL,
            (query.agent_id, query.since_hour, query.agent_id, query.since_hour, query.policy,
             query.since_day),
        ).fetchone()  # fmt: skip
        spent = (float(values[0]), float(values[1]), float(values[2]), float(values[3]))
    duplicate: Intent | None = None
    if query.dedupe_since is not None:
        cursor = conn.execute(
            _DUPLICATE_SQL,
            (query.agent_id, query.dedupe_since, query.destination, query.fingerprint),
        )
        found = cursor.fetchone()
        if found is not None:
            duplicate = intent_from_row(decode(cursor.description, found))
    return Counts(last_hour, last_day, spent, duplicate)


class IntentTables(SqliteConnection):
    async def insert_intent(self, intent: Intent, events: list[EventDraft]) -> None:
        params = intent_values(intent)

        def insert(conn: sqlite3.Connection) -> None:
            conn.execute(INSERT_INTENT_SQL, params)

        await self.write(insert, events)

    async def insert_decided_intent(
        self, query: CountQuery | None, build: BuildIntent
    ) -> tuple[Intent, list[EventDraft]]:
        def decide_and_insert(conn: sqlite3.Connection) -> tuple[Intent, list[EventDraft]]:
            # BEGIN IMMEDIATE holds SQLite's write lock for the whole batch: the counts
            # include every intent inserted before this one, in this process or another.
            counts = read_counts(conn, query) if query is not None else Counts()
            intent, events = build(counts)
            conn.execute(INSERT_INTENT_SQL, intent_values(intent))
            return intent, events

        result: tuple[Intent, list[EventDraft]] = await self.write_built(decide_and_insert)
        return result

    async def transition_intent(
        self,
        intent_id: str,
        from_statuses: tuple[str, ...],
        to_status: str,
        fields: IntentChanges,
        events: list[EventDraft],
    ) -> None:
        """Move the intent from one of ``from_statuses`` to ``to_status``; Conflict if it is
        in none of them now. IllegalTransition, before anything is queued, if the lifecycle
        does not allow one of the moves: that is a bug in the caller, not a lost race."""
        for from_status in from_statuses:
            transition(from_status, to_status)
        row = encode_changes(fields)
        assignments = ", ".join(f"{key} = ?" for key in ("status", *row))
        marks = ", ".join("?" for _ in from_statuses)
        sql = f"UPDATE intents SET {assignments} WHERE id = ? AND status IN ({marks})"
        params = (str(to_status), *row.values(), intent_id, *map(str, from_statuses))

        def update(conn: sqlite3.Connection) -> None:
            if conn.execute(sql, params).rowcount != 1:
                raise Conflict(f"intent {intent_id} is no longer in {', '.join(from_statuses)}")

        await self.write(update, events)

    async def get_intent(self, intent_id: str) -> Intent | None:
        row = await self._lookup_one("SELECT * FROM intents WHERE id = ?", (intent_id,))
        return intent_from_row(row) if row is not None else None

    async def list_intents(
        self, *, agent_id: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[Intent]:
        clauses, params = [], []
        if agent_id is not None:
            clauses.append("agent_id = ?")
            params.append(agent_id)
        if status is not None:
            clauses.append("status = ?")
            params.append(status)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        params.append(limit)
        rows = await self._fetch(
            f"SELECT * FROM intents {where} ORDER BY created_at DESC, id LIMIT ?", tuple(params)
        )
        return [intent_from_row(row) for row in rows]

    async def find_by_idempotency_key(self, agent_id: str, key: str) -> Intent | None:
        row = await self._lookup_one(
            "SELECT * FROM intents WHERE agent_id = ? AND idempotency_key = ? "
            "AND status != 'duplicate_blocked'",
            (agent_id, key),
        )
        return intent_from_row(row) if row is not None else None

    async def count_recent_intents(
        self, agent_id: str, since_hour: str, since_day: str
    ) -> tuple[int, int]:
        row = await self._fetch_one(_RATE_SQL, (since_hour, agent_id, since_day))
        assert row is not None
        return int(row["hour"]), int(row["day"])

    async def sum_recent_value(
        self, agent_id: str, policy: str, since_hour: str, since_day: str
    ) -> tuple[float, float, float, float]:
        """Value (estimated_value_usd) of a policy's spending intents: (agent last hour,
        agent last day, every agent last hour, every agent last day).

        Spending means it was or may still be executed: blocked, rejected, expired and
        duplicate intents do not count.
        """
        row = await self._fetch_one(
            _SPEND_SQL, (agent_id, since_hour, agent_id, since_hour, policy, since_day)
        )
        assert row is not None
        return (
            float(row["agent_hour"]),
            float(row["agent_day"]),
            float(row["policy_hour"]),
            float(row["policy_day"]),
        )

    async def find_recent_duplicate(
        self, agent_id: str, destination: str, fingerprint: str, since: str
    ) -> str | None:
        """The earliest intent with the same agent, destination and fingerprint since
        `since`, that was not blocked and is not itself a duplicate."""
        row = await self._fetch_one(_DUPLICATE_SQL, (agent_id, since, destination, fingerprint))
        return None if row is None else str(row["id"])

    async def find_open_calls(
        self, agent_id: str, destination: str, fingerprint: str, limit: int = 20
    ) -> list[Intent]:
        """The proxied intents of one agent for the same request (destination and
        fingerprint) that are still approved or pending: approved first, newest first.
        Exact at any number of intents (the intents_dedupe index), unlike a scan of the
        agent's newest intents."""
        rows = await self._fetch(_OPEN_CALLS_SQL, (agent_id, destination, fingerprint, limit))
        return [intent_from_row(row) for row in rows]

    async def next_pending_expiry(self) -> str | None:
        row = await self._lookup_one(
            "SELECT MIN(expires_at) AS at FROM intents "
            "WHERE status IN ('pending_approval', 'approved')"
        )
        return row["at"] if row else None

    async def due_pending(self, now: str) -> list[Intent]:
        rows = await self._fetch(
            "SELECT * FROM intents WHERE status IN ('pending_approval', 'approved') "
            "AND expires_at <= ?",
            (now,),
        )
        return [intent_from_row(row) for row in rows]

    async def intent_metrics(self, agent_id: str | None = None) -> Row:
        where, params = ("WHERE agent_id = ?", (agent_id,)) if agent_id else ("", ())
        row = await self._fetch_one(_METRICS_SQL.format(where=where), params)
        assert row is not None
        return row
