"""The use-case layer against a real temporary SQLite store: limits hold when many
proposals arrive in the same instant (they share one group-commit transaction)."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gate_proxy.core.policy import parse_policy
from gate_proxy.keys import load_or_create_signer
from gate_proxy.principal import Principal, Role
from gate_proxy.service import GateService, ProposeInput
from gate_proxy.store.sqlite import SqliteStore

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
}
AGENT = Principal(id="agt_burst", name="burst", role=Role.AGENT)


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[GateService]:
    signer = load_or_create_signer(tmp_path)
    store = SqliteStore(tmp_path, signer)
    await store.open()
    gate = GateService(store, lambda: POLICIES, signer, "gate_sk_admin-" + "x" * 40)
    try:
        yield gate
    finally:
        await gate.close()
        await store.close()


async def statuses(service: GateService, proposals: list[ProposeInput]) -> list[str]:
    outcomes = await asyncio.gather(*(service.propose(AGENT, p) for p in proposals))
    return [outcome.intent["status"] for outcome in outcomes]


async def test_rate_limit_holds_for_a_burst(service: GateService) -> None:
    proposals = [ProposeInput("api.rate", "rate", payload=f'{{"i": {i}}}') for i in range(30)]
    result = await statuses(service, proposals)
    assert result.count("approved") == 5
    assert result.count("blocked") == 25


async def test_budget_holds_for_a_burst(service: GateService) -> None:
    proposals = [
        ProposeInput("api.budget", "budget", payload=f'{{"i": {i}}}', estimated_value_usd=30)
        for i in range(12)
    ]
    result = await statuses(service, proposals)
    assert result.count("approved") == 3  # 3 x $30 <= $100 < 4 x $30


async def test_duplicate_window_holds_for_a_burst(service: GateService) -> None:
    proposals = [ProposeInput("api.dedupe", "dedupe", payload='{"same": 1}') for _ in range(10)]
    result = await statuses(service, proposals)
    assert result.count("approved") == 1
    assert result.count("duplicate_blocked") == 9


async def test_the_ledger_records_every_decision_of_the_burst(service: GateService) -> None:
    proposals = [ProposeInput("api.rate", "rate", payload=f'{{"i": {i}}}') for i in range(8)]
    outcomes = await asyncio.gather(*(service.propose(AGENT, p) for p in proposals))
    for outcome in outcomes:
        events = await service.store.ledger_events(intent_id=outcome.intent["id"])
        assert [e["type"] for e in events][:2] == ["proposed", "policy_checked"]
