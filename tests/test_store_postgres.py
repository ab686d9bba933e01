"""What only the PostgreSQL store has: migrations raced by replicas, the head row, the
offline verifier and export, a collation-proof schema, and losing connections."""

import asyncio
import dataclasses
import json
import secrets
import socket
from pathlib import Path

import asyncpg
import pytest
from pg_server import fresh_database, with_user

from gate_proxy.clock import utc_iso
from gate_proxy.core.intents import Intent, Status
from gate_proxy.keys import Signer, load_or_create_signer
from gate_proxy.store.base import EventDraft, StoreError
from gate_proxy.store.postgres import PostgresStore
from gate_proxy.store.postgres.schema import (
    LATEST_VERSION,
    apply_migrations,
    grant_runtime_role,
)
from gate_proxy.store.postgres.verify import (
    export_jsonl_url,
    verify_database_url,
    verify_postgres,
)


@pytest.fixture
def signer(tmp_path: Path) -> Signer:
    return load_or_create_signer(tmp_path)


async def _sql(url: str, *statements: str) -> list[asyncpg.Record]:
    """Run statements as the database owner (a superuser here); the last one's rows."""
    conn = await asyncpg.connect(url)
    try:
        rows: list[asyncpg.Record] = []
        for statement in statements:
            rows = await conn.fetch(statement)
        return rows
    finally:
        await conn.close()


async def _ledger_of(url: str, signer: Signer, events: int) -> None:
    store = PostgresStore(url, signer)
    await store.open()
    try:
        for n in range(events):
            await store.append([EventDraft("note", f"int_{n}", "a", None, {"n": n})])
            if n % 2 == 1:
                await store.checkpoint()
    finally:
        await store.close()


async def test_replicas_starting_together_migrate_once(pg_url: str, signer: Signer) -> None:
    stores = [PostgresStore(pg_url, signer) for _ in range(4)]
    await asyncio.gather(*(store.open() for store in stores))
    try:
        rows = await _sql(pg_url, "SELECT version FROM schema_migrations ORDER BY version")
        assert [row["version"] for row in rows] == list(range(1, LATEST_VERSION + 1))
        assert await apply_migrations(pg_url) == []  # up to date: nothing to apply
        await asyncio.gather(*(s.append([EventDraft("note", None, "a")]) for s in stores))
    finally:
        await asyncio.gather(*(store.close() for store in stores))
    assert (await verify_postgres(pg_url, signer.public_key)).events == 4


async def test_the_head_only_moves_forward(pg_url: str, signer: Signer) -> None:
    await _ledger_of(pg_url, signer, 2)
    for statement in (
        "UPDATE ledger_head SET seq = 0",
        "UPDATE ledger_head SET checkpoint_seq = 0",
        "DELETE FROM ledger_head",
        "TRUNCATE ledger_head",
    ):
        with pytest.raises(asyncpg.PostgresError, match=r"forward|append-only"):
            await _sql(pg_url, statement)
    with pytest.raises(asyncpg.UniqueViolationError):  # one row, ever
        await _sql(pg_url, "INSERT INTO ledger_head VALUES (TRUE, 9, 'x', 0, 0)")
    assert (await verify_postgres(pg_url, signer.public_key)).ok


@pytest.mark.parametrize(
    ("tamper", "broken_seq", "reason"),
    [
        (
            "UPDATE ledger SET body = replace(body, '\"n\":1', '\"n\":7') WHERE seq = 2",
            2,
            "hash does not match body",
        ),
        ("UPDATE ledger SET intent_id = 'int_9' WHERE seq = 3", 3, "indexed columns differ"),
        ("DELETE FROM ledger WHERE seq = 2", 2, "missing event"),
        (  # a scheme this gate does not know, with a hash that matches: refused, not trusted
            "UPDATE ledger SET body = replace(body, '\"hash_v\":2', '\"hash_v\":3'), "
            "hash = encode(sha256(convert_to(replace(body, '\"hash_v\":2', '\"hash_v\":3'), "
            "'UTF8')), 'hex') WHERE seq = 4",
            4,
            "unknown hash_v",
        ),
        ("DELETE FROM ledger WHERE seq = 4", 4, "refers to a missing event"),
        ("DELETE FROM ledger_checkpoints", 4, "ledger head (seq 4) differs"),
    ],
)
async def test_verify_finds_what_an_owner_bypassing_the_triggers_changed(
    pg_url: str, signer: Signer, tamper: str, broken_seq: int, reason: str
) -> None:
    await _ledger_of(pg_url, signer, 4)
    assert (await verify_postgres(pg_url, signer.public_key)).ok
    if "ledger_checkpoints" in tamper:  # removing checkpoints alone is not detectable...
        tamper = "DELETE FROM ledger WHERE seq = 4"  # ...but the head still points past it
        await _sql(pg_url, "ALTER TABLE ledger DISABLE TRIGGER USER", tamper)
        await _sql(pg_url, "ALTER TABLE ledger_checkpoints DISABLE TRIGGER USER")
        await _sql(pg_url, "DELETE FROM ledger_checkpoints WHERE seq = 4")
    else:
        await _sql(pg_url, "ALTER TABLE ledger DISABLE TRIGGER USER", tamper)
    # The CLI's synchronous entry point (in a thread: this test's loop is running).
    result = await asyncio.to_thread(verify_database_url, pg_url, signer.public_key)
    assert not result.ok
    assert result.broken_seq == broken_seq and reason in (result.reason or ""), result.describe()


async def test_verify_refuses_a_forged_checkpoint(pg_url: str, signer: Signer) -> None:
    await _ledger_of(pg_url, signer, 3)
    rows = await _sql(pg_url, "SELECT hash FROM ledger WHERE seq = 1")
    # INSERT is allowed (the writers need it), but a forger lacks the signing key.
    await _sql(
        pg_url,
        "INSERT INTO ledger_checkpoints (seq, hash, created_at, key_id, signature) "
        f"VALUES (1, '{rows[0]['hash']}', '{utc_iso()}', '{signer.key_id}', 'Zm9yZ2Vk')",
    )
    result = await verify_postgres(pg_url, signer.public_key)
    assert not result.ok and result.reason == "checkpoint signature invalid"


async def test_export_is_the_ledger_as_json_lines(pg_url: str, signer: Signer) -> None:
    await _ledger_of(pg_url, signer, 5)
    store = PostgresStore(pg_url, signer)
    await store.open()
    try:
        events = await store.ledger_events()
    finally:
        await store.close()
    lines = await asyncio.to_thread(lambda: list(export_jsonl_url(pg_url)))
    exported = [json.loads(line) for line in lines]
    assert exported == events and [event["seq"] for event in exported] == [1, 2, 3, 4, 5]


async def test_text_sorts_by_bytes_whatever_the_databases_collation(
    pg_admin_url: str, signer: Signer
) -> None:
    # An ICU en-US database sorts "int_B" before "int-c" and ignores case; SQLite (and the
    # use cases comparing ISO timestamps as text) compare bytes.
    options = "ENCODING 'UTF8' LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
    async with fresh_database(pg_admin_url, options) as url:
        store = PostgresStore(url, signer)
        await store.open()
        try:
            at = utc_iso()
            for intent_id in ("int_a", "int-c", "int_B", "int.d"):
                await store.insert_intent(_intent(intent_id, at), [])
            listed = [intent.id for intent in await store.list_intents(limit=10)]
        finally:
            await store.close()
    assert listed == sorted(["int_a", "int-c", "int_B", "int.d"], key=str.encode)


def _intent(intent_id: str, created_at: str) -> Intent:
    return Intent(
        id=intent_id,
        agent_id="agt_1",
        agent_name="a",
        source="api",
        destination="d",
        policy="p",
        status=Status.PENDING,
        risk_score=0.2,
        risk_level="low",
        created_at=created_at,
    )


async def test_a_database_not_in_utf8_is_refused(pg_admin_url: str, signer: Signer) -> None:
    options = "ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C'"
    async with fresh_database(pg_admin_url, options) as url:
        with pytest.raises(StoreError, match="UTF8"):
            await PostgresStore(url, signer).open()


async def test_an_unreachable_server_is_a_store_error(signer: Signer) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://gate@127.0.0.1:{port}/gate"
    with pytest.raises(StoreError):
        await PostgresStore(url, signer).open()
    with pytest.raises(StoreError, match="cannot connect"):  # what the CLI prints
        await verify_postgres(url, signer.public_key)


async def test_losing_the_listening_connection_delays_never_loses_a_wake_up(
    pg_url: str, signer: Signer
) -> None:
    writer, waiter = PostgresStore(pg_url, signer), PostgresStore(pg_url, signer)
    await writer.open()
    await waiter.open()
    try:
        head = await waiter.ledger_head_seq()
        pending = asyncio.create_task(waiter.wait_for_ledger(head, 30.0))
        await asyncio.sleep(0.1)
        await _sql(
            pg_url,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()",
        )
        await asyncio.wait_for(pending, 10.0)  # returns early: the caller re-reads
        # The next wait listens again and wakes on the other replica's write.
        pending = asyncio.create_task(waiter.wait_for_ledger(head, 30.0))
        await asyncio.sleep(0.3)
        assert not pending.done()
        await writer.append([EventDraft("note", None, "a")])
        await asyncio.wait_for(pending, 5.0)
        assert await waiter.ledger_head_seq() == head + 1
    finally:
        await writer.close()
        await waiter.close()


async def test_a_killed_writer_connection_fails_closed_and_recovers(
    pg_url: str, signer: Signer
) -> None:
    store = PostgresStore(pg_url, signer)
    await store.open()
    try:
        await store.append([EventDraft("note", None, "a")])
        await _sql(
            pg_url,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND query NOT LIKE 'LISTEN%'",
        )
        outcomes = []
        for n in range(5):  # the first writes may fail (StoreError), later ones succeed
            intent = dataclasses.replace(_intent(f"int_{n}", utc_iso()))
            try:
                await store.insert_intent(intent, [EventDraft("proposed", intent.id, "a")])
                outcomes.append(True)
            except StoreError:
                outcomes.append(False)
        assert outcomes[-1] and outcomes.count(False) <= 1, outcomes
        stored = [await store.get_intent(f"int_{n}") for n in range(5)]
        assert [intent is not None for intent in stored] == outcomes  # nothing half-written
    finally:
        await store.close()
    result = await verify_postgres(pg_url, signer.public_key)
    assert result.ok and result.events == 1 + outcomes.count(True), result.describe()


async def test_the_gate_runs_as_a_role_that_owns_nothing(pg_url: str, signer: Signer) -> None:
    # docs/postgres.md: an owner migrates, the gate runs as a role with RUNTIME_GRANTS only.
    assert await apply_migrations(pg_url) == list(range(1, LATEST_VERSION + 1))
    role = "gate_runtime_" + secrets.token_hex(4)  # roles are server-wide: one per test
    await _sql(pg_url, f"CREATE ROLE {role} LOGIN")
    try:
        await _as_runtime_role(pg_url, role, signer)
    finally:
        await _sql(pg_url, f"DROP OWNED BY {role}", f"DROP ROLE {role}")


async def _as_runtime_role(pg_url: str, role: str, signer: Signer) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        await grant_runtime_role(conn, role)
    finally:
        await conn.close()
    runtime_url = with_user(pg_url, role)
    store = PostgresStore(runtime_url, signer)
    await store.open()
    try:
        await store.insert_intent(
            _intent("int_1", utc_iso()), [EventDraft("proposed", "int_1", "a")]
        )
        await store.transition_intent(
            "int_1", (Status.PENDING,), Status.APPROVED, {}, [EventDraft("approved", "int_1", "r")]
        )
        assert await store.try_lease("sweeper", "me", 1.0, 10.0)
        await store.checkpoint()
    finally:
        await store.close()
    for statement in (
        "ALTER TABLE ledger DISABLE TRIGGER USER",
        "SET session_replication_role = replica",
        "UPDATE ledger SET type = 'forged'",
        "DELETE FROM ledger_checkpoints",
        "TRUNCATE ledger",
        "DROP TABLE ledger CASCADE",
    ):
        with pytest.raises(asyncpg.PostgresError):
            await _sql(runtime_url, statement)
    result = await verify_postgres(runtime_url, signer.public_key)
    assert result.ok and result.events == 2 and result.checkpoints >= 1, result.describe()


async def test_an_older_gate_opens_a_newer_schema(pg_url: str, signer: Signer) -> None:
    await apply_migrations(pg_url)
    await _sql(pg_url, "INSERT INTO schema_migrations VALUES (999, 'later')")
    store = PostgresStore(pg_url, signer)
    await store.open()  # migrations only add: a rolling update keeps old replicas running
    try:
        await store.append([EventDraft("note", None, "a")])
    finally:
        await store.close()


def test_verify_and_export_of_a_database_without_a_gate_say_so(
    pg_module_url: str, signer: Signer
) -> None:
    # Synchronous, as the CLI calls them (and on the module-scoped database fixture).
    with pytest.raises(StoreError, match="no gate ledger"):
        verify_database_url(pg_module_url, signer.public_key)
    with pytest.raises(StoreError, match="no gate ledger"):
        list(export_jsonl_url(pg_module_url))
    asyncio.run(_ledger_of(pg_module_url, signer, 2))
    assert verify_database_url(pg_module_url, signer.public_key).events == 2
    assert len(list(export_jsonl_url(pg_module_url))) == 2
