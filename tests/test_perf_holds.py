"""Held requests are cheap: no task of their own, one waiter each, one watcher for all (which
also keeps their connections from the idle watchdog), and a release woken by the approval
itself claims without reading the intent back. In process, through the gate's pipeline,
against real use cases over a temporary SQLite store."""

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from mitmproxy import http
from mitmproxy.test import taddons
from test_addons_inprocess import ADMIN_KEY, POLICIES, REGISTRY, flow_for

from gate_proxy.core.intents import Status
from gate_proxy.keys import load_or_create_signer
from gate_proxy.loaders.snapshot import ConfigSnapshot
from gate_proxy.metrics import GateMetrics
from gate_proxy.principal import Principal, Role
from gate_proxy.proxy.addons import GatePipeline, gate_steps
from gate_proxy.proxy.flowstate import state_of
from gate_proxy.proxy.runtime import HeldRequest, HeldRequests, ProxyRuntime
from gate_proxy.settings import Settings
from gate_proxy.store.sqlite import SqliteStore
from gate_proxy.usecases import UseCases

REVIEWER = Principal(id="rev_1", name="rev1", role=Role.REVIEWER)
HELD = 50


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[ProxyRuntime]:
    signer = load_or_create_signer(tmp_path)
    store = SqliteStore(tmp_path, signer)
    await store.open()
    usecases = UseCases.build(store, lambda: POLICIES, signer, ADMIN_KEY, metrics=GateMetrics())
    snapshot = ConfigSnapshot(REGISTRY, POLICIES, None, 1)
    # The test host api.example resolves nowhere: the egress check is tested elsewhere.
    runtime = ProxyRuntime(usecases, lambda: snapshot, Settings(egress_check=False))
    try:
        yield runtime
    finally:
        await runtime.held.close()
        await usecases.close()
        await store.close()


async def wait_until(condition: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def hold_many(runtime: ProxyRuntime, gate: GatePipeline) -> list[asyncio.Task[Any]]:
    admin = await runtime.usecases.agents.authenticate(ADMIN_KEY)
    agent = await runtime.usecases.agents.register(admin, {"name": "bot"})

    async def one(index: int) -> http.HTTPFlow:
        wait = {"X-Gate-Wait": "true"}
        flow = flow_for(agent, "POST", "/review", b'{"n": %d}' % index, headers=wait)
        flow.client_conn.id = f"client-{index}"
        await gate.requestheaders(flow)
        await gate.request(flow)
        return flow

    return [asyncio.ensure_future(one(index)) for index in range(HELD)]


async def test_holding_requests_costs_no_task_of_their_own(
    runtime: ProxyRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    with taddons.context():
        gate = GatePipeline(gate_steps(runtime))
        before = len(asyncio.all_tasks())
        flows = await hold_many(runtime, gate)
        await wait_until(lambda: len(runtime.held) == HELD)
        # The hook tasks themselves (mitmproxy's, here the test's) and one watcher for all.
        assert len(asyncio.all_tasks()) - before <= HELD + 1
        assert runtime.usecases.events.waiting() == HELD

        listing = runtime.held.visible_to(REVIEWER)
        reads: list[str] = []
        store = runtime.usecases.store
        real = store.get_intent

        async def counted(intent_id: str) -> Any:
            reads.append(Path(sys._getframe(1).f_code.co_filename).name)  # who reads it
            return await real(intent_id)

        monkeypatch.setattr(store, "get_intent", counted)
        for held in listing:
            await runtime.usecases.review.approve(REVIEWER, held["intentId"])
        done = await asyncio.wait_for(asyncio.gather(*flows), 30)
    # Released by the approval itself: claimed, on its way upstream, nothing read back.
    assert reads and "approvals.py" not in reads  # (the reviewer's approvals read theirs)
    assert {state_of(flow).outcome for flow in done} == {"approved"}
    assert all(flow.response is None for flow in done)  # nothing answered in its place
    for held in listing:
        intent = await store.get_intent(held["intentId"])
        assert intent is not None and intent.status is Status.SCHEDULED
    assert len(runtime.held) == 0 and runtime.usecases.events.waiting() == 0


class Watchdog:
    """Stands in for mitmproxy's TimeoutWatchdog: what HeldRequests touches of it."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.activity = 0

    def register_activity(self) -> None:
        self.activity += 1


async def test_one_watcher_keeps_every_held_connection_from_the_idle_watchdog() -> None:
    held = HeldRequests()
    dogs = [Watchdog(timeout=0.3) for _ in range(3)]
    tokens = [
        held.add(
            HeldRequest(
                f"int_{n}", "agt_1", "bot", "d", "POST", "u", f"c{n}", "t", "t", watchdog=dog
            )
        )
        for n, dog in enumerate(dogs)
    ]
    assert all(dog.activity == 1 for dog in dogs)  # touched when the hold starts
    await wait_until(lambda: all(dog.activity >= 4 for dog in dogs), seconds=5)
    held.remove(tokens[0])
    assert len(held) == 2
    await held.close()


async def test_a_client_that_leaves_ends_its_hold_at_once() -> None:
    held = HeldRequests()
    wake = asyncio.get_running_loop().create_future()
    request = HeldRequest("int_1", "agt_1", "bot", "d", "POST", "u", "c1", "t", "t", wake=wake)
    held.add(request)
    held.client_gone("c1")
    assert request.client_left and wake.result() == "client_left"
    await held.close()
