"""The SQLite store directly: read-your-writes under concurrency, and the ledger chain."""

import asyncio
import dataclasses
import json
import sqlite3
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from gate_proxy.clock import utc_iso, utc_now
from gate_proxy.core.decide import Counts
from gate_proxy.core.intents import INTENT_COLUMNS, IllegalTransition, Intent, Status
from gate_proxy.keys import load_or_create_signer
from gate_proxy.ledger import verify_database
from gate_proxy.store.base import CountQuery, EventDraft, Row
from gate_proxy.store.sqlite import SqliteStore


def _intent(intent_id: str, status: Status = Status.PENDING) -> Intent:
    return Intent(
        id=intent_id,
        agent_id="agt_1",
        agent_name="a",
        source="api",
        destination="d",
        policy="p",
        status=status,
        risk_score=0.2,
        risk_level="low",
        created_at=utc_iso(),
    )


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


async def _snapshot(store: SqliteStore, intent_id: str) -> tuple[Intent | None, list[Row]]:
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
    assert intent is not None and intent.status == "approved"
    assert [event["type"] for event in events] == ["proposed", "approved"]


async def test_completing_an_execution_into_an_illegal_status_writes_nothing(
    store: SqliteStore,
) -> None:
    now = utc_now()
    intent = _intent("int_e", Status.APPROVED)
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
    completed = await store.get_intent("int_e")
    assert completed is not None and completed.status == "succeeded"


# -- intents cross the store as typed values ------------------------------------------------


def _every_field_set(intent_id: str = "int_full") -> Intent:
    """An intent with no field at its default, so a lost or mangled column shows."""
    return Intent(
        id=intent_id,
        agent_id="agt_1",
        agent_name="bot",
        on_behalf_of="alice",
        source="proxy",
        destination="crm.contacts",
        policy="p",
        status=Status.APPROVED,
        reason_code="approved_by_policy",
        block_reason="none",
        risk_score=0.25,
        risk_level="medium",
        record_count=3,
        estimated_value_usd=12.5,
        sensitivity_tags=("pii", "finance"),
        idempotency_key="k-1",
        duplicate_of="int_0",
        environment="production",
        payload_type="json",
        payload_size=42,
        payload_sha256="ab" * 32,
        payload_preview='{"name": "[redacted]"}',
        method="POST",
        url="https://crm.example/v1/contacts",
        fingerprint="cd" * 32,
        shadow=True,
        require_approvals=2,
        metadata={"ticket": "T-1", "nested": {"list": [1, 2]}, "unicode": "é"},
        created_at=utc_iso(utc_now() - timedelta(minutes=1)),
        expires_at=utc_iso(utc_now() - timedelta(seconds=1)),
        decided_at=utc_iso(),
        decided_by="system",
        decision_note="fine",
        executed_at=utc_iso(),
        completed_at=utc_iso(),
    )


def _raw_row(data_dir: Path, intent_id: str) -> dict[str, object]:
    with sqlite3.connect(f"file:{data_dir / 'gate.db'}?mode=ro", uri=True) as conn:
        conn.row_factory = sqlite3.Row
        row = conn.execute("SELECT * FROM intents WHERE id = ?", (intent_id,)).fetchone()
    return dict(row)


async def test_the_intent_dataclass_has_exactly_the_tables_columns(
    store: SqliteStore, tmp_path: Path
) -> None:
    with sqlite3.connect(f"file:{tmp_path / 'gate.db'}?mode=ro", uri=True) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(intents)")}
    assert columns == set(INTENT_COLUMNS)
    assert len(INTENT_COLUMNS) == len(columns)


async def test_an_intent_round_trips_through_every_read(store: SqliteStore, tmp_path: Path) -> None:
    original = _every_field_set()
    await store.insert_intent(original, [EventDraft("proposed", original.id, "bot", "agt_1")])
    assert await store.get_intent(original.id) == original
    assert await store.list_intents(agent_id="agt_1") == [original]
    assert await store.list_intents(status=Status.APPROVED) == [original]
    assert await store.find_by_idempotency_key("agt_1", "k-1") == original
    assert await store.due_pending(utc_iso()) == [original]  # approved, past its deadline
    read = await store.get_intent(original.id)
    assert read is not None
    assert read.status is Status.APPROVED and read.shadow is True
    assert read.sensitivity_tags == ("pii", "finance")
    assert read.metadata["nested"] == {"list": [1, 2]}
    # What SQLite holds: JSON text, an integer flag, the status's text.
    raw = _raw_row(tmp_path, original.id)
    assert raw["sensitivity_tags"] == '["pii", "finance"]'
    assert json.loads(str(raw["metadata"])) == {
        "ticket": "T-1",
        "nested": {"list": [1, 2]},
        "unicode": "é",
    }
    assert (raw["shadow"], raw["status"], raw["require_approvals"]) == (1, "approved", 2)


async def test_a_minimal_intent_reads_back_with_the_defaults(store: SqliteStore) -> None:
    minimal = _intent("int_min")
    await store.insert_intent(minimal, [])
    read = await store.get_intent("int_min")
    assert read == minimal
    assert read is not None
    assert (read.sensitivity_tags, dict(read.metadata), read.shadow) == ((), {}, False)
    assert (read.payload_size, read.require_approvals) == (0, 1)


async def test_a_recorded_transition_reads_back_as_with_status_says(
    store: SqliteStore,
) -> None:
    pending = _intent("int_t")
    await store.insert_intent(pending, [])
    changes = {"decided_at": utc_iso(), "decided_by": "rev_1", "decision_note": "ok"}
    await store.transition_intent(
        pending.id,
        (Status.PENDING,),
        Status.APPROVED,
        changes,
        [EventDraft("approved", "int_t", "r")],
    )
    assert await store.get_intent(pending.id) == pending.with_status(Status.APPROVED, **changes)


@pytest.mark.parametrize(
    "changes",
    [
        {"id": "int_other"},
        {"status": "approved"},
        {"no_such_column": 1},
        {"decided_by = 'x', id": 1},
    ],
)
async def test_a_transition_sets_only_known_columns(
    store: SqliteStore, changes: dict[str, object]
) -> None:
    await store.insert_intent(_intent("int_c"), [])
    before = await _snapshot(store, "int_c")
    with pytest.raises(ValueError):
        await store.transition_intent(
            "int_c", (Status.PENDING,), Status.APPROVED, changes, [EventDraft("x", "int_c", "a")]
        )
    await store.checkpoint()
    assert await _snapshot(store, "int_c") == before


async def test_the_duplicate_window_hands_the_decider_the_earlier_intent(
    store: SqliteStore,
) -> None:
    original = dataclasses.replace(
        _every_field_set("int_orig"), idempotency_key=None, duplicate_of=None
    )
    await store.insert_intent(original, [])
    query = CountQuery(
        agent_id="agt_1",
        policy="p",
        destination=original.destination,
        fingerprint=original.fingerprint or "",
        since_hour=utc_iso(utc_now() - timedelta(hours=1)),
        since_day=utc_iso(utc_now() - timedelta(days=1)),
        dedupe_since=utc_iso(utc_now() - timedelta(hours=1)),
    )
    seen: list[Counts] = []

    def build(counts: Counts) -> tuple[Intent, list[EventDraft]]:
        seen.append(counts)
        assert counts.duplicate_of is not None
        duplicate = dataclasses.replace(
            _intent("int_dup", Status.DUPLICATE), duplicate_of=counts.duplicate_of.id
        )
        return duplicate, [EventDraft("duplicate_blocked", "int_dup", "system", "agt_1")]

    recorded, events = await store.insert_decided_intent(query, build)
    assert seen[0].duplicate_of == original  # the whole earlier intent, typed
    assert recorded.duplicate_of == "int_orig" and recorded.status is Status.DUPLICATE
    assert await store.get_intent("int_dup") == recorded
    assert [event.type for event in events] == ["duplicate_blocked"]
