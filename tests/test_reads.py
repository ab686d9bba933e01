"""Agents read freely (issue 11): with `pass_reads: true` in the registry's default,
GET/HEAD/OPTIONS to a host with no entry are forwarded without an intent, and writes
(or a "read" that carries a body or a method override) are still refused."""

import time
from collections.abc import Iterator

import httpx
import pytest
from gate_process import GateProcess, running_gate
from upstreams import Upstream


@pytest.fixture(scope="module")
def gate_and_upstream(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[GateProcess, Upstream]]:
    root = tmp_path_factory.mktemp("reads")
    config = {"destinations.yaml": "default:\n  action: block\n  pass_reads: true\n"}
    with Upstream() as upstream, running_gate(root, policies={}, config=config) as gate:
        yield gate, upstream


def client(gate: GateProcess, agent: dict) -> httpx.Client:
    proxy = f"http://{agent['agentId']}:{agent['apiKey']}@127.0.0.1:{gate.proxy_port}"
    return httpx.Client(proxy=proxy, timeout=10)


def test_reads_to_an_unknown_host_pass_and_writes_do_not(
    gate_and_upstream: tuple[GateProcess, Upstream],
) -> None:
    gate, upstream = gate_and_upstream
    agent = gate.register(f"reader-{time.monotonic_ns()}")
    mark = f"r{time.monotonic_ns()}"
    url = f"http://localhost:{upstream.port}/{mark}"
    with client(gate, agent) as proxied:
        assert proxied.get(url, params={"q": "1"}).status_code == 200
        assert proxied.head(url).status_code == 200
        write = proxied.post(url, json={"x": 1})
        smuggled = proxied.request("GET", url, content=b'{"x": 1}')
        overridden = proxied.get(url, headers={"X-HTTP-Method-Override": "DELETE"})
    assert (write.status_code, write.json()["reason_code"]) == (403, "destination_unknown")
    assert (smuggled.status_code, smuggled.json()["reason_code"]) == (403, "not_a_read")
    assert overridden.status_code == 403
    received = [r.method for r in upstream.requests if mark in r.path]
    assert received == ["GET", "HEAD"]
    with gate.admin() as admin:
        intents = admin.get("/v1/intents").json()["intents"]
        metrics = admin.get("/metrics").text
    # Reads leave no intent; the refused "reads" and the write are on the ledger.
    assert all(i["agentId"] != agent["agentId"] or i["status"] == "blocked" for i in intents)
    assert 'outcome="passthrough"' in metrics
