"""The Store on both backends (SQLite, PostgreSQL): read-your-writes under concurrency,
the ledger chain, and intents as typed values. Every test runs once per backend through
the ``store_backend`` fixture (tests/conftest.py, tests/store_backends.py)."""

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from store_backends import StoreBackend

from gate_proxy.clock import utc_iso, utc_now
from gate_proxy.core.decide import Counts
from gate_proxy.core.intents import INTENT_COLUMNS, IllegalTransition, Intent, Status
from gate_proxy.store.base import CountQuery, DuplicateKey, EventDraft, Row, Store


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


async def test_every_coroutine_reads_its_own_write(store_backend: StoreBackend) -> None:
    store = await store_backend.open_store()
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
    result = await store_backend.verify()
    assert result.ok and result.events == 300


async def test_a_failed_write_does_not_break_the_chain(store_backend: StoreBackend) -> None:
    store = await store_backend.open_store()
    try:
        await store.insert_intent(_intent("int_a"), [EventDraft("proposed", "int_a", "a")])
        outcomes = await asyncio.gather(
            store.insert_intent(_intent("int_a"), [EventDraft("proposed", "int_a", "a")]),
            store.append([EventDraft("note", None, "a")]),
            return_exceptions=True,
        )
    finally:
        await store.close()
    assert isinstance(outcomes[0], DuplicateKey)  # duplicate primary key
    assert outcomes[1] is None
    result = await store_backend.verify()
    assert result.ok and result.events == 2 and result.checkpoints >= 1


@pytest.fixture
async def store(store_backend: StoreBackend) -> AsyncIterator[Store]:
    opened = await store_backend.open_store()
    try:
        yield opened
    finally:
        await opened.close()


async def _snapshot(store: Store, intent_id: str) -> tuple[Intent | None, list[Row]]:
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
    store: Store, from_statuses: tuple[str, ...], to_status: str
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
    store: Store,
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


async def test_the_intent_dataclass_has_exactly_the_tables_columns(
    store: Store, store_backend: StoreBackend
) -> None:
    columns = await store_backend.intent_columns()
    assert set(columns) == set(INTENT_COLUMNS)
    assert len(INTENT_COLUMNS) == len(columns)


async def test_an_intent_round_trips_through_every_read(
    store: Store, store_backend: StoreBackend
) -> None:
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
    # What the database holds (either backend): JSON text, an integer flag, the status's text.
    raw = await store_backend.raw_intent(original.id)
    assert raw["sensitivity_tags"] == '["pii", "finance"]'
    assert json.loads(str(raw["metadata"])) == {
        "ticket": "T-1",
        "nested": {"list": [1, 2]},
        "unicode": "é",
    }
    assert (raw["shadow"], raw["status"], raw["require_approvals"]) == (1, "approved", 2)


async def test_a_minimal_intent_reads_back_with_the_defaults(store: Store) -> None:
    minimal = _intent("int_min")
    await store.insert_intent(minimal, [])
    read = await store.get_intent("int_min")
    assert read == minimal
    assert read is not None
    assert (read.sensitivity_tags, dict(read.metadata), read.shadow) == ((), {}, False)
    assert (read.payload_size, read.require_approvals) == (0, 1)


async def test_a_recorded_transition_reads_back_as_with_status_says(
    store: Store,
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
    store: Store, changes: dict[str, object]
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
    store: Store,
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


async def test_open_calls_are_found_by_the_call_approved_first_newest_first(
    store: Store,
) -> None:
    # A re-sent MCP call finds its intent by (agent, destination, fingerprint), among any
    # number of the agent's other open intents; closed ones and other sources never count.
    def call(intent_id: str, status: Status, fingerprint: str, **changes: object) -> Intent:
        base = dataclasses.replace(
            _intent(intent_id, status), source="proxy", fingerprint=fingerprint
        )
        return dataclasses.replace(base, **changes)  # type: ignore[arg-type]

    def ago(seconds: int) -> str:
        return utc_iso(utc_now() - timedelta(seconds=seconds))

    intents = [
        call("int_old_pending", Status.PENDING, "fp", created_at=ago(9)),
        call("int_new_pending", Status.PENDING, "fp", created_at=ago(1)),
        call("int_approved", Status.APPROVED, "fp", created_at=ago(5)),
        call("int_done", Status.SUCCEEDED, "fp"),
        call("int_rejected", Status.REJECTED, "fp"),
        call("int_api", Status.APPROVED, "fp", source="api"),
        call("int_other_agent", Status.APPROVED, "fp", agent_id="agt_2"),
        call("int_other_dest", Status.APPROVED, "fp", destination="elsewhere"),
        *(call(f"int_noise_{n}", Status.PENDING, f"fp{n}") for n in range(30)),
    ]  # fmt: skip
    for intent in intents:
        await store.insert_intent(intent, [])
    found = await store.find_open_calls("agt_1", "d", "fp")
    assert [i.id for i in found] == ["int_approved", "int_new_pending", "int_old_pending"]
    assert [i.id for i in await store.find_open_calls("agt_1", "d", "fp", limit=1)] == [
        "int_approved"
    ]
    assert await store.find_open_calls("agt_1", "d", "nothing") == []


# -- the rest of the protocol, on both backends -----------------------------------------------


async def test_the_ledger_and_its_checkpoints_are_append_only(
    store: Store, store_backend: StoreBackend
) -> None:
    await store.append([EventDraft("note", None, "a")])
    await store.checkpoint()
    statements = [
        "UPDATE ledger SET type = 'forged'",
        "DELETE FROM ledger",
        "UPDATE ledger_checkpoints SET hash = 'forged'",
        "DELETE FROM ledger_checkpoints",
    ]
    if store_backend.name == "postgres":  # SQLite has no TRUNCATE (its DELETE fires triggers)
        statements += ["TRUNCATE ledger", "TRUNCATE ledger_checkpoints", "TRUNCATE ledger CASCADE"]
    for statement in statements:
        with pytest.raises(Exception, match="append-only"):
            await store_backend.execute(statement)
    await store.append([EventDraft("note", None, "a")])  # the store still writes
    await store.checkpoint()
    result = await store_backend.verify()
    assert result.ok and result.events == 2 and result.checkpoints == 2, result.describe()


async def test_an_idempotency_key_is_unique_per_agent(store: Store) -> None:
    first = dataclasses.replace(_intent("int_k1"), idempotency_key="k")
    await store.insert_intent(first, [EventDraft("proposed", "int_k1", "a")])
    with pytest.raises(DuplicateKey):
        await store.insert_intent(
            dataclasses.replace(_intent("int_k2"), idempotency_key="k"),
            [EventDraft("proposed", "int_k2", "a")],
        )
    # Another agent may use the same key; a duplicate_blocked intent does not hold it.
    await store.insert_intent(
        dataclasses.replace(_intent("int_k3"), agent_id="agt_2", idempotency_key="k"), []
    )
    await store.insert_intent(
        dataclasses.replace(_intent("int_k4", Status.DUPLICATE), idempotency_key="k"), []
    )
    assert await store.find_by_idempotency_key("agt_1", "k") == first
    assert [event["type"] for event in await store.ledger_events()] == ["proposed"]


def _aged(
    intent_id: str, minutes_ago: float, status: Status, value: float, **changes: object
) -> Intent:
    created = utc_iso(utc_now() - timedelta(minutes=minutes_ago))
    fields = {"created_at": created, "estimated_value_usd": value, **changes}
    return dataclasses.replace(_intent(intent_id, status), **fields)  # type: ignore[arg-type]


async def test_counts_sums_and_metrics(store: Store) -> None:
    created = utc_now() - timedelta(minutes=10)
    decided = {"decided_at": utc_iso(created + timedelta(seconds=2)), "decided_by": "rev_1"}
    intents = [
        _aged("int_1", 10, Status.APPROVED, 10.0, created_at=utc_iso(created), **decided),
        _aged("int_2", 20, Status.PENDING, 5.0),
        _aged("int_3", 30, Status.BLOCKED, 100.0),  # counted as an attempt, never as spend
        _aged("int_4", 300, Status.SUCCEEDED, 7.0),  # earlier today
        _aged("int_5", 40, Status.FAILED, 3.0, agent_id="agt_2"),  # another agent
        _aged("int_6", 50, Status.APPROVED, 1.0, policy="other"),  # another policy
        _aged("int_7", 2 * 24 * 60, Status.APPROVED, 50.0),  # two days ago: outside both
    ]
    for intent in intents:
        await store.insert_intent(intent, [])
    since_hour = utc_iso(utc_now() - timedelta(hours=1))
    since_day = utc_iso(utc_now() - timedelta(days=1))
    assert await store.count_recent_intents("agt_1", since_hour, since_day) == (4, 5)
    assert await store.sum_recent_value("agt_1", "p", since_hour, since_day) == (
        15.0,
        22.0,
        18.0,
        25.0,
    )
    metrics = await store.intent_metrics()
    latency = metrics.pop("avg_approval_latency_ms")
    assert latency == pytest.approx(2000.0, abs=1.0)  # only int_1 was decided by a person
    assert metrics == {
        "attempted": 7,
        "blocked": 1,
        "pending": 1,
        "approved": 5,
        "succeeded": 1,
        "failed": 1,
        "duplicate": 0,
        "expired": 0,
    }
    assert (await store.intent_metrics("agt_2"))["attempted"] == 1
    assert (await store.intent_metrics("agt_2"))["avg_approval_latency_ms"] is None
    assert await store.next_pending_expiry() is None  # none of them has a deadline


async def test_agents_votes_and_webhooks_round_trip(store: Store) -> None:
    now = utc_iso()
    agent = {
        "id": "agt_9",
        "name": "bot",
        "role": "agent",
        "status": "active",
        "key_hash": "kh",
        "key_prefix": "gate_sk_abcd",
        "risk_tier": "low",
        "owner": None,
        "framework": "x",
        "environment": None,
        "allowed_policies": ["p"],
        "allowed_destinations": None,
        "metadata": {"team": "é"},
        "created_at": now,
        "updated_at": now,
    }
    await store.insert_agent(agent, EventDraft("agent_registered", None, "admin", "agt_9"))
    with pytest.raises(DuplicateKey):  # the name is taken
        await store.insert_agent(
            {**agent, "id": "agt_8", "key_hash": "kh2"}, EventDraft("x", None, "a")
        )
    assert await store.get_agent("agt_9") == agent
    assert await store.get_agent_by_name("bot") == agent
    assert await store.get_agent_by_key_hash("kh") == agent
    assert await store.list_agents() == [agent]
    assert await store.set_agent_status("agt_9", "revoked", EventDraft("agent_revoked", None, "a"))
    assert not await store.set_agent_status("agt_9", "active", EventDraft("agent_x", None, "a"))
    assert not await store.set_agent_status("agt_0", "active", EventDraft("agent_x", None, "a"))
    revoked = await store.get_agent("agt_9")
    assert revoked is not None and revoked["status"] == "revoked"

    vote = {"intent_id": "int_v", "reviewer_id": "rev_1", "vote": "approve", "reason": None}
    await store.add_vote({**vote, "created_at": now}, EventDraft("approval_vote", "int_v", "r"))
    with pytest.raises(DuplicateKey):
        await store.add_vote({**vote, "created_at": now}, EventDraft("approval_vote", "int_v", "r"))
    assert await store.list_votes("int_v") == [{**vote, "created_at": now}]

    hook = {"id": "wh_1", "intent_id": "int_v", "owner_id": "agt_9", "url": "https://h/x"}
    assert not await store.has_webhooks()
    await store.insert_webhook({**hook, "secret": "s", "created_at": now})
    assert await store.webhooks_for("int_v") == [{**hook, "secret": "s", "created_at": now}]
    assert await store.has_webhooks()
    await store.record_delivery("wh_1", "approved", True, "200")
    types = [event["type"] for event in await store.ledger_events()]
    assert types == ["agent_registered", "agent_revoked", "approval_vote"]
