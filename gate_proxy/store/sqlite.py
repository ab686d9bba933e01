"""SQLite backend (aiosqlite), WAL mode, with group commit for the ledger.

All writes go through one writer connection. Concurrent writes queue up and are
committed together in one transaction (each in its own SAVEPOINT, so one failed
write never takes its neighbours down). Chaining happens inside that transaction,
so the head hash only advances for writes that really commit.
"""

import asyncio
import contextlib
import json
import logging
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiosqlite

from gate_proxy.clock import utc_iso
from gate_proxy.keys import Signer
from gate_proxy.ledger import GENESIS_HASH, checkpoint_message, seal
from gate_proxy.store.base import (
    BuildIntent,
    Conflict,
    CountQuery,
    Counts,
    DuplicateKey,
    EventDraft,
    Row,
    StoreError,
)
from gate_proxy.store.migrations import MIGRATIONS

log = logging.getLogger("gate.store")

DB_FILE = "gate.db"
JSON_COLUMNS = {
    "allowed_policies",
    "allowed_destinations",
    "metadata",
    "sensitivity_tags",
    "report",
}
# Sign a checkpoint after this many events, or this many seconds after the last one.
CHECKPOINT_EVERY_EVENTS = 1000
CHECKPOINT_EVERY_SECONDS = 10.0
MAX_BATCH = 512

WriteFn = Callable[[sqlite3.Connection], Any]


@dataclass
class _Write:
    fn: WriteFn | None
    events: list[EventDraft]
    future: asyncio.Future[Any]
    result: Any = None
    error: BaseException | None = None
    # fn returns (result, events): the events are only known inside the transaction.
    builds_events: bool = False


@dataclass
class _Head:
    seq: int = 0
    hash: str = GENESIS_HASH
    checkpoint_seq: int = 0
    checkpoint_at: float = field(default_factory=time.monotonic)


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


def _read_counts(conn: sqlite3.Connection, query: CountQuery) -> Counts:
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
    duplicate = None
    if query.dedupe_since is not None:
        cursor = conn.execute(
            _DUPLICATE_SQL,
            (query.agent_id, query.dedupe_since, query.destination, query.fingerprint),
        )
        found = cursor.fetchone()
        duplicate = _decode(cursor.description, found) if found is not None else None
    return Counts(last_hour, last_day, spent, duplicate)


def _encode(row: Row) -> Row:
    return {
        key: json.dumps(value) if key in JSON_COLUMNS and value is not None else value
        for key, value in row.items()
    }


def _decode(cursor_description: Any, values: tuple[Any, ...]) -> Row:
    row = {column[0]: value for column, value in zip(cursor_description, values, strict=True)}
    for key in JSON_COLUMNS & row.keys():
        if row[key] is not None:
            row[key] = json.loads(row[key])
    return row


class SqliteStore:
    def __init__(self, data_dir: Path, signer: Signer, *, synchronous: str = "NORMAL") -> None:
        self.path = data_dir / DB_FILE
        self._signer = signer
        self._synchronous = synchronous.upper()
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._queue: asyncio.Queue[_Write] = asyncio.Queue()
        self._flusher: asyncio.Task[None] | None = None
        self._head = _Head()
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = await aiosqlite.connect(self.path, isolation_level=None)
        await self._writer.execute("PRAGMA journal_mode=WAL")
        await self._writer.execute(f"PRAGMA synchronous={self._synchronous}")
        await self._writer.execute("PRAGMA busy_timeout=5000")
        await self._run(self._migrate)
        self.path.chmod(0o600)
        for suffix in ("-wal", "-shm"):  # created before the chmod above, with the umask's mode
            with contextlib.suppress(FileNotFoundError):
                self.path.with_name(self.path.name + suffix).chmod(0o600)
        self._reader = await aiosqlite.connect(f"file:{self.path}?mode=ro", uri=True)
        await self._reader.execute("PRAGMA busy_timeout=5000")
        await self._run(self._load_head)
        self._flusher = asyncio.create_task(self._flush_loop(), name="gate-ledger-writer")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._flusher is not None:
            await self._queue.join()
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        if self._writer is not None:
            with contextlib.suppress(Exception):
                await self._run(self._checkpoint_sync, True)
            await self._writer.close()
        if self._reader is not None:
            await self._reader.close()

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        # aiosqlite runs each call on its connection's own thread; _execute lets one call
        # carry a whole transaction, so a batch costs one thread hop, not one per statement.
        assert self._writer is not None
        return await self._writer._execute(fn, self._writer._conn, *args)

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
            "applied_at TEXT NOT NULL)"
        )
        applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for version, script in MIGRATIONS:
            if version in applied:
                continue
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _split_sql(script):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                    (version, utc_iso()),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def _load_head(self, conn: sqlite3.Connection) -> None:
        row = conn.execute("SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1").fetchone()
        if row:
            self._head.seq, self._head.hash = row
        row = conn.execute("SELECT max(seq) FROM ledger_checkpoints").fetchone()
        self._head.checkpoint_seq = row[0] or 0

    # -- group-commit writer -----------------------------------------------------------------

    async def write(self, fn: WriteFn | None, events: list[EventDraft]) -> Any:
        """Run ``fn`` and append ``events`` atomically; return what ``fn`` returned."""
        if self._closed:
            raise StoreError("store is closed")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Write(fn, events, future))
        return await future

    async def write_built(self, fn: WriteFn) -> Any:
        """Like write(), for a ``fn`` that returns ``(result, events)``."""
        if self._closed:
            raise StoreError("store is closed")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Write(fn, [], future, builds_events=True))
        return await future

    async def _flush_loop(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._run(self._flush_sync, batch)
            except BaseException as exc:  # the whole transaction failed
                log.error("ledger write failed: %s", type(exc).__name__)
                for item in batch:
                    if item.error is None:
                        item.error = StoreError(f"ledger write failed: {type(exc).__name__}")
                if isinstance(exc, asyncio.CancelledError):
                    raise
            finally:
                for item in batch:
                    if not item.future.done():
                        if item.error is not None:
                            item.future.set_exception(item.error)
                        else:
                            item.future.set_result(item.result)
                    self._queue.task_done()

    def _flush_sync(self, conn: sqlite3.Connection, batch: list[_Write]) -> None:
        head_before = (self._head.seq, self._head.hash)
        conn.execute("BEGIN IMMEDIATE")
        try:
            for item in batch:
                self._apply_one(conn, item)
            self._maybe_checkpoint(conn)
            conn.execute("COMMIT")
        except BaseException:
            self._head.seq, self._head.hash = head_before
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise

    def _apply_one(self, conn: sqlite3.Connection, item: _Write) -> None:
        seq, prev = self._head.seq, self._head.hash
        at = utc_iso()
        if item.fn is None:
            # A pure append cannot fail halfway on its own: no savepoint needed.
            self._head.seq, self._head.hash = self._append_events(conn, item.events, seq, prev, at)
            return
        conn.execute("SAVEPOINT item")
        try:
            item.result = item.fn(conn)
            events = item.events
            if item.builds_events:
                events = item.result[1]
            seq, prev = self._append_events(conn, events, seq, prev, at)
            conn.execute("RELEASE item")
        except BaseException as exc:
            conn.execute("ROLLBACK TO item")
            conn.execute("RELEASE item")
            if isinstance(exc, sqlite3.IntegrityError):
                item.error = DuplicateKey(str(exc))
            elif isinstance(exc, StoreError):
                item.error = exc
            else:
                item.error = StoreError(f"{type(exc).__name__}: {exc}")
            item.result = None
            return
        self._head.seq, self._head.hash = seq, prev

    @staticmethod
    def _append_events(
        conn: sqlite3.Connection, events: list[EventDraft], seq: int, prev: str, at: str
    ) -> tuple[int, str]:
        """Chain and insert ``events`` after (seq, prev); return the new head."""
        if not events:
            return seq, prev
        rows = []
        # One urandom call for the batch's event ids, not one per event.
        entropy = secrets.token_hex(8 * len(events))
        for index, draft in enumerate(events):
            seq += 1
            event_id = "evt_" + entropy[index * 16 : index * 16 + 16]
            body = {
                "seq": seq,
                "id": event_id,
                "type": draft.type,
                "intent_id": draft.intent_id,
                "actor": draft.actor,
                "agent_id": draft.agent_id,
                "at": at,
                "data": draft.data,
                "prev": prev,
            }
            text, prev = seal(body)
            rows.append((seq, event_id, draft.intent_id, draft.type, at, text, prev))
        conn.executemany(
            "INSERT INTO ledger (seq, id, intent_id, type, created_at, body, hash) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        return seq, prev

    def _maybe_checkpoint(self, conn: sqlite3.Connection, force: bool = False) -> None:
        pending = self._head.seq - self._head.checkpoint_seq
        if pending <= 0:
            return
        age = time.monotonic() - self._head.checkpoint_at
        if force or pending >= CHECKPOINT_EVERY_EVENTS or age >= CHECKPOINT_EVERY_SECONDS:
            at = utc_iso()
            message = checkpoint_message(self._head.seq, self._head.hash, at, self._signer.key_id)
            conn.execute(
                "INSERT INTO ledger_checkpoints (seq, hash, created_at, key_id, signature) "
                "VALUES (?, ?, ?, ?, ?)",
                (
                    self._head.seq,
                    self._head.hash,
                    at,
                    self._signer.key_id,
                    self._signer.sign(message),
                ),
            )
            self._head.checkpoint_seq = self._head.seq
            self._head.checkpoint_at = time.monotonic()

    def _checkpoint_sync(self, conn: sqlite3.Connection, force: bool) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            self._maybe_checkpoint(conn, force)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    async def checkpoint(self) -> None:
        await self._queue.join()
        await self._run(self._checkpoint_sync, True)

    async def append(self, events: list[EventDraft]) -> None:
        await self.write(None, events)

    # -- reads -------------------------------------------------------------------------------

    async def _fetch(self, sql: str, params: tuple[Any, ...] = ()) -> list[Row]:
        assert self._reader is not None
        # One thread hop that runs the statement to completion and closes its cursor. A
        # cursor left open between hops keeps its read snapshot, and another coroutine's
        # read on this shared connection would then miss writes committed since.
        description, values = await self._reader._execute(
            _fetch_all, self._reader._conn, sql, params
        )
        return [_decode(description, row) for row in values]

    async def _fetch_one(self, sql: str, params: tuple[Any, ...] = ()) -> Row | None:
        rows = await self._fetch(sql, params)
        return rows[0] if rows else None

    # -- agents ------------------------------------------------------------------------------

    async def insert_agent(self, agent: Row, event: EventDraft) -> None:
        row = _encode(agent)
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)

        def insert(conn: sqlite3.Connection) -> None:
            conn.execute(f"INSERT INTO agents ({columns}) VALUES ({marks})", tuple(row.values()))

        await self.write(insert, [event])

    async def get_agent(self, agent_id: str) -> Row | None:
        return await self._fetch_one("SELECT * FROM agents WHERE id = ?", (agent_id,))

    async def get_agent_by_name(self, name: str) -> Row | None:
        return await self._fetch_one("SELECT * FROM agents WHERE name = ?", (name,))

    async def get_agent_by_key_hash(self, key_hash: str) -> Row | None:
        return await self._fetch_one("SELECT * FROM agents WHERE key_hash = ?", (key_hash,))

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

    # -- intents -----------------------------------------------------------------------------

    async def insert_intent(self, intent: Row, events: list[EventDraft]) -> None:
        row = _encode(intent)
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)

        def insert(conn: sqlite3.Connection) -> None:
            conn.execute(f"INSERT INTO intents ({columns}) VALUES ({marks})", tuple(row.values()))

        await self.write(insert, events)

    async def insert_decided_intent(
        self, query: CountQuery | None, build: BuildIntent
    ) -> tuple[Row, list[EventDraft]]:
        def decide_and_insert(conn: sqlite3.Connection) -> tuple[Row, list[EventDraft]]:
            # BEGIN IMMEDIATE holds SQLite's write lock for the whole batch: the counts
            # include every intent inserted before this one, in this process or another.
            counts = _read_counts(conn, query) if query is not None else Counts()
            intent, events = build(counts)
            row = _encode(intent)
            columns = ", ".join(row)
            marks = ", ".join("?" for _ in row)
            conn.execute(f"INSERT INTO intents ({columns}) VALUES ({marks})", tuple(row.values()))
            return intent, events

        result: tuple[Row, list[EventDraft]] = await self.write_built(decide_and_insert)
        return result

    async def transition_intent(
        self,
        intent_id: str,
        from_statuses: tuple[str, ...],
        to_status: str,
        fields: Row,
        events: list[EventDraft],
    ) -> None:
        row = _encode(fields)
        assignments = ", ".join(f"{key} = ?" for key in ("status", *row))
        marks = ", ".join("?" for _ in from_statuses)
        sql = f"UPDATE intents SET {assignments} WHERE id = ? AND status IN ({marks})"
        params = (to_status, *row.values(), intent_id, *from_statuses)

        def update(conn: sqlite3.Connection) -> None:
            if conn.execute(sql, params).rowcount != 1:
                raise Conflict(f"intent {intent_id} is no longer in {', '.join(from_statuses)}")

        await self.write(update, events)

    async def get_intent(self, intent_id: str) -> Row | None:
        return await self._fetch_one("SELECT * FROM intents WHERE id = ?", (intent_id,))

    async def list_intents(
        self, *, agent_id: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[Row]:
        clauses, params = [], []
        if agent_id is not None:
            clauses.append("agent_id = ?")
            params.append(agent_id)
        if status is not None:
            clauses.append("status = ?")
            params.append(status)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        params.append(limit)
        return await self._fetch(
            f"SELECT * FROM intents {where} ORDER BY created_at DESC, id LIMIT ?", tuple(params)
        )

    async def find_by_idempotency_key(self, agent_id: str, key: str) -> Row | None:
        return await self._fetch_one(
            "SELECT * FROM intents WHERE agent_id = ? AND idempotency_key = ? "
            "AND status != 'duplicate_blocked'",
            (agent_id, key),
        )

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

    async def next_pending_expiry(self) -> str | None:
        row = await self._fetch_one(
            "SELECT MIN(expires_at) AS at FROM intents "
            "WHERE status IN ('pending_approval', 'approved')"
        )
        return row["at"] if row else None

    async def due_pending(self, now: str) -> list[Row]:
        return await self._fetch(
            "SELECT * FROM intents WHERE status IN ('pending_approval', 'approved') "
            "AND expires_at <= ?",
            (now,),
        )

    async def intent_metrics(self, agent_id: str | None = None) -> Row:
        where, params = ("WHERE agent_id = ?", (agent_id,)) if agent_id else ("", ())
        row = await self._fetch_one(
            f"""SELECT COUNT(*) AS attempted,
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
            FROM intents {where}""",
            params,
        )
        assert row is not None
        return row

    # -- approval votes ----------------------------------------------------------------------

    async def add_vote(self, vote: Row, event: EventDraft) -> None:
        def insert(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO approval_votes (intent_id, reviewer_id, vote, reason, created_at) "
                "VALUES (:intent_id, :reviewer_id, :vote, :reason, :created_at)",
                vote,
            )

        await self.write(insert, [event])

    async def list_votes(self, intent_id: str) -> list[Row]:
        return await self._fetch(
            "SELECT * FROM approval_votes WHERE intent_id = ? ORDER BY created_at", (intent_id,)
        )

    # -- executions --------------------------------------------------------------------------

    async def insert_execution(
        self, execution: Row, intent_id: str, events: list[EventDraft]
    ) -> None:
        row = _encode(execution)
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)

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
            conn.execute(
                f"INSERT INTO executions ({columns}) VALUES ({marks})", tuple(row.values())
            )

        await self.write(insert, events)

    async def get_execution(self, execution_id: str) -> Row | None:
        return await self._fetch_one("SELECT * FROM executions WHERE id = ?", (execution_id,))

    async def list_executions(self, intent_id: str) -> list[Row]:
        return await self._fetch(
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

    # -- webhooks ----------------------------------------------------------------------------

    async def insert_webhook(self, webhook: Row) -> None:
        def insert(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO webhooks (id, intent_id, owner_id, url, secret, created_at) "
                "VALUES (:id, :intent_id, :owner_id, :url, :secret, :created_at)",
                webhook,
            )

        await self.write(insert, [])

    async def webhooks_for(self, intent_id: str) -> list[Row]:
        return await self._fetch("SELECT * FROM webhooks WHERE intent_id = ?", (intent_id,))

    async def record_delivery(self, webhook_id: str, event: str, ok: bool, detail: str) -> None:
        def insert(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO webhook_deliveries (webhook_id, event, ok, detail, at) "
                "VALUES (?, ?, ?, ?, ?)",
                (webhook_id, event, int(ok), detail[:500], utc_iso()),
            )

        await self.write(insert, [])

    # -- ledger reads ------------------------------------------------------------------------

    async def ledger_events(
        self, *, intent_id: str | None = None, after_seq: int = 0, limit: int = 1000
    ) -> list[Row]:
        if intent_id is not None:
            rows = await self._fetch(
                "SELECT body, hash FROM ledger WHERE intent_id = ? AND seq > ? "
                "ORDER BY seq LIMIT ?",
                (intent_id, after_seq, limit),
            )
        else:
            rows = await self._fetch(
                "SELECT body, hash FROM ledger WHERE seq > ? ORDER BY seq LIMIT ?",
                (after_seq, limit),
            )
        return [{**json.loads(row["body"]), "hash": row["hash"]} for row in rows]


def _fetch_all(
    conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]
) -> tuple[Any, list[tuple[Any, ...]]]:
    cursor = conn.execute(sql, params)
    try:
        return cursor.description, cursor.fetchall()
    finally:
        cursor.close()


def _split_sql(script: str) -> list[str]:
    """Split a migration into statements, keeping trigger bodies whole."""
    statements, buffer = [], []
    for line in script.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("--"):
            continue
        buffer.append(line)
        text = "\n".join(buffer)
        if stripped.endswith(";") and sqlite3.complete_statement(text):
            statements.append(text)
            buffer = []
    if buffer:
        statements.append("\n".join(buffer))
    return statements
