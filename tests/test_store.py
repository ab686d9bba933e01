"""The SQLite store directly: read-your-writes under concurrency, and the ledger chain."""

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from gate_proxy.clock import utc_iso, utc_now
from gate_proxy.core.intents import IllegalTransition, Status
from gate_proxy.keys import load_or_create_signer
from gate_proxy.ledger import verify_database
from gate_proxy.store.base import EventDraft, Row
from gate_proxy.store.sqlite import SqliteStore


def _intent(intent_id: str) -> dict[str, object]:
    return {
        "id": intent_id,
        "agent_id": "agt_1",
        "agent_name": "a",
        "source": "api",
        "destination": "d",
        "policy": "p",
        "status": "pending_approval",
        "risk_score": 0.2,
        "risk_level": "low",
        "created_at": utc_iso(),
    }


async def test_every_coroutine_reads_its_own_write(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path, load_or_create_signer(tmp_path))
    await store.open()
    try:

        async def write_then_read(n: int) -> bool:
            intent_id = f"int_{n:06d}"
            await store.insert_intent(
                _intent(intent_id), [EventDraft("proposed", intent_id, "a", "agt_1")]
            )
            return await store.get_intent(intent_id) is not None

        async def busy_reader(stop: asyncio.Event) -> None:
            for _ in range(20_000):  # bounded; keeps reads in flight on the shared connection
                if stop.is_set():
                    return
                await store.list_intents(limit=20)

        stop = asyncio.Event()
        readers = [asyncio.create_task(busy_reader(stop)) for _ in range(4)]
        results = [await write_then_read(n) for n in range(300)]
        stop.set()
        await asyncio.gather(*readers)
    finally:
        await store.close()
    assert all(results), f"{results.count(False)} of {len(results)} reads missed their write"
    result = verify_database(tmp_path / "gate.db", load_or_create_signer(tmp_path).public_key)
    assert result.ok and result.events == 300


async def test_a_failed_write_does_not_break_the_chain(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path, load_or_create_signer(tmp_path))
    await store.open()
    try:
        await store.insert_intent(_intent("int_a"), [EventDraft("proposed", "int_a", "a")])
        outcomes = await asyncio.gather(
            store.insert_intent(_intent("int_a"), [EventDraft("proposed", "int_a", "a")]),
            store.append([EventDraft("note", None, "a")]),
            return_exceptions=True,
        )
    finally:
        await store.close()
    assert isinstance(outcomes[0], Exception)  # duplicate primary key
    assert outcomes[1] is None
    result = verify_database(tmp_path / "gate.db", load_or_create_signer(tmp_path).public_key)
    assert result.ok and result.events == 2 and result.checkpoints >= 1


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    opened = SqliteStore(tmp_path, load_or_create_signer(tmp_path))
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


async def _snapshot(store: SqliteStore, intent_id: str) -> tuple[Row | None, list[Row]]:
    return await store.get_intent(intent_id), await store.ledger_events()


@pytest.mark.parametrize(
    ("from_statuses", "to_status"),
    [
        ((Status.PENDING,), Status.SUCCEEDED),  # the row IS pending: the UPDATE would match
        ((Status.PENDING, Status.EXPIRED), Status.APPROVED),  # one illegal move is enough
        ((Status.PENDING,), Status.PENDING),
        ((Status.PENDING,), "bogus"),
    ],
)
async def test_an_illegal_transition_raises_and_writes_nothing(
    store: SqliteStore, from_statuses: tuple[str, ...], to_status: str
) -> None:
    await store.insert_intent(_intent("int_x"), [EventDraft("proposed", "int_x", "a", "agt_1")])
    before = await _snapshot(store, "int_x")
    with pytest.raises(IllegalTransition):
        await store.transition_intent(
            "int_x",
            from_statuses,
            to_status,
            {"decided_by": "someone"},
            [EventDraft("approved", "int_x", "someone", "agt_1")],
        )
    await store.checkpoint()  # drains the write queue: anything queued has landed by now
    assert await _snapshot(store, "int_x") == before
    # The same store still takes a legal move on that row, with its event.
    await store.transition_intent(
        "int_x",
        (Status.PENDING,),
        Status.APPROVED,
        {"decided_by": "someone"},
        [EventDraft("approved", "int_x", "someone", "agt_1")],
    )
    intent, events = await _snapshot(store, "int_x")
    assert intent is not None and intent["status"] == "approved"
    assert [event["type"] for event in events] == ["proposed", "approved"]


async def test_completing_an_execution_into_an_illegal_status_writes_nothing(
    store: SqliteStore,
) -> None:
    now = utc_now()
    intent = {**_intent("int_e"), "status": "approved"}
    await store.insert_intent(intent, [EventDraft("approved", "int_e", "a", "agt_1")])
    execution = {
        "id": "exe_1",
        "intent_id": "int_e",
        "agent_id": "agt_1",
        "mode": "runner_exec",
        "status": "pending",
        "token_hash": "h",
        "created_at": utc_iso(now),
        "expires_at": utc_iso(now + timedelta(minutes=5)),
    }
    await store.insert_execution(
        execution, "int_e", [EventDraft("execution_requested", "int_e", "a", "agt_1")]
    )
    before = await _snapshot(store, "int_e"), await store.get_execution("exe_1")
    with pytest.raises(IllegalTransition):
        await store.complete_execution(
            "exe_1", "succeeded", {}, utc_iso(), Status.EXPIRED, [EventDraft("x", "int_e", "a")]
        )
    await store.checkpoint()
    assert (await _snapshot(store, "int_e"), await store.get_execution("exe_1")) == before
    await store.complete_execution(
        "exe_1", "succeeded", {}, utc_iso(), Status.SUCCEEDED, [EventDraft("y", "int_e", "a")]
    )
    assert (await store.get_intent("int_e") or {})["status"] == "succeeded"
