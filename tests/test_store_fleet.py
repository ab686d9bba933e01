"""Several processes on one store: two Store objects on one database, on both backends.

Two stores opened on the same database behave like two processes of a fleet (workers on
one box share the SQLite file; replicas share PostgreSQL): each has its own connections
and group-commit writer, and only the database is shared. These tests try to break what
must hold across them: one ledger chain, limits, an approval consumed once, one lease
holder, and a wake-up when the other one writes.
"""

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from store_backends import StoreBackend

from gate_proxy.clock import utc_iso, utc_now
from gate_proxy.core.decide import Counts
from gate_proxy.core.intents import Intent, Status
from gate_proxy.store.base import BuildIntent, Conflict, CountQuery, DuplicateKey, EventDraft, Store


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


@pytest.fixture
async def pair(store_backend: StoreBackend) -> AsyncIterator[tuple[Store, Store]]:
    first = await store_backend.open_store()
    second = await store_backend.open_store()
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


async def test_two_writers_keep_one_chain_with_both_checkpointing(
    store_backend: StoreBackend,
) -> None:
    first = await store_backend.open_store()
    second = await store_backend.open_store()

    async def write(store: Store, tag: str) -> None:
        for round_ in range(20):
            await asyncio.gather(
                *(
                    store.insert_intent(
                        _intent(f"int_{tag}_{round_}_{n}"),
                        [EventDraft("proposed", f"int_{tag}_{round_}_{n}", tag, "agt_1")],
                    )
                    for n in range(5)
                ),
                store.append([EventDraft("note", None, tag)]),
            )
            if round_ % 5 == 4:
                await store.checkpoint()

    try:
        await asyncio.gather(write(first, "a"), write(second, "b"))
        heads = (await first.ledger_head_seq(), await second.ledger_head_seq())
    finally:
        await first.close()
        await second.close()
    assert heads == (240, 240)
    result = await store_backend.verify()
    assert result.ok, result.describe()
    # Each pair of checkpoint() calls signs at least once (the second finds nothing new
    # when the other writer just signed the same head).
    assert result.events == 240 and result.checkpoints >= 4


async def test_checkpoints_of_two_writers_sign_each_head_once(
    pair: tuple[Store, Store], store_backend: StoreBackend
) -> None:
    first, second = pair
    await first.append([EventDraft("note", None, "a")])
    await first.checkpoint()
    await second.checkpoint()  # the head is signed already: nothing to add
    await second.append([EventDraft("note", None, "b")])
    await second.checkpoint()
    for _ in range(5):  # both sign the same new head at once: one checkpoint, no error
        await first.append([EventDraft("note", None, "a")])
        await asyncio.gather(first.checkpoint(), second.checkpoint())
    result = await store_backend.verify()
    assert result.ok and (result.events, result.checkpoints) == (7, 7), result.describe()


async def test_a_limit_holds_across_two_writers(pair: tuple[Store, Store]) -> None:
    limit = 5
    query = CountQuery(
        agent_id="agt_1",
        policy="p",
        destination="d",
        fingerprint="f",
        since_hour=utc_iso(utc_now() - timedelta(hours=1)),
        since_day=utc_iso(utc_now() - timedelta(days=1)),
        rates=True,
    )

    def build_for(n: int) -> BuildIntent:
        def build(counts: Counts) -> tuple[Intent, list[EventDraft]]:
            assert counts.last_hour is not None
            status = Status.APPROVED if counts.last_hour < limit else Status.BLOCKED
            intent = _intent(f"int_{n:03d}", status)
            return intent, [EventDraft(status.value, intent.id, "system", "agt_1")]

        return build

    stores = list(pair) * 20
    recorded = await asyncio.gather(
        *(store.insert_decided_intent(query, build_for(n)) for n, store in enumerate(stores))
    )
    statuses = [intent.status for intent, _ in recorded]
    assert statuses.count(Status.APPROVED) == limit
    assert statuses.count(Status.BLOCKED) == len(stores) - limit
    stored = await pair[1].list_intents(status=Status.APPROVED, limit=100)
    assert len(stored) == limit


async def test_an_approved_intent_is_consumed_once_across_writers(
    pair: tuple[Store, Store],
) -> None:
    first, second = pair
    ids = [f"int_{n:02d}" for n in range(20)]
    for intent_id in ids:
        await first.insert_intent(_intent(intent_id, Status.APPROVED), [])

    async def consume(store: Store, intent_id: str) -> None:
        await store.transition_intent(
            intent_id,
            (Status.APPROVED,),
            Status.SUCCEEDED,
            {"completed_at": utc_iso()},
            [EventDraft("execution_succeeded", intent_id, "gate", "agt_1")],
        )

    outcomes = await asyncio.gather(
        *(consume(store, intent_id) for intent_id in ids for store in pair),
        return_exceptions=True,
    )
    for index, intent_id in enumerate(ids):
        pair_outcomes = outcomes[2 * index : 2 * index + 2]
        assert pair_outcomes.count(None) == 1, (intent_id, pair_outcomes)
        assert sum(isinstance(o, Conflict) for o in pair_outcomes) == 1, pair_outcomes
    events = await second.ledger_events()
    assert [event["type"] for event in events] == ["execution_succeeded"] * len(ids)


async def test_an_execution_order_is_issued_once_across_writers(
    pair: tuple[Store, Store],
) -> None:
    first, _ = pair
    await first.insert_intent(_intent("int_x", Status.APPROVED), [])
    now = utc_now()

    def order(execution_id: str) -> dict[str, object]:
        return {
            "id": execution_id,
            "intent_id": "int_x",
            "agent_id": "agt_1",
            "mode": "runner_exec",
            "status": "pending",
            "token_hash": "h",
            "created_at": utc_iso(now),
            "expires_at": utc_iso(now + timedelta(minutes=5)),
        }

    outcomes = await asyncio.gather(
        *(
            store.insert_execution(
                order(f"exe_{n}"), "int_x", [EventDraft("execution_requested", "int_x", "g")]
            )
            for n, store in enumerate(pair)
        ),
        return_exceptions=True,
    )
    assert outcomes.count(None) == 1 and sum(isinstance(o, Conflict) for o in outcomes) == 1
    assert len(await first.list_executions("int_x")) == 1


async def test_one_lease_holder_among_many_contenders(pair: tuple[Store, Store]) -> None:
    stores = list(pair) * 10
    taken = await asyncio.gather(
        *(store.try_lease("sweeper", f"holder-{n}", 1000.0, 30.0) for n, store in enumerate(stores))
    )
    assert taken.count(True) == 1
    winner = f"holder-{taken.index(True)}"
    for store in pair:
        assert await store.live_leases("sweeper", 1001.0) == {"sweeper": winner}


async def test_a_lease_is_renewed_by_its_holder_and_taken_over_when_expired(
    pair: tuple[Store, Store],
) -> None:
    first, second = pair
    assert await first.try_lease("sweeper", "a", 1000.0, 10.0)
    assert not await second.try_lease("sweeper", "b", 1005.0, 10.0)
    assert await first.try_lease("sweeper", "a", 1008.0, 10.0)  # renewed: until 1018
    assert not await second.try_lease("sweeper", "b", 1015.0, 10.0)  # past the first term
    assert await second.live_leases("swe", 1015.0) == {"sweeper": "a"}
    assert await second.live_leases("swe", 1018.0) == {}  # expired at 1018
    assert await second.try_lease("sweeper", "b", 1018.0, 10.0)
    assert not await first.try_lease("sweeper", "a", 1019.0, 10.0)
    await first.release_lease("sweeper", "a")  # not a's any more: nothing happens
    assert await first.live_leases("", 1019.0) == {"sweeper": "b"}
    await second.release_lease("sweeper", "b")
    assert await first.live_leases("", 1019.0) == {}
    assert await first.try_lease("sweeper", "a", 1019.0, 10.0)


async def test_live_leases_match_a_literal_prefix(pair: tuple[Store, Store]) -> None:
    first, second = pair
    for name in ("instance:1", "instance:2", "instanceX3", "a_b", "aXb"):
        assert await first.try_lease(name, name + "-holder", 1000.0, 60.0)
    assert await second.live_leases("instance:", 1000.0) == {
        "instance:1": "instance:1-holder",
        "instance:2": "instance:2-holder",
    }
    assert await second.live_leases("a_", 1000.0) == {"a_b": "a_b-holder"}  # "_" is literal
    assert await second.live_leases("%", 1000.0) == {}


async def test_dashboard_sessions_are_shared(pair: tuple[Store, Store]) -> None:
    first, second = pair

    def session(id_hash: str, key_hash: str, created: float) -> dict[str, object]:
        return {
            "id_hash": id_hash,
            "key_hash": key_hash,
            "principal_id": "admin",
            "csrf_token": "csrf-" + id_hash,
            "created": created,
            "last_seen": created,
        }

    await first.insert_session(session("s1", "k1", 1000.0))
    await first.insert_session(session("s2", "k1", 1100.0))
    await first.insert_session(session("s3", "k2", 1200.0))
    with pytest.raises(DuplicateKey):
        await second.insert_session(session("s1", "k9", 1300.0))
    assert await second.get_session("s1") == session("s1", "k1", 1000.0)
    await second.touch_session("s1", 1500.0)
    await first.touch_session("s1", 1400.0)  # a late, older touch never moves it back
    assert (await first.get_session("s1") or {})["last_seen"] == 1500.0
    await second.delete_sessions_of_key("k1")
    assert await first.get_session("s1") is None and await first.get_session("s2") is None
    await first.insert_session(session("s4", "k3", 1250.0))
    await second.prune_sessions(created_before=1225.0, seen_before=0.0)  # s3 too old
    assert await first.get_session("s3") is None
    await second.prune_sessions(created_before=0.0, seen_before=1300.0)  # s4 idle
    assert await first.get_session("s4") is None
    await first.insert_session(session("s5", "k3", 2000.0))
    await second.delete_session("s5")
    assert await first.get_session("s5") is None


async def test_a_wait_wakes_when_the_other_writer_appends(pair: tuple[Store, Store]) -> None:
    first, second = pair
    loop = asyncio.get_running_loop()
    head = await second.ledger_head_seq()
    for _ in range(3):
        waiter = asyncio.create_task(second.wait_for_ledger(head, 30.0))
        await asyncio.sleep(0.1)  # let it reach its wait; it must not return on its own
        assert not waiter.done()
        started = loop.time()
        await first.append([EventDraft("note", None, "a")])
        await asyncio.wait_for(waiter, 5.0)
        assert loop.time() - started < 5.0
        assert await second.ledger_head_seq() == head + 1
        head += 1


async def test_a_wait_returns_at_its_timeout_and_at_once_when_already_past(
    pair: tuple[Store, Store],
) -> None:
    first, second = pair
    loop = asyncio.get_running_loop()
    await first.append([EventDraft("note", None, "a")])
    started = loop.time()
    await second.wait_for_ledger(0, 30.0)  # already past: no wait
    assert loop.time() - started < 2.0
    started = loop.time()
    await second.wait_for_ledger(1, 0.3)
    assert 0.25 <= loop.time() - started < 3.0


async def test_each_store_knows_which_events_it_wrote(pair: tuple[Store, Store]) -> None:
    first, second = pair
    await first.append([EventDraft("note", None, "a"), EventDraft("note", None, "a")])
    await second.append([EventDraft("note", None, "b")])
    await first.append([EventDraft("note", None, "a")])
    assert [first.written_here(seq) for seq in range(1, 5)] == [True, True, False, True]
    assert [second.written_here(seq) for seq in range(1, 5)] == [False, False, True, False]
    assert not first.written_here(5)


async def test_a_failed_write_of_one_writer_leaves_the_other_untouched(
    pair: tuple[Store, Store], store_backend: StoreBackend
) -> None:
    first, second = pair
    await first.insert_intent(_intent("int_a"), [EventDraft("proposed", "int_a", "a")])
    duplicate = dataclasses.replace(_intent("int_a"))
    outcomes = await asyncio.gather(
        second.insert_intent(duplicate, [EventDraft("proposed", "int_a", "b")]),
        second.append([EventDraft("note", None, "b")]),
        first.append([EventDraft("note", None, "a")]),
        return_exceptions=True,
    )
    assert isinstance(outcomes[0], DuplicateKey) and outcomes[1:] == [None, None]
    await first.checkpoint()
    result = await store_backend.verify()
    assert result.ok and result.events == 3, result.describe()
