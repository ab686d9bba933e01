"""An approval covers one live request, for one live agent, within its window
(issue 9, items 8, 9, 12 and 19).

- An approved intent not executed before its deadline expires; a late retry is refused.
- A revoked or suspended agent's held request is not executed, and its intents cannot
  be approved.
- A client that leaves while its request is held gets nothing sent on its behalf.
- After a crash, executions left in flight are reconciled to a visible state.

Time moves with the gate's clock file (GATE_CLOCK_OFFSET_FILE), never by sleeping.
"""

import json
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gate_process import GateProcess, running_gate
from rawhttp import proxy_auth, read_response
from upstreams import Upstream, slow

POLICIES = {"finance": "id: finance\nrequire_approval: always\nexpiry_minutes: 15\n"}
MINUTE = 60.0


def registry(port: int) -> str:
    return (
        f'default:\n  action: block\n"localhost:{port}":\n  paths:\n'
        "    /v1/refunds: {method: POST, destination: stripe.refund, policy: finance}\n"
        "    /v1/slow: {method: POST, destination: stripe.slow, policy: finance}\n"
    )


class Env:
    def __init__(self, gate: GateProcess, upstream: Upstream) -> None:
        self.gate, self.upstream = gate, upstream

    def agent(self) -> dict[str, Any]:
        return self.gate.register(f"life-{time.monotonic_ns()}")

    def client(self, agent: dict[str, Any], **kwargs: Any) -> httpx.Client:
        proxy = f"http://{agent['agentId']}:{agent['apiKey']}@127.0.0.1:{self.gate.proxy_port}"
        return httpx.Client(proxy=proxy, timeout=kwargs.pop("timeout", 10), **kwargs)

    def url(self, path: str) -> str:
        return f"http://localhost:{self.upstream.port}{path}"

    def received(self, mark: str) -> list[Any]:
        return [r for r in self.upstream.requests if mark.encode() in r.body]

    def admin_post(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        with self.gate.admin() as admin:
            return admin.post(path, json=body or {})

    def intent(self, intent_id: str) -> dict[str, Any]:
        with self.gate.admin() as admin:
            return admin.get(f"/v1/intents/{intent_id}").json()

    def held(self) -> list[dict[str, Any]]:
        with self.gate.admin() as admin:
            return admin.get("/v1/proxy/held").json()["held"]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("lifecycle")
    with Upstream(routes={"/v1/slow": slow(60)}) as upstream:
        config = {"destinations.yaml": registry(upstream.port)}
        with running_gate(root, policies=POLICIES, config=config) as gate:
            yield Env(gate, upstream)


def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def propose(env: Env, agent: dict[str, Any], mark: str) -> str:
    with env.client(agent) as client:
        response = client.post(
            env.url("/v1/refunds"),
            content=json.dumps({"m": mark}),
            headers={"Content-Type": "application/json"},
        )
    assert response.status_code == 202, response.text
    return response.headers["X-Gate-Intent-Id"]


def retry(env: Env, agent: dict[str, Any], mark: str, intent_id: str) -> httpx.Response:
    # The same bytes as every proposal in this file (json.dumps with default separators).
    with env.client(agent) as client:
        return client.post(
            env.url("/v1/refunds"),
            content=json.dumps({"m": mark}),
            headers={"X-Gate-Intent-Id": intent_id, "Content-Type": "application/json"},
        )


# -- item 8: approvals go stale --------------------------------------------------------------


def test_an_approval_not_used_before_its_deadline_expires(env: Env) -> None:
    agent, mark = env.agent(), f"stale-{time.monotonic_ns()}"
    intent_id = propose(env, agent, mark)
    assert env.admin_post(f"/v1/intents/{intent_id}/approve").status_code == 200
    env.gate.shift_clock(16 * MINUTE)  # past expiresAt (15 min), and past approval + 5 min
    late = retry(env, agent, mark, intent_id)
    assert late.status_code in (409, 410), late.text
    assert late.json()["reason_code"] in ("intent_expired", "expired")
    assert not env.received(mark)
    assert env.intent(intent_id)["status"] == "expired"


def test_an_approval_given_near_the_deadline_is_usable_for_five_minutes(env: Env) -> None:
    agent, mark = env.agent(), f"late-approval-{time.monotonic_ns()}"
    intent_id = propose(env, agent, mark)
    env.gate.shift_clock(14 * MINUTE)
    assert env.admin_post(f"/v1/intents/{intent_id}/approve").status_code == 200
    env.gate.shift_clock(3 * MINUTE)  # 17 min after the proposal, 3 after the approval
    response = retry(env, agent, mark, intent_id)
    assert response.status_code == 200, response.text
    assert len(env.received(mark)) == 1


def test_an_api_approval_past_its_deadline_gives_no_execution_order(env: Env) -> None:
    agent = env.agent()
    with env.gate.client(agent["apiKey"]) as client:
        created = client.post(
            "/v1/intents",
            json={"destination": "stripe.refund", "policy": "finance", "payload": "{}"},
        ).json()
    intent_id = created["intentId"]
    assert env.admin_post(f"/v1/intents/{intent_id}/approve").status_code == 200
    env.gate.shift_clock(16 * MINUTE)
    with env.gate.client(agent["apiKey"]) as client:
        order = client.post(f"/v1/intents/{intent_id}/execute")
    assert order.status_code == 409, order.text
    assert env.intent(intent_id)["status"] == "expired"


# -- item 9: a revoked agent's held request ---------------------------------------------------


def hold_in_thread(
    env: Env, agent: dict[str, Any], mark: str, out: list[httpx.Response]
) -> threading.Thread:
    def run() -> None:
        with env.client(agent, timeout=30) as client:
            out.append(
                client.post(
                    env.url("/v1/refunds"), json={"m": mark}, headers={"X-Gate-Wait": "true"}
                )
            )

    thread = threading.Thread(target=run)
    thread.start()
    wait_until(lambda: any(h["agentId"] == agent["agentId"] for h in env.held()))
    return thread


@pytest.mark.parametrize("action", ["revoke", "suspend"])
def test_a_held_request_of_a_revoked_agent_is_not_executed(env: Env, action: str) -> None:
    agent, mark = env.agent(), f"revoked-{time.monotonic_ns()}"
    answers: list[httpx.Response] = []
    thread = hold_in_thread(env, agent, mark, answers)
    assert env.admin_post(f"/v1/agents/{agent['agentId']}/{action}").status_code == 200
    thread.join(timeout=20)
    (answer,) = answers
    assert answer.status_code == 403, answer.text
    assert answer.json()["reason_code"] in ("agent_revoked", "agent_suspended")
    intent_id = answer.json()["intentId"]
    assert intent_id
    approval = env.admin_post(f"/v1/intents/{intent_id}/approve")
    assert approval.status_code == 409
    assert approval.json()["error"] == "agent_inactive"
    assert not env.received(mark)


# -- item 12: the client leaves during the hold -----------------------------------------------


def test_a_client_that_left_during_the_hold_gets_nothing_sent(env: Env) -> None:
    agent, mark = env.agent(), f"left-{time.monotonic_ns()}"
    body = json.dumps({"m": mark}).encode()
    sock = socket.create_connection(("127.0.0.1", env.gate.proxy_port), timeout=10)
    sock.sendall(
        f"POST {env.url('/v1/refunds')} HTTP/1.1\r\nHost: localhost:{env.upstream.port}\r\n"
        "Content-Type: application/json\r\nX-Gate-Wait: true\r\n".encode()
        + proxy_auth(agent)
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    wait_until(lambda: any(h["agentId"] == agent["agentId"] for h in env.held()))
    intent_id = next(h["intentId"] for h in env.held() if h["agentId"] == agent["agentId"])
    sock.close()
    # The gate notices while the hold is still waiting, not only once it ends, and says so
    # on the ledger (the dashboard shows the audit trail): the intent is still pending.
    wait_until(lambda: not any(h["agentId"] == agent["agentId"] for h in env.held()))
    with env.gate.admin() as admin:
        wait_until(
            lambda: (
                "hold_client_left"
                in [e["eventType"] for e in admin.get(f"/v1/intents/{intent_id}/audit").json()]
            )
        )
        assert admin.get(f"/v1/intents/{intent_id}").json()["status"] == "pending_approval"
    assert env.admin_post(f"/v1/intents/{intent_id}/approve").status_code == 200
    assert not env.received(mark)
    # The agent comes back and re-sends the same request with the intent id: once.
    again = retry(env, agent, mark, intent_id)
    assert again.status_code == 200, again.text
    assert len(env.received(mark)) == 1


def test_a_client_that_left_just_before_release_gets_nothing_sent(env: Env) -> None:
    """The approval races the disconnect: whichever wins, nothing goes upstream for a
    client that is gone."""
    agent, mark = env.agent(), f"race-{time.monotonic_ns()}"
    body = json.dumps({"m": mark}).encode()
    sock = socket.create_connection(("127.0.0.1", env.gate.proxy_port), timeout=10)
    sock.sendall(
        f"POST {env.url('/v1/refunds')} HTTP/1.1\r\nHost: localhost:{env.upstream.port}\r\n"
        "Content-Type: application/json\r\nX-Gate-Wait: true\r\n".encode()
        + proxy_auth(agent)
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    wait_until(lambda: any(h["agentId"] == agent["agentId"] for h in env.held()))
    intent_id = next(h["intentId"] for h in env.held() if h["agentId"] == agent["agentId"])
    sock.shutdown(socket.SHUT_RDWR)
    sock.close()
    env.admin_post(f"/v1/intents/{intent_id}/approve")
    wait_until(lambda: not any(h["agentId"] == agent["agentId"] for h in env.held()))
    assert not env.received(mark)


def test_a_held_client_that_stays_gets_the_real_answer(env: Env) -> None:
    agent, mark = env.agent(), f"stays-{time.monotonic_ns()}"
    answers: list[httpx.Response] = []
    thread = hold_in_thread(env, agent, mark, answers)
    intent_id = next(h["intentId"] for h in env.held() if h["agentId"] == agent["agentId"])
    assert env.admin_post(f"/v1/intents/{intent_id}/approve").status_code == 200
    thread.join(timeout=20)
    assert answers and answers[0].status_code == 200
    assert len(env.received(mark)) == 1


# -- item 19: a crash while a request is in flight ---------------------------------------------


def test_an_execution_in_flight_at_a_crash_is_reconciled_at_start(tmp_path: Path) -> None:
    with Upstream(routes={"/v1/slow": slow(60)}) as upstream:
        config = {"destinations.yaml": registry(upstream.port)}
        with running_gate(tmp_path, policies=POLICIES, config=config) as gate:
            env = Env(gate, upstream)
            agent, mark = env.agent(), f"crash-{time.monotonic_ns()}"
            with env.client(agent) as client:
                pending = client.post(env.url("/v1/slow"), json={"m": mark})
            intent_id = pending.headers["X-Gate-Intent-Id"]
            assert env.admin_post(f"/v1/intents/{intent_id}/approve").status_code == 200

            def send() -> None:
                try:
                    with env.client(agent, timeout=30) as client:
                        client.post(
                            env.url("/v1/slow"),
                            json={"m": mark},
                            headers={"X-Gate-Intent-Id": intent_id},
                        )
                except httpx.HTTPError:
                    pass  # the gate is killed under it

            thread = threading.Thread(target=send)
            thread.start()
            wait_until(lambda: env.intent(intent_id)["status"] == "scheduled")
            wait_until(lambda: bool(env.received(mark)))
            gate.stop(signal.SIGKILL)
            thread.join(timeout=40)
            gate.start()
            intent = env.intent(intent_id)
            assert intent["status"] == "failed"
            assert intent["reason_code"] == "execution_unknown"
            with gate.admin() as admin:
                trail = admin.get(f"/v1/intents/{intent_id}/audit").json()
            assert [e["eventType"] for e in trail][-2:] == [
                "execution_requested",
                "execution_failed",
            ]
            verify = gate.cli("ledger", "verify", "--data-dir", str(gate.data_dir))
            assert verify.returncode == 0, verify.stdout + verify.stderr


def test_read_response_helper_is_used(env: Env) -> None:
    # A plain proxied read answer through the raw helper keeps rawhttp honest here too.
    with socket.create_connection(("127.0.0.1", env.gate.proxy_port), timeout=10) as sock:
        sock.sendall(b"GET http://localhost:1/ HTTP/1.1\r\nHost: localhost:1\r\n\r\n")
        assert read_response(sock).status == 407
