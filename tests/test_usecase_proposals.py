"""The proposals use case against a real temporary SQLite store: limits hold when many
proposals arrive in the same instant (they share one group-commit transaction), and the
windows follow the injected clock; and the intent it records travels as a typed value
through review, the listeners and expiry."""

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from gate_proxy.clock import ManualClock, use_clock, utc_iso, utc_now
from gate_proxy.core.intents import Intent, Status
from gate_proxy.keys import load_or_create_signer
from gate_proxy.loaders.policy_file import parse_policy
from gate_proxy.principal import Principal, Role
from gate_proxy.store.sqlite import SqliteStore
from gate_proxy.usecases import Proposal as ProposeInput
from gate_proxy.usecases import UseCases

POLICIES = {
    "rate": parse_policy(
        "id: rate\nrequire_approval: never\nrate_limits: {per_agent_per_hour: 5}\n", "rate.yaml"
    ),
    "budget": parse_policy(
        "id: budget\nrequire_approval: never\n"
        "budgets: {per_agent: {hourly_max_value_usd: 100}, on_exceed: block}\n",
        "budget.yaml",
    ),
    "dedupe": parse_policy(
        "id: dedupe\nrequire_approval: never\ndedupe_window_seconds: 60\n", "dedupe.yaml"
    ),
    "two": parse_policy(
        "id: two\nrequire_approval: always\nrequire_approvals: 2\nexpiry_minutes: 30\n",
        "two.yaml",
    ),
}
AGENT = Principal(id="agt_burst", name="burst", role=Role.AGENT)
REVIEWERS = [Principal(id=f"rev_{n}", name=f"rev{n}", role=Role.REVIEWER) for n in (1, 2)]


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[UseCases]:
    signer = load_or_create_signer(tmp_path)
    store = SqliteStore(tmp_path, signer)
    await store.open()
    usecases = UseCases.build(store, lambda: POLICIES, signer, "gate_sk_admin-" + "x" * 40)
    try:
        yield usecases
    finally:
        await usecases.close()
        await store.close()


async def statuses(service: UseCases, proposals: list[ProposeInput]) -> list[str]:
    outcomes = await asyncio.gather(*(service.proposals.propose(AGENT, p) for p in proposals))
    return [outcome.verdict.status for outcome in outcomes]


async def test_rate_limit_holds_for_a_burst(service: UseCases) -> None:
    proposals = [ProposeInput("api.rate", "rate", payload=f'{{"i": {i}}}') for i in range(30)]
    result = await statuses(service, proposals)
    assert result.count("approved") == 5
    assert result.count("blocked") == 25


async def test_budget_holds_for_a_burst(service: UseCases) -> None:
    proposals = [
        ProposeInput("api.budget", "budget", payload=f'{{"i": {i}}}', estimated_value_usd=30)
        for i in range(12)
    ]
    result = await statuses(service, proposals)
    assert result.count("approved") == 3  # 3 x $30 <= $100 < 4 x $30


async def test_duplicate_window_holds_for_a_burst(service: UseCases) -> None:
    proposals = [ProposeInput("api.dedupe", "dedupe", payload='{"same": 1}') for _ in range(10)]
    result = await statuses(service, proposals)
    assert result.count("approved") == 1
    assert result.count("duplicate_blocked") == 9


async def test_the_ledger_records_every_decision_of_the_burst(service: UseCases) -> None:
    proposals = [ProposeInput("api.rate", "rate", payload=f'{{"i": {i}}}') for i in range(8)]
    outcomes = await asyncio.gather(*(service.proposals.propose(AGENT, p) for p in proposals))
    for outcome in outcomes:
        assert outcome.intent is not None
        events = await service.store.ledger_events(intent_id=outcome.intent.id)
        assert [e["type"] for e in events][:2] == ["proposed", "policy_checked"]


async def test_a_rate_window_slides_with_the_clock(service: UseCases) -> None:
    with use_clock(ManualClock()) as clock:
        first = [ProposeInput("api.rate", "rate", payload=f'{{"a": {i}}}') for i in range(6)]
        assert (await statuses(service, first)).count("approved") == 5
        clock.advance(3601)  # an hour later the window is empty again
        later = [ProposeInput("api.rate", "rate", payload=f'{{"b": {i}}}') for i in range(6)]
        assert (await statuses(service, later)).count("approved") == 5


async def test_a_passthrough_is_decided_without_a_record(service: UseCases) -> None:
    outcome = await service.proposals.propose(
        AGENT, ProposeInput("api.read", "-", payload=None, passthrough=True, source="proxy")
    )
    assert outcome.intent is None
    assert outcome.verdict.status == "passthrough"
    assert await service.store.list_intents() == []


async def test_an_intent_travels_typed_through_review_and_the_listeners(
    service: UseCases,
) -> None:
    heard: list[tuple[str, Intent]] = []

    async def listener(event: str, intent: Intent, actor: str) -> None:
        heard.append((event, intent))

    service.events.subscribe(listener)
    proposed = await service.proposals.propose(AGENT, ProposeInput("bank.wire", "two"))
    assert proposed.intent is not None and proposed.intent.status is Status.PENDING
    intent_id = proposed.intent.id
    first = await service.review.approve(REVIEWERS[0], intent_id, note="one")
    assert first.approvals == 1 and first.intent.status is Status.PENDING  # 1 of 2
    second = await service.review.approve(REVIEWERS[1], intent_id, note="two")
    assert second.approvals is None
    assert second.intent == await service.store.get_intent(intent_id)  # what was recorded
    assert (second.intent.status, second.intent.decided_by) == (Status.APPROVED, "rev_2")
    for _ in range(100):  # listeners run as background tasks
        if len(heard) == 2:
            break
        await asyncio.sleep(0.01)
    assert [(event, intent.status) for event, intent in heard] == [
        ("proposed", Status.PENDING),
        ("approved", Status.APPROVED),
    ]
    assert heard[1][1] == second.intent


async def test_an_approval_past_its_deadline_reads_back_expired(service: UseCases) -> None:
    with use_clock(ManualClock()) as clock:
        proposed = await service.proposals.propose(AGENT, ProposeInput("bank.wire", "two"))
        assert proposed.intent is not None and proposed.intent.expires_at is not None
        assert proposed.intent.expires_at == utc_iso(utc_now() + timedelta(minutes=30))
        clock.advance(31 * 60)
        read = await service.review.get_intent(REVIEWERS[0], proposed.intent.id)
    assert read.status is Status.EXPIRED and read.decided_by == "system"
    assert read == await service.store.get_intent(proposed.intent.id)


async def test_the_sweeper_expires_on_time_by_the_injected_clock(service: UseCases) -> None:
    review = parse_policy("id: slow\nrequire_approval: always\nexpiry_minutes: 10\n", "s.yaml")
    POLICIES["slow"] = review
    try:
        with use_clock(ManualClock()) as clock:
            outcome = await service.proposals.propose(AGENT, ProposeInput("d.slow", "slow", "{}"))
            assert outcome.intent is not None
            # The sweeper wakes at least every minute, and exactly at the deadline...
            assert await service.expiry.sweep() == 60.0
            clock.advance(599)
            assert 0.99 < await service.expiry.sweep() <= 1.01
            assert (await service.store.get_intent(outcome.intent.id)).status == "pending_approval"
            clock.advance(2)
            # ...and then expires the intent, without anyone reading it first.
            assert await service.expiry.sweep() == 60.0  # nothing left: the idle wake-up
            expired = await service.store.get_intent(outcome.intent.id)
            assert expired is not None and expired.status == "expired"
    finally:
        del POLICIES["slow"]
