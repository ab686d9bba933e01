"""Work nobody consumes is skipped, and shared reads answer what a read of one's own would:
the event bus's subscriptions (events, active, concerns), the outcome that re-reads its
intent only for an audience, one waiter for several keys, and SharedReads (one read per
key per loop tick, started after every caller asked), against a real temporary store."""

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from gate_proxy.core.intents import Event, Intent, Status
from gate_proxy.errors import NotPermitted
from gate_proxy.keys import load_or_create_signer
from gate_proxy.loaders.policy_file import parse_policy
from gate_proxy.principal import Principal, Role
from gate_proxy.store.sqlite import SqliteStore
from gate_proxy.usecases import Proposal as ProposeInput
from gate_proxy.usecases import UseCases
from gate_proxy.usecases.events import EventBus, SharedReads

ADMIN_KEY = "gate_sk_admin-" + "x" * 40
POLICIES = {
    "auto": parse_policy("id: auto\nrequire_approval: never\n", "auto.yaml"),
    "review": parse_policy("id: review\nrequire_approval: always\n", "review.yaml"),
}
REVIEWER = Principal(id="rev_1", name="rev1", role=Role.REVIEWER)


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[UseCases]:
    signer = load_or_create_signer(tmp_path)
    store = SqliteStore(tmp_path, signer)
    await store.open()
    usecases = UseCases.build(store, lambda: POLICIES, signer, ADMIN_KEY)
    try:
        yield usecases
    finally:
        await usecases.close()
        await store.close()


async def agent(service: UseCases) -> Principal:
    admin = await service.agents.authenticate(ADMIN_KEY)
    registered = await service.agents.register(admin, {"name": "bot"})
    return await service.agents.authenticate(registered["apiKey"])


def counting(calls: list[str], name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    """The real method, counted (a read is what is being saved)."""

    async def call(*args: Any) -> Any:
        calls.append(name)
        return await method(*args)

    return call


async def executed(service: UseCases, caller: Principal) -> Intent:
    outcome = await service.proposals.propose(
        caller,
        ProposeInput("crm.ok", "auto", source="proxy", method="POST", execute_if_approved=True),
    )
    assert outcome.intent is not None and outcome.intent.status is Status.SCHEDULED
    return outcome.intent


async def settle() -> None:
    for _ in range(5):  # listeners and shared reads run a few loop iterations later
        await asyncio.sleep(0)
    await asyncio.sleep(0.01)


# -- the outcome of an execution ------------------------------------------------------------


async def test_an_outcome_nobody_listens_to_reads_nothing_back(
    service: UseCases, monkeypatch: pytest.MonkeyPatch
) -> None:
    heard: list[str] = []

    async def dashboard(event: str, intent: Intent, actor: str) -> None:
        heard.append(event)

    streams_open = False
    service.events.subscribe(dashboard, active=lambda: streams_open)
    caller = await agent(service)
    intent = await executed(service, caller)
    reads: list[str] = []
    store = service.store
    monkeypatch.setattr(store, "get_intent", counting(reads, "get_intent", store.get_intent))
    await service.executions.record_outcome(intent.id, caller.id, True, {"status_code": 200})
    await settle()
    assert reads == [] and heard == []
    assert (await store.get_intent(intent.id)).status is Status.SUCCEEDED  # type: ignore[union-attr]

    streams_open = True  # a dashboard stream opened: now it is told, with the intent
    second = await executed(service, caller)
    reads.clear()
    await service.executions.record_outcome(second.id, caller.id, True, {"status_code": 200})
    await settle()
    assert reads == ["get_intent"]
    assert heard == [Event.PROPOSED, Event.EXECUTION_SUCCEEDED]


async def test_a_listener_is_told_only_of_intents_that_concern_it(service: UseCases) -> None:
    told: list[str] = []
    asked: list[str] = []
    caller = await agent(service)
    first, second = await executed(service, caller), await executed(service, caller)

    async def webhooks(event: str, intent: Intent, actor: str) -> None:
        told.append(intent.id)

    async def concerns(intent_id: str) -> bool:
        asked.append(intent_id)
        return intent_id == second.id

    service.events.subscribe(
        webhooks, events={Event.EXECUTION_SUCCEEDED, Event.EXECUTION_FAILED}, concerns=concerns
    )
    await service.executions.record_outcome(first.id, caller.id, True, {})
    await service.executions.record_outcome(second.id, caller.id, False, {})
    await settle()
    assert asked == [first.id, second.id] and told == [second.id]


async def test_a_concerns_check_that_fails_tells_the_listener_anyway(service: UseCases) -> None:
    told: list[str] = []
    caller = await agent(service)
    intent = await executed(service, caller)

    async def listener(event: str, intent: Intent, actor: str) -> None:
        told.append(event)

    async def broken(intent_id: str) -> bool:
        raise OSError("store unavailable")

    service.events.subscribe(listener, concerns=broken)
    await service.executions.record_outcome(intent.id, caller.id, True, {})
    await settle()
    assert told == [Event.EXECUTION_SUCCEEDED]  # when unsure, tell


async def test_a_listener_hears_only_the_events_it_subscribed_to(service: UseCases) -> None:
    heard: list[tuple[str, str]] = []

    async def slack(event: str, intent: Intent, actor: str) -> None:
        heard.append((event, intent.status))

    service.events.subscribe(slack, events=(Event.PROPOSED,))
    caller = await agent(service)
    pending = await service.proposals.propose(caller, ProposeInput("bank.wire", "review"))
    assert pending.intent is not None
    await service.review.approve(REVIEWER, pending.intent.id)
    await settle()
    assert heard == [(Event.PROPOSED, Status.PENDING)]
    assert not service.events.listening(Event.APPROVED)


# -- waiters --------------------------------------------------------------------------------


async def test_one_waiter_for_two_keys_is_woken_once_and_forgotten_under_both() -> None:
    bus = EventBus()
    woken = asyncio.get_running_loop().create_future()
    bus.wait_on(woken, "int_1", "agent:agt_1")
    assert bus.waiting() == 1
    bus.notify("agent:agt_1", "agent_revoked")
    bus.notify("int_1", "approved")  # already woken: nothing more
    assert woken.result() == "agent_revoked"
    await settle()
    assert bus.waiting() == 0 and not bus.watching_remote


async def test_a_transition_wakes_its_waiters_with_the_intent_as_committed(
    service: UseCases,
) -> None:
    caller = await agent(service)
    pending = await service.proposals.propose(caller, ProposeInput("bank.wire", "review"))
    assert pending.intent is not None
    waiter = service.events.wait(pending.intent.id)
    approval = await service.review.approve(REVIEWER, pending.intent.id)
    woken = await asyncio.wait_for(waiter, 5)
    assert isinstance(woken, Intent)
    assert woken == approval.intent == await service.store.get_intent(pending.intent.id)


async def test_a_bus_can_still_be_told_a_status_without_an_intent() -> None:
    bus = EventBus()
    waiter = bus.wait("int_1")
    bus.notify("int_1", "execution_failed")
    assert waiter.result() == "execution_failed"


# -- shared reads ---------------------------------------------------------------------------


async def test_callers_in_one_tick_share_one_read_that_starts_after_they_asked() -> None:
    log: list[str] = []
    state = {"value": 1}

    async def read(key: str) -> int:
        log.append(f"read {key}")
        return state["value"]

    shared: SharedReads[str, int] = SharedReads(read)
    first = asyncio.ensure_future(shared("agent"))
    second = asyncio.ensure_future(shared("agent"))
    other = asyncio.ensure_future(shared("other"))
    await asyncio.sleep(0)
    state["value"] = 2  # committed after the callers asked, before the read started
    assert await asyncio.gather(first, second, other) == [2, 2, 2]
    assert sorted(log) == ["read agent", "read other"]
    # A later caller never gets an answer read before it asked.
    state["value"] = 3
    assert await shared("agent") == 3
    assert log.count("read agent") == 2


async def test_a_failed_shared_read_fails_every_caller_that_shares_it() -> None:
    async def read(agent_id: str) -> None:
        raise NotPermitted("agent_revoked", "the agent is revoked")

    shared: SharedReads[str, None] = SharedReads(read)
    results = await asyncio.gather(shared("a"), shared("a"), return_exceptions=True)
    assert all(isinstance(r, NotPermitted) for r in results)


async def test_the_claim_reads_the_agent_once_for_many_releases(
    service: UseCases, monkeypatch: pytest.MonkeyPatch
) -> None:
    caller = await agent(service)
    pending = [
        (
            await service.proposals.propose(
                caller, ProposeInput("bank.wire", "review", payload=str(i))
            )
        )
        for i in range(20)
    ]
    approved = [
        (await service.review.approve(REVIEWER, p.intent.id)).intent  # type: ignore[union-attr]
        for p in pending
    ]
    reads: list[str] = []
    store = service.store
    monkeypatch.setattr(store, "get_agent", counting(reads, "get_agent", store.get_agent))
    await asyncio.gather(*(service.executions.claim(i, caller.name) for i in approved))
    assert len(reads) == 1
    for intent in approved:
        assert (await store.get_intent(intent.id)).status is Status.SCHEDULED  # type: ignore[union-attr]
    # A revocation committed before a claim asks is seen by that claim.
    admin = await service.agents.authenticate(ADMIN_KEY)
    another = await service.proposals.propose(caller, ProposeInput("bank.wire", "review"))
    again = (await service.review.approve(REVIEWER, another.intent.id)).intent  # type: ignore[union-attr]
    await service.agents.set_status(admin, caller.id, "revoked")
    with pytest.raises(NotPermitted):
        await service.executions.claim(again, caller.name)


async def test_a_review_tells_a_listener_only_of_intents_that_concern_it(
    service: UseCases,
) -> None:
    told: list[str] = []
    caller = await agent(service)
    first = await service.proposals.propose(caller, ProposeInput("bank.wire", "review"))
    second = await service.proposals.propose(caller, ProposeInput("bank.wire", "review", "2"))
    assert first.intent is not None and second.intent is not None
    wanted = second.intent.id

    async def webhooks(event: str, intent: Intent, actor: str) -> None:
        told.append(intent.id)

    async def concerns(intent_id: str) -> bool:
        return intent_id == wanted

    service.events.subscribe(webhooks, events={Event.APPROVED}, concerns=concerns)
    await service.review.approve(REVIEWER, first.intent.id)
    await service.review.approve(REVIEWER, second.intent.id)
    await settle()
    assert told == [wanted]
