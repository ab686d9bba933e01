"""A limit holds under concurrency (issue 9, item 2).

Rate limits, budgets and the duplicate window are counted in the same store transaction
that records the intent, so N requests sent at once can never exceed a limit. Each test
fires a burst of concurrent writes at the real gate (through the forward proxy and through
the API) and counts what the upstream received.
"""

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from gate_process import GateProcess, running_gate
from upstreams import Upstream

POLICIES = {
    "rate": "id: rate\nrequire_approval: never\nrate_limits: {per_agent_per_hour: 5}\n",
    "budget": (
        "id: budget\nrequire_approval: never\n"
        "budgets:\n  per_agent: {hourly_max_value_usd: 100}\n"
        "  value_path: amount\n  on_exceed: block\n"
    ),
    "dedupe": "id: dedupe\nrequire_approval: never\ndedupe_window_seconds: 60\n",
}


def registry(port: int) -> str:
    return f"""
default:
  action: block
"localhost:{port}":
  paths:
    /rate: {{method: POST, destination: api.rate, policy: rate}}
    /budget: {{method: POST, destination: api.budget, policy: budget}}
    /dedupe: {{method: POST, destination: api.dedupe, policy: dedupe}}
"""


class Env:
    def __init__(self, gate: GateProcess, upstream: Upstream) -> None:
        self.gate, self.upstream = gate, upstream

    def agent(self) -> dict[str, Any]:
        return self.gate.register(f"burst-{time.monotonic_ns()}")

    def proxied(self, agent: dict[str, Any]) -> httpx.Client:
        proxy = f"http://{agent['agentId']}:{agent['apiKey']}@127.0.0.1:{self.gate.proxy_port}"
        return httpx.Client(proxy=proxy, timeout=30)

    def url(self, path: str) -> str:
        return f"http://localhost:{self.upstream.port}{path}"

    def received(self, mark: str) -> list[Any]:
        return [r for r in self.upstream.requests if mark.encode() in r.body]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("limits")
    with Upstream() as upstream:
        config = {"destinations.yaml": registry(upstream.port)}
        with running_gate(root, policies=POLICIES, config=config) as gate:
            yield Env(gate, upstream)


def burst(count: int, send: Callable[[int], int]) -> list[int]:
    """Call send(i) from `count` threads released at the same moment; their statuses."""
    barrier = threading.Barrier(count)
    statuses: list[int] = [0] * count

    def run(i: int) -> None:
        barrier.wait(timeout=30)
        statuses[i] = send(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return statuses


def test_rate_limit_holds_for_a_burst_through_the_proxy(env: Env) -> None:
    agent = env.agent()
    mark = f"rate-{time.monotonic_ns()}"

    def send(i: int) -> int:
        with env.proxied(agent) as client:
            return client.post(env.url("/rate"), json={"m": mark, "i": i}).status_code

    statuses = burst(30, send)
    assert statuses.count(200) == 5, statuses
    assert statuses.count(403) == 25, statuses
    assert len(env.received(mark)) == 5


def test_budget_holds_for_a_burst_through_the_proxy(env: Env) -> None:
    agent = env.agent()
    mark = f"budget-{time.monotonic_ns()}"

    def send(i: int) -> int:
        with env.proxied(agent) as client:
            body = {"m": mark, "i": i, "amount": 25}
            return client.post(env.url("/budget"), json=body).status_code

    statuses = burst(12, send)
    assert statuses.count(200) == 4, statuses  # 4 x $25 = the $100 budget
    delivered = env.received(mark)
    assert sum(json.loads(r.body)["amount"] for r in delivered) == 100


def test_duplicate_window_holds_for_identical_concurrent_writes(env: Env) -> None:
    agent = env.agent()
    mark = f"dedupe-{time.monotonic_ns()}"

    def send(i: int) -> int:
        with env.proxied(agent) as client:
            return client.post(env.url("/dedupe"), json={"m": mark}).status_code

    statuses = burst(10, send)
    assert statuses.count(200) == 1, statuses
    assert statuses.count(409) == 9, statuses
    assert len(env.received(mark)) == 1


def test_rate_limit_holds_for_a_burst_through_the_api(env: Env) -> None:
    agent = env.agent()

    def send(i: int) -> int:
        with env.gate.client(agent["apiKey"]) as client:
            response = client.post(
                "/v1/intents",
                json={"destination": "api.rate", "policy": "rate", "payload": f'{{"i": {i}}}'},
            )
            assert response.status_code in (200, 201), response.text
            return 200 if response.json()["status"] == "approved" else 403

    statuses = burst(20, send)
    assert statuses.count(200) == 5, statuses
