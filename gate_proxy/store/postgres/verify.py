"""Verifying and exporting a PostgreSQL ledger offline (``ledger verify/export
--database-url``), with the same result and messages as gate_proxy/ledger.py.

Everything is read in one REPEATABLE READ, read-only transaction: a ledger that live
replicas keep appending to is checked as one consistent snapshot, and verifying never
writes. On top of the SQLite checks, the ``ledger_head`` row must point at the last
event: a head beyond it means events were removed from the tail.
"""

import asyncio
import json
from collections.abc import AsyncIterator, Iterator

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gate_proxy.keys import verify_signature
from gate_proxy.ledger import GENESIS_HASH, VerifyResult, checkpoint_message, event_problem
from gate_proxy.store.base import StoreError
from gate_proxy.store.postgres.connection import DATABASE_ERRORS

PAGE = 5000


async def _pages(conn: asyncpg.Connection, columns: str) -> AsyncIterator[list[asyncpg.Record]]:
    """The ledger in seq order, a page at a time (keyset: the table only grows)."""
    after = 0
    while True:
        page = await conn.fetch(
            f"SELECT seq, {columns} FROM ledger WHERE seq > $1 ORDER BY seq LIMIT $2",
            after,
            PAGE,
        )
        if not page:
            return
        yield page
        after = page[-1]["seq"]


async def verify_connection(conn: asyncpg.Connection, public_key: Ed25519PublicKey) -> VerifyResult:
    await require_ledger(conn)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        result = await _verify_chain(conn)
        if not result.ok:
            return result
        result = await _verify_checkpoints(conn, public_key, result.events)
        if not result.ok:
            return result
        return await _verify_head(conn, result)


async def require_ledger(conn: asyncpg.Connection) -> None:
    """StoreError (a clear message for the CLI) when the database has no gate ledger."""
    if not await conn.fetchval("SELECT to_regclass('ledger_head') IS NOT NULL"):
        raise StoreError("no gate ledger in this database (no gate has opened it yet)")


async def _verify_chain(conn: asyncpg.Connection) -> VerifyResult:
    prev = GENESIS_HASH
    expected_seq = 1
    count = 0
    async for page in _pages(conn, "id, intent_id, type, body, hash"):
        for seq, event_id, intent_id, event_type, text, stored_hash in page:
            if seq != expected_seq:
                return VerifyResult(
                    False, count, 0, expected_seq, None, f"missing event (next present is {seq})"
                )
            body = text.encode("utf-8")
            problem = event_problem(body, stored_hash, seq, event_id, intent_id, event_type, prev)
            if problem is not None:
                return VerifyResult(False, count, 0, seq, event_id, problem)
            prev = stored_hash
            expected_seq += 1
            count += 1
    return VerifyResult(True, count, 0)


async def _verify_checkpoints(
    conn: asyncpg.Connection, public_key: Ed25519PublicKey, count: int
) -> VerifyResult:
    signed = 0
    checkpoints = await conn.fetch(
        "SELECT c.seq, c.hash, c.created_at, c.key_id, c.signature, l.id, l.hash AS event_hash "
        "FROM ledger_checkpoints c LEFT JOIN ledger l ON l.seq = c.seq ORDER BY c.seq"
    )
    for seq, event_hash, created_at, key_id, signature, event_id, stored in checkpoints:
        if seq > count:
            return VerifyResult(
                False, count, signed, seq, None, f"checkpoint {seq} refers to a missing event"
            )
        if stored is None or stored != event_hash:
            return VerifyResult(
                False, count, signed, seq, event_id, "event hash differs from the signed checkpoint"
            )
        if not verify_signature(
            public_key, checkpoint_message(seq, event_hash, created_at, key_id), signature
        ):
            return VerifyResult(False, count, signed, seq, event_id, "checkpoint signature invalid")
        signed += 1
    return VerifyResult(True, count, signed)


async def _verify_head(conn: asyncpg.Connection, result: VerifyResult) -> VerifyResult:
    head = await conn.fetchrow("SELECT seq, hash FROM ledger_head WHERE singleton")
    last = await conn.fetchrow("SELECT seq, id, hash FROM ledger ORDER BY seq DESC LIMIT 1")
    last_seq, last_hash = (last["seq"], last["hash"]) if last else (0, GENESIS_HASH)
    if head is None or (head["seq"], head["hash"]) != (last_seq, last_hash):
        head_seq = head["seq"] if head else None
        return VerifyResult(
            False,
            result.events,
            result.checkpoints,
            head_seq,
            None,
            f"ledger head (seq {head_seq}) differs from the last event (seq {last_seq})",
        )
    return result


async def _connect(dsn: str) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(dsn, timeout=30)
    except DATABASE_ERRORS as exc:
        raise StoreError(f"cannot connect to the database: {type(exc).__name__}: {exc}") from exc


async def verify_postgres(dsn: str, public_key: Ed25519PublicKey) -> VerifyResult:
    """Verify the ledger at ``dsn``; StoreError when it cannot be read at all."""
    conn = await _connect(dsn)
    try:
        return await verify_connection(conn, public_key)
    finally:
        await conn.close()


def verify_database_url(dsn: str, public_key: Ed25519PublicKey) -> VerifyResult:
    """Synchronous entry point for the CLI (``ledger verify --database-url``)."""
    return asyncio.run(verify_postgres(dsn, public_key))


async def export_postgres(dsn: str) -> AsyncIterator[str]:
    """The ledger as JSON lines (body plus hash), as gate_proxy/ledger.py export_jsonl."""
    conn = await _connect(dsn)
    try:
        await require_ledger(conn)
        async for page in _pages(conn, "body, hash"):
            for _seq, body, event_hash in page:
                parsed = json.loads(body)
                parsed["hash"] = event_hash
                yield json.dumps(parsed, ensure_ascii=False, separators=(",", ":"))
    finally:
        await conn.close()


def export_jsonl_url(dsn: str) -> Iterator[str]:
    """Synchronous, streaming export for the CLI (``ledger export --database-url``)."""
    loop = asyncio.new_event_loop()
    lines = export_postgres(dsn)
    try:
        while True:
            try:
                yield loop.run_until_complete(anext(lines))
            except StopAsyncIteration:
                return
    finally:
        loop.run_until_complete(lines.aclose())
        loop.close()
