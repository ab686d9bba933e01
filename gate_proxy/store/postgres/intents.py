"""Intents: the decided insert (counts read in the same transaction), transitions, reads."""

import asyncpg

from gate_proxy.core.intents import INTENT_COLUMNS, Intent, transition
from gate_proxy.store.base import (
    BuildIntent,
    Conflict,
    CountQuery,
    Counts,
    EventDraft,
    IntentChanges,
    Row,
)
from gate_proxy.store.postgres.connection import PostgresConnection
from gate_proxy.store.postgres.rows import decode, insert_statement
from gate_proxy.store.sqlite.intent_rows import encode_changes, intent_from_row, intent_to_row

# Named columns, not *: an older replica keeps reading intents after a newer one's
# migration added a column (an Intent takes exactly INTENT_COLUMNS).
_INTENTS = "SELECT " + ", ".join(INTENT_COLUMNS) + " FROM intents"

# Templates with named places, so one text serves a read on its own ($1...) and a part
# of the combined counts statement (whatever numbers its parameters got there).
_RATE = (
    "SELECT COUNT(*) FILTER (WHERE created_at >= {hour}) AS hour, COUNT(*) AS day "
    "FROM intents WHERE agent_id = {agent} AND created_at >= {day}"
)
# Spending means it was or may still be executed: blocked, rejected, expired and
# duplicate intents do not count.
_SPEND = (
    "SELECT "
    "COALESCE(SUM(estimated_value_usd) FILTER (WHERE agent_id = {agent} "
    "    AND created_at >= {hour}), 0) AS agent_hour, "
    "COALESCE(SUM(estimated_value_usd) FILTER (WHERE agent_id = {agent}), 0) AS agent_day, "
    "COALESCE(SUM(estimated_value_usd) FILTER (WHERE created_at >= {hour}), 0) "
    "    AS policy_hour, "
    "COALESCE(SUM(estimated_value_usd), 0) AS policy_day "
    "FROM intents WHERE policy = {policy} AND created_at >= {day} AND status IN "
    "('pending_approval', 'approved', 'scheduled', 'succeeded', 'failed')"
)
_DUPLICATE = (
    "SELECT {columns} FROM intents WHERE agent_id = {agent} AND created_at >= {since} "
    "AND destination = {destination} AND fingerprint = {fingerprint} "
    "AND status NOT IN ('blocked', 'duplicate_blocked') "
    "ORDER BY created_at, id LIMIT 1"
)
_RATE_SQL = _RATE.format(hour="$1", agent="$2", day="$3")
_SPEND_SQL = _SPEND.format(agent="$1", hour="$2", policy="$3", day="$4")
_DUPLICATE_SQL = _DUPLICATE.format(
    columns=", ".join(INTENT_COLUMNS), agent="$1", since="$2", destination="$3", fingerprint="$4"
)
_METRICS_SQL = """SELECT COUNT(*) AS attempted,
    COUNT(*) FILTER (WHERE status = 'blocked' OR status = 'rejected') AS blocked,
    COUNT(*) FILTER (WHERE status = 'pending_approval') AS pending,
    COUNT(*) FILTER (WHERE status IN ('approved', 'scheduled', 'succeeded', 'failed'))
        AS approved,
    COUNT(*) FILTER (WHERE status = 'succeeded') AS succeeded,
    COUNT(*) FILTER (WHERE status = 'failed') AS failed,
    COUNT(*) FILTER (WHERE status = 'duplicate_blocked') AS duplicate,
    COUNT(*) FILTER (WHERE status = 'expired') AS expired,
    AVG(EXTRACT(EPOCH FROM decided_at::timestamptz - created_at::timestamptz) * 1000.0)
        FILTER (WHERE decided_by IS NOT NULL AND decided_by <> 'system'
                AND decided_at IS NOT NULL
                AND status IN ('approved', 'scheduled', 'succeeded', 'failed'))::float8
        AS avg_approval_latency_ms
FROM intents {where}"""


def counts_statement(query: CountQuery) -> tuple[str, tuple[object, ...]]:
    """One statement for every count ``query`` asks for: each round trip is paid while
    the writer holds the ledger head's lock, so the three reads travel together. The
    duplicate comes back as its id (the whole row is read only when there is one)."""
    params: list[object] = []

    def bind(value: object) -> str:
        params.append(value)
        return f"${len(params)}"

    parts = []
    if query.rates:
        rate = _RATE.format(
            agent=bind(query.agent_id), hour=bind(query.since_hour), day=bind(query.since_day)
        )
        parts.append(f"({rate}) AS rates")
    if query.budgets:
        spend = _SPEND.format(
            agent=bind(query.agent_id),
            hour=bind(query.since_hour),
            policy=bind(query.policy),
            day=bind(query.since_day),
        )
        parts.append(f"({spend}) AS spend")
    if query.dedupe_since is not None:
        duplicate = _DUPLICATE.format(
            columns="id",
            agent=bind(query.agent_id),
            since=bind(query.dedupe_since),
            destination=bind(query.destination),
            fingerprint=bind(query.fingerprint),
        )
        parts.append(f"(SELECT ({duplicate}) AS duplicate_id) AS dedupe")
    return "SELECT * FROM " + " CROSS JOIN ".join(parts), tuple(params)


async def read_counts(conn: asyncpg.Connection, query: CountQuery) -> Counts:
    """The counts for one decision, on the writer connection inside its transaction (after
    the ledger head's lock: every intent committed by any process before is counted)."""
    if not (query.rates or query.budgets or query.dedupe_since is not None):
        return Counts()
    sql, params = counts_statement(query)
    row = await conn.fetchrow(sql, *params)
    assert row is not None
    last_hour = last_day = None
    if query.rates:
        last_hour, last_day = int(row["hour"]), int(row["day"])
    spent = None
    if query.budgets:
        spent = (
            float(row["agent_hour"]),
            float(row["agent_day"]),
            float(row["policy_hour"]),
            float(row["policy_day"]),
        )
    duplicate: Intent | None = None
    if query.dedupe_since is not None and row["duplicate_id"] is not None:
        found = await conn.fetchrow(f"{_INTENTS} WHERE id = $1", row["duplicate_id"])
        assert found is not None
        duplicate = intent_from_row(decode(found))
    return Counts(last_hour, last_day, spent, duplicate)


class IntentTables(PostgresConnection):
    async def insert_intent(self, intent: Intent, events: list[EventDraft]) -> None:
        sql, params = insert_statement("intents", intent_to_row(intent))

        async def insert(conn: asyncpg.Connection) -> None:
            await conn.execute(sql, *params)

        await self.write(insert, events)

    async def insert_decided_intent(
        self, query: CountQuery | None, build: BuildIntent
    ) -> tuple[Intent, list[EventDraft]]:
        async def decide_and_insert(conn: asyncpg.Connection) -> tuple[Intent, list[EventDraft]]:
            # The batch's transaction holds the ledger head's row lock, which every writer
            # of every process takes first: nothing lands between this count and insert.
            counts = await read_counts(conn, query) if query is not None else Counts()
            intent, events = build(counts)
            sql, params = insert_statement("intents", intent_to_row(intent))
            await conn.execute(sql, *params)
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
        in none of them now (one conditional UPDATE: of two replicas racing, one wins).
        IllegalTransition, before anything is queued, if the lifecycle does not allow one
        of the moves: that is a bug in the caller, not a lost race."""
        for from_status in from_statuses:
            transition(from_status, to_status)
        row = encode_changes(fields)
        assignments = ", ".join(
            f"{key} = ${index}" for index, key in enumerate(("status", *row), start=1)
        )
        id_mark = len(row) + 2
        sql = (
            f"UPDATE intents SET {assignments} WHERE id = ${id_mark} "
            f"AND status = ANY(${id_mark + 1}::text[]) RETURNING 1"
        )
        params = (str(to_status), *row.values(), intent_id, [str(s) for s in from_statuses])

        async def update(conn: asyncpg.Connection) -> None:
            if await conn.fetchval(sql, *params) is None:
                raise Conflict(f"intent {intent_id} is no longer in {', '.join(from_statuses)}")

        await self.write(update, events)

    async def get_intent(self, intent_id: str) -> Intent | None:
        row = await self._fetch_one(f"{_INTENTS} WHERE id = $1", (intent_id,))
        return intent_from_row(row) if row is not None else None

    async def list_intents(
        self, *, agent_id: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[Intent]:
        clauses: list[str] = []
        params: list[object] = []
        if agent_id is not None:
            params.append(agent_id)
            clauses.append(f"agent_id = ${len(params)}")
        if status is not None:
            params.append(str(status))
            clauses.append(f"status = ${len(params)}")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        params.append(limit)
        rows = await self._fetch(
            f"{_INTENTS} {where} ORDER BY created_at DESC, id LIMIT ${len(params)}",
            tuple(params),
        )
        return [intent_from_row(row) for row in rows]

    async def find_by_idempotency_key(self, agent_id: str, key: str) -> Intent | None:
        row = await self._fetch_one(
            f"{_INTENTS} WHERE agent_id = $1 AND idempotency_key = $2 "
            "AND status <> 'duplicate_blocked'",
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
        agent last day, every agent last hour, every agent last day)."""
        row = await self._fetch_one(_SPEND_SQL, (agent_id, since_hour, policy, since_day))
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
        rows = await self._fetch(
            f"{_INTENTS} WHERE agent_id = $1 AND destination = $2 AND fingerprint = $3 "
            "AND source = 'proxy' AND status IN ('approved', 'pending_approval') "
            "ORDER BY status = 'approved' DESC, created_at DESC, id LIMIT $4",
            (agent_id, destination, fingerprint, limit),
        )
        return [intent_from_row(row) for row in rows]

    async def next_pending_expiry(self) -> str | None:
        value = await self._fetch_value(
            "SELECT MIN(expires_at) FROM intents WHERE status IN ('pending_approval', 'approved')"
        )
        return None if value is None else str(value)

    async def due_pending(self, now: str) -> list[Intent]:
        rows = await self._fetch(
            f"{_INTENTS} WHERE status IN ('pending_approval', 'approved') AND expires_at <= $1",
            (now,),
        )
        return [intent_from_row(row) for row in rows]

    async def intent_metrics(self, agent_id: str | None = None) -> Row:
        where, params = ("WHERE agent_id = $1", (agent_id,)) if agent_id else ("", ())
        row = await self._fetch_one(_METRICS_SQL.format(where=where), params)
        assert row is not None
        return row
