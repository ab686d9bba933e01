"""The SQLite store directly: read-your-writes under concurrency, and the ledger chain."""

import asyncio
from pathlib import Path

from gate_proxy.clock import utc_iso
from gate_proxy.keys import load_or_create_signer
from gate_proxy.ledger import verify_database
from gate_proxy.store.base import EventDraft
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
