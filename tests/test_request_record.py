"""One record per request (issue 10, item 3): every request the proxy answers writes
exactly one canonical ``decision`` line, from one place, whatever the outcome — and a
refusal after the decision (egress) does not write a second one."""

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from gate_process import GateProcess, running_gate
from rawhttp import proxy_auth, raw_proxy, read_response
from upstreams import Upstream

POLICIES = {
    "auto": "id: auto\nrequire_approval: never\n",
    "review": "id: review\nrequire_approval: always\n",
    "terms": "id: terms\nblock_if_terms: [sue]\nrequire_approval: never\n",
}


def registry(port: int) -> str:
    return (
        f'default:\n  action: block\n"localhost:{port}":\n  paths:\n'
        "    /ok: {method: POST, destination: crm.ok, policy: auto}\n"
        "    /review: {method: POST, destination: crm.review, policy: review}\n"
        "    /terms: {method: POST, destination: crm.terms, policy: terms}\n"
        "    /read: {method: GET, passthrough: true}\n"
        '"blocked.example":\n  block: true\n'
        '"127.0.0.2":\n  paths:\n'
        "    /: {method: POST, destination: internal.write, policy: auto}\n"
        '"metadata.example":\n  paths:\n'
        "    /: {method: POST, destination: internal.dns, policy: auto}\n"
    )


class Env:
    def __init__(self, gate: GateProcess, upstream: Upstream) -> None:
        self.gate, self.upstream = gate, upstream
        self.agent = gate.register(f"record-{time.monotonic_ns()}")

    def decisions(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.gate.logs().splitlines():
            if '"event": "decision"' in line:
                lines.append(json.loads(line))
        return lines

    def client(self) -> httpx.Client:
        agent = self.agent
        proxy = f"http://{agent['agentId']}:{agent['apiKey']}@127.0.0.1:{self.gate.proxy_port}"
        return httpx.Client(proxy=proxy, timeout=10)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("record")
    with Upstream() as upstream:
        # 127.0.0.2 is outside egress_allow and metadata.example resolves nowhere: both are
        # refused by the egress check after the decision.
        config = {
            "destinations.yaml": registry(upstream.port),
            "gate.yaml": 'egress_allow: ["127.0.0.1/32", localhost]\n',
        }
        with running_gate(root, policies=POLICIES, config=config) as gate:
            yield Env(gate, upstream)


def one_record(env: Env, send: Any) -> dict[str, Any]:
    before = len(env.decisions())
    send()
    for _ in range(100):  # the line is written before the answer; allow the log a moment
        after = env.decisions()
        if len(after) > before:
            break
        time.sleep(0.02)
    new = env.decisions()[before:]
    assert len(new) == 1, new
    return new[0]


def test_each_outcome_writes_exactly_one_record(env: Env) -> None:
    base = f"http://localhost:{env.upstream.port}"
    with env.client() as client:
        forwarded = one_record(env, lambda: client.post(f"{base}/ok", json={"a": 1}))
        blocked = one_record(env, lambda: client.post(f"{base}/terms", json={"a": "sue"}))
        pending = one_record(env, lambda: client.post(f"{base}/review", json={"a": 1}))
        read = one_record(env, lambda: client.get(f"{base}/read"))
        unknown = one_record(env, lambda: client.post(f"{base}/nowhere", json={}))
        egress = one_record(env, lambda: client.post("http://127.0.0.2/", json={}))
        unresolvable = one_record(env, lambda: client.post("http://metadata.example/", json={}))
    assert (forwarded["decision"], forwarded["destination"]) == ("approved", "crm.ok")
    assert forwarded["status"] == 200 and forwarded["intent_id"]
    assert (blocked["decision"], blocked["reason"]) == ("blocked", "blocked_term_detected")
    assert pending["decision"] == "pending_approval" and pending["status"] == 202
    assert read["decision"] == "passthrough" and read["intent_id"] is None
    assert unknown["decision"] == "blocked" and unknown["reason"] == "destination_unknown"
    # Decided (approved), then refused by the egress check: one line, saying so.
    assert egress["decision"] == "blocked"
    assert egress["reason"].startswith("egress_address_denied") and egress["status"] == 403
    # A name that does not resolve is not a policy refusal: an error, nothing sent.
    assert (unresolvable["decision"], unresolvable["reason"]) == ("error", "upstream_unresolvable")
    assert unresolvable["status"] == 502


def test_refusals_before_any_decision_write_one_record_too(env: Env) -> None:
    with httpx.Client(proxy=f"http://127.0.0.1:{env.gate.proxy_port}", timeout=10) as anonymous:
        unauthenticated = one_record(
            env, lambda: anonymous.post(f"http://localhost:{env.upstream.port}/ok", json={})
        )
    assert unauthenticated["status"] == 407 and unauthenticated["agent"] == "-"

    def refused_connect() -> None:
        with raw_proxy(env.gate.proxy_port) as sock:
            sock.sendall(
                b"CONNECT blocked.example:443 HTTP/1.1\r\nHost: blocked.example:443\r\n"
                + proxy_auth(env.agent)
                + b"\r\n"
            )
            assert read_response(sock).status == 403

    connect = one_record(env, refused_connect)
    assert connect["source"] == "connect" and connect["decision"] == "blocked"
    assert connect["agent"] == env.agent["name"]

    def mismatched() -> None:
        with raw_proxy(env.gate.proxy_port) as sock:
            sock.sendall(
                f"POST http://localhost:{env.upstream.port}/ok HTTP/1.1\r\n".encode()
                + b"Host: blocked.example\r\n"
                + proxy_auth(env.agent)
                + b"Content-Length: 0\r\n\r\n"
            )
            assert read_response(sock).status == 421

    authority = one_record(env, mismatched)
    assert authority["reason"] == "authority_mismatch"
