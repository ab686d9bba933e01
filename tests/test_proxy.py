"""The proxy, end to end: real `gate-proxy serve`, real clients (httpx, curl), real upstreams
on 127.0.0.1 (plain and TLS with their own test CA), real TLS interception with our CA."""

import json
import sqlite3
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gate_process import GateProcess, running_gate
from upstreams import Upstream, free_port, sse

POLICIES = {
    "finance-high-risk": "id: finance-high-risk\nrequire_approval: always\nexpiry_minutes: 15\n",
    "support-reply": (
        "id: support-reply\nblock_if_terms: [sue, legal action]\nauto_approve_under: 1\n"
    ),
    "crm-low-risk": ("id: crm-low-risk\nauto_approve_under: 100\nrequire_approval_over: 100\n"),
    "rollout": "id: rollout\nenforce: shadow\nblock_if_terms: [forbidden]\n",
}


def destinations(plain: int, tls: int, blocked: int, dead: int) -> str:
    paths = """
    /v1/refunds: {method: POST, destination: stripe.refund, policy: finance-high-risk}
    /v1/replies: {method: POST, destination: zendesk.reply, policy: support-reply}
    /v1/contacts: {method: POST, destination: hubspot.contacts, policy: crm-low-risk,
                   extract_records: inputs.length}
    /v1/forced: {method: POST, destination: zendesk.reply, policy: support-reply,
                 require_approval: true}
    /v1/shadow: {method: POST, destination: stripe.refund, policy: finance-high-risk,
                 enforce: shadow}
    /v1/rollout: {method: POST, destination: crm.update, policy: rollout}
    /read: {method: GET, passthrough: true}
    /stream: {method: GET, passthrough: true}
"""
    return f"""
default:
  action: block
"127.0.0.1:{plain}":
  paths:{paths}
"localhost:{tls}":
  paths:{paths}
"127.0.0.1:{blocked}":
  block: true
"127.0.0.1:{dead}":
  paths:
    /v1/replies: {{method: POST, destination: zendesk.reply, policy: support-reply}}
unresolvable.gate-test.invalid:
  paths:
    /v1/refunds: {{method: POST, destination: stripe.refund, policy: finance-high-risk}}
routes:
  - prefix: /stripe/
    upstream: http://127.0.0.1:{plain}/
"""


class Env:
    def __init__(
        self, gate: GateProcess, plain: Upstream, tls: Upstream, blocked: Upstream, dead_port: int
    ) -> None:
        self.gate, self.plain, self.tls, self.blocked, self.dead_port = (
            gate,
            plain,
            tls,
            blocked,
            dead_port,
        )

    @property
    def ca(self) -> str:
        return str(self.gate.certs_dir / "mitmproxy-ca-cert.pem")

    def proxy_url(self, agent: dict[str, Any]) -> str:
        return f"http://{agent['agentId']}:{agent['apiKey']}@127.0.0.1:{self.gate.proxy_port}"

    def client(self, agent: dict[str, Any], **kwargs: Any) -> httpx.Client:
        kwargs.setdefault("timeout", 30)
        verify = ssl.create_default_context(cafile=self.ca)
        return httpx.Client(proxy=self.proxy_url(agent), verify=verify, **kwargs)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("proxy")
    dead_port = free_port()
    with (
        Upstream() as plain,
        Upstream(tls=True) as tls,
        Upstream() as blocked,
    ):
        config = {
            "destinations.yaml": destinations(plain.port, tls.port, blocked.port, dead_port),
            "gate.yaml": f"upstream_ca_bundle: {tls.ca_cert_path}\ntcp_timeout_s: 4\n",
        }
        with running_gate(root, policies=POLICIES, config=config) as gate:
            yield Env(gate, plain, tls, blocked, dead_port)


@pytest.fixture
def agent(env: Env) -> dict[str, Any]:
    return env.gate.register(f"agent-{time.monotonic_ns()}")


def seen(upstream: Upstream, marker: str) -> list[Any]:
    return [r for r in upstream.requests if marker.encode() in r.body or marker in r.path]


def audit(env: Env, intent_id: str) -> list[str]:
    with env.gate.admin() as admin:
        return [e["eventType"] for e in admin.get(f"/v1/intents/{intent_id}/audit").json()]


def approve(env: Env, intent_id: str) -> None:
    with env.gate.admin() as admin:
        response = admin.post(f"/v1/intents/{intent_id}/approve", json={})
    assert response.status_code == 200, response.text


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


# -- identity ------------------------------------------------------------------------------------


def test_407_without_credentials_and_nothing_forwarded(env: Env) -> None:
    marker = f"anon-{time.monotonic_ns()}"
    with httpx.Client(proxy=f"http://127.0.0.1:{env.gate.proxy_port}", timeout=10) as client:
        response = client.post(f"{env.plain.url}/v1/replies", json={"m": marker})
    assert response.status_code == 407
    assert response.headers["Proxy-Authenticate"].startswith("Basic")
    assert response.json()["reason_code"] == "proxy_auth_required"
    assert not seen(env.plain, marker)
    # HTTPS: the CONNECT itself is refused.
    result = subprocess.run(
        [
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_connect}",
            "-x",
            f"http://127.0.0.1:{env.gate.proxy_port}",
            "--cacert",
            env.ca,
            f"{env.tls.url_localhost}/v1/replies",
            "-d",
            "x",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.stdout.strip() == "407"


def test_wrong_key_or_name_is_407(env: Env, agent: dict[str, Any]) -> None:
    other = env.gate.register(f"other-{time.monotonic_ns()}")
    for user, key in ((agent["agentId"], "gate_sk_wrong"), (other["agentId"], agent["apiKey"])):
        proxy = f"http://{user}:{key}@127.0.0.1:{env.gate.proxy_port}"
        with httpx.Client(proxy=proxy, timeout=10) as client:
            response = client.post(f"{env.plain.url}/v1/replies", json={"m": "x"})
        assert response.status_code in (401, 407), response.text


def test_gate_credentials_and_hop_by_hop_headers_never_go_upstream(
    env: Env, agent: dict[str, Any]
) -> None:
    marker = f"hdr-{time.monotonic_ns()}"
    with env.client(agent) as client:
        response = client.post(
            f"{env.plain.url}/v1/replies",
            json={"m": marker},
            headers={
                "X-Gate-Wait": "false",
                "X-Gate-Whatever": "1",
                "Connection": "X-Secret-Hop",
                "X-Secret-Hop": "1",
                "Keep-Alive": "timeout=5",
                "TE": "trailers",
                "Proxy-Connection": "keep-alive",
            },
        )
    assert response.status_code == 200, response.text
    (received,) = seen(env.plain, marker)
    names = received.header_names
    for forbidden in (
        "proxy-authorization",
        "x-gate-wait",
        "x-gate-whatever",
        "x-secret-hop",
        "keep-alive",
        "te",
        "proxy-connection",
    ):
        assert forbidden not in names, forbidden
    assert agent["apiKey"] not in json.dumps(received.to_json())


# -- decisions -----------------------------------------------------------------------------------


def test_approved_forward_writes_the_ledger_ahead(env: Env, agent: dict[str, Any]) -> None:
    marker = f"ok-{time.monotonic_ns()}"
    with env.client(agent) as client:
        response = client.post(f"{env.plain.url}/v1/replies", json={"m": marker})
    assert response.status_code == 200
    assert seen(env.plain, marker)
    intent_id = _latest_intent(env, agent)
    wait_for(lambda: audit(env, intent_id)[-1] == "execution_succeeded")
    assert audit(env, intent_id) == [
        "proposed",
        "policy_checked",
        "approved",
        "execution_requested",
        "execution_succeeded",
    ]


def _latest_intent(env: Env, agent: dict[str, Any]) -> str:
    with env.gate.client(agent["apiKey"]) as client:
        return client.get("/v1/intents", params={"limit": 1}).json()["intents"][0]["intentId"]


def test_blocked_is_403_json_and_nothing_forwarded(env: Env, agent: dict[str, Any]) -> None:
    marker = f"blk-{time.monotonic_ns()}"
    with env.client(agent) as client:
        response = client.post(f"{env.plain.url}/v1/replies", json={"m": f"{marker} we will SUE"})
    assert response.status_code == 403
    assert response.headers["X-Gate-Decision"] == "blocked"
    body = response.json()
    assert set(body) >= {
        "status",
        "intentId",
        "reason_code",
        "blockReason",
        "destination",
        "policy",
    }
    assert body["reason_code"] == "blocked_term_detected"
    assert body["destination"] == "zendesk.reply"
    assert not seen(env.plain, marker)


def test_tls_interception_identity_from_connect(env: Env, agent: dict[str, Any]) -> None:
    marker = f"tls-{time.monotonic_ns()}"
    with env.client(agent) as client:
        response = client.post(f"{env.tls.url_localhost}/v1/replies", json={"m": marker})
        blocked = client.post(f"{env.tls.url_localhost}/v1/replies", json={"m": "sue"})
    assert response.status_code == 200, response.text
    assert seen(env.tls, marker)
    assert blocked.status_code == 403
    # curl, with our CA, through the forward proxy.
    result = subprocess.run(
        [
            "curl",
            "-s",
            "-x",
            env.proxy_url(agent),
            "--cacert",
            env.ca,
            f"{env.tls.url_localhost}/v1/replies",
            "-H",
            "Content-Type: application/json",
            "-d",
            json.dumps({"m": marker + "-curl"}),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert seen(env.tls, marker + "-curl")


def test_unknown_and_blocked_hosts(env: Env, agent: dict[str, Any]) -> None:
    with env.client(agent) as client:
        unknown = client.post(f"http://127.0.0.1:{free_port()}/x", json={})
    assert unknown.status_code == 403
    assert unknown.json()["reason_code"] == "destination_unknown"
    before = len(env.blocked.connections)
    result = subprocess.run(
        [
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_connect}",
            "-x",
            env.proxy_url(agent),
            "-p",
            "--cacert",
            env.ca,
            f"http://127.0.0.1:{env.blocked.port}/anything",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.stdout.strip() == "403"
    time.sleep(0.3)
    assert len(env.blocked.connections) == before  # not even a TCP connection


@pytest.mark.parametrize(
    "path",
    [
        "//v1/refunds",
        "/v1/%72efunds",
        "/v1/./refunds",
        "/v1/x/../refunds",
        "/v1/refunds;jsessionid=1",
        "/v1/%2e/refunds",
    ],
)
def test_path_normalisation_bypasses_hit_the_rule(
    env: Env, agent: dict[str, Any], path: str
) -> None:
    result = subprocess.run(
        [
            "curl",
            "-s",
            "--path-as-is",
            "-x",
            env.proxy_url(agent),
            "-H",
            "Content-Type: application/json",
            "-d",
            '{"charge":"ch_1"}',
            f"http://127.0.0.1:{env.plain.port}{path}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    body = json.loads(result.stdout)
    assert body["status"] == "pending_approval", body
    assert body["destination"] == "stripe.refund"


def test_record_count_from_extract_records(env: Env, agent: dict[str, Any]) -> None:
    with env.client(agent) as client:
        small = client.post(f"{env.plain.url}/v1/contacts", json={"inputs": [{}] * 5})
        large = client.post(f"{env.plain.url}/v1/contacts", json={"inputs": [{}] * 150})
    assert small.status_code == 200
    assert large.status_code == 202
    assert large.json()["reason_code"] == "record_threshold_exceeded"


def test_registry_require_approval_is_honoured(env: Env, agent: dict[str, Any]) -> None:
    with env.client(agent) as client:
        response = client.post(f"{env.plain.url}/v1/forced", json={"m": "fine"})
    assert response.status_code == 202


def test_oversized_body_is_413(env: Env, agent: dict[str, Any], tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    big.write_bytes(b"x" * (10 * 1024 * 1024 + 10))
    result = subprocess.run(
        [
            "curl",
            "-s",
            "-x",
            env.proxy_url(agent),
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            f"@{big}",
            f"{env.plain.url}/v1/replies",
            "-w",
            "\n%{http_code}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    body, _, code = result.stdout.rpartition("\n")
    assert code == "413"
    assert json.loads(body)["reason_code"] == "payload_too_large"
    assert not [r for r in env.plain.requests if len(r.body) > 1024 * 1024]


def test_idempotency_key_header_gives_409(env: Env, agent: dict[str, Any]) -> None:
    with env.client(agent) as client:
        first = client.post(
            f"{env.plain.url}/v1/replies", json={"m": "a"}, headers={"Idempotency-Key": "k-1"}
        )
        second = client.post(
            f"{env.plain.url}/v1/replies", json={"m": "a"}, headers={"Idempotency-Key": "k-1"}
        )
    assert first.status_code == 200
    assert second.status_code == 409
    assert second.json()["status"] == "duplicate_blocked"


def test_shadow_mode_records_and_forwards(env: Env, agent: dict[str, Any]) -> None:
    marker = f"shadow-{time.monotonic_ns()}"
    with env.client(agent) as client:
        response = client.post(f"{env.plain.url}/v1/shadow", json={"m": marker})
    assert response.status_code == 200
    assert seen(env.plain, marker)
    intent_id = _latest_intent(env, agent)
    with env.gate.admin() as admin:
        trail = admin.get(f"/v1/intents/{intent_id}/audit").json()
    checked = next(e for e in trail if e["eventType"] == "policy_checked")
    assert checked["metadata"]["shadow"] is True
    assert checked["metadata"]["result"] == "pending_approval"


def test_policy_level_shadow(env: Env, agent: dict[str, Any]) -> None:
    marker = f"rollout-{time.monotonic_ns()}"
    with env.client(agent) as client:
        response = client.post(f"{env.plain.url}/v1/rollout", json={"m": f"{marker} forbidden"})
    assert response.status_code == 200  # would have been blocked; shadow forwards
    assert seen(env.plain, marker)
    intent_id = _latest_intent(env, agent)
    with env.gate.admin() as admin:
        intent = admin.get(f"/v1/intents/{intent_id}").json()
    assert intent["shadow"] is True
    assert intent["status"] == "blocked"  # the decision it would have made


# -- pending, bound retry ------------------------------------------------------------------------


def test_pending_then_bound_retry(env: Env, agent: dict[str, Any]) -> None:
    marker = f"retry-{time.monotonic_ns()}"
    body = {"charge": "ch_1", "m": marker}
    url = f"{env.plain.url}/v1/refunds"
    with env.client(agent) as client:
        pending = client.post(url, json=body)
        assert pending.status_code == 202
        assert pending.headers["Retry-After"]
        intent_id = pending.headers["X-Gate-Intent-Id"]
        assert pending.json()["intentId"] == intent_id
        not_yet = client.post(url, json=body, headers={"X-Gate-Intent-Id": intent_id})
        assert not_yet.status_code == 202
        approve(env, intent_id)
        other_body = client.post(
            url, json={**body, "charge": "ch_2"}, headers={"X-Gate-Intent-Id": intent_id}
        )
        assert other_body.status_code == 409
        assert other_body.json()["reason_code"] == "fingerprint_mismatch"
        other_agent = env.gate.register(f"thief-{time.monotonic_ns()}")
        with env.client(other_agent) as thief:
            stolen = thief.post(url, json=body, headers={"X-Gate-Intent-Id": intent_id})
        assert stolen.status_code == 409
        assert stolen.json()["reason_code"] == "intent_agent_mismatch"
        assert not seen(env.plain, marker)
        done = client.post(url, json=body, headers={"X-Gate-Intent-Id": intent_id})
        assert done.status_code == 200
        replay = client.post(url, json=body, headers={"X-Gate-Intent-Id": intent_id})
        assert replay.status_code == 409
        assert replay.json()["reason_code"] == "already_executed"
    assert len(seen(env.plain, marker)) == 1


# -- holds ---------------------------------------------------------------------------------------


def _held_request(
    env: Env,
    agent: dict[str, Any],
    path: str,
    body: dict[str, Any],
    results: list[Any],
    timeout: float = 60,
    headers: dict[str, str] | None = None,
) -> threading.Thread:
    def run() -> None:
        try:
            with env.client(agent, timeout=timeout) as client:
                results.append(
                    client.post(
                        f"{env.plain.url}{path}",
                        json=body,
                        headers={"X-Gate-Wait": "true", **(headers or {})},
                    )
                )
        except httpx.HTTPError as exc:
            results.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _held(env: Env, key: str | None = None) -> list[dict[str, Any]]:
    client = env.gate.client(key) if key else env.gate.admin()
    with client:
        return client.get("/v1/proxy/held").json()["held"]


def test_hold_then_approve_returns_the_upstream_response(env: Env, agent: dict[str, Any]) -> None:
    marker = f"hold-{time.monotonic_ns()}"
    results: list[Any] = []
    thread = _held_request(env, agent, "/v1/refunds", {"m": marker}, results)
    wait_for(lambda: any(h["agentId"] == agent["agentId"] for h in _held(env)))
    held = [h for h in _held(env, agent["apiKey"])]
    assert len(held) == 1
    stranger = env.gate.register(f"stranger-{time.monotonic_ns()}")
    assert _held(env, stranger["apiKey"]) == []
    assert not seen(env.plain, marker)
    approve(env, held[0]["intentId"])
    thread.join(timeout=20)
    (response,) = results
    assert response.status_code == 200
    assert marker in response.text  # the real upstream's echo
    assert len(seen(env.plain, marker)) == 1


def test_hold_then_reject_is_403(env: Env, agent: dict[str, Any]) -> None:
    results: list[Any] = []
    thread = _held_request(env, agent, "/v1/refunds", {"m": "reject me"}, results)
    wait_for(lambda: any(h["agentId"] == agent["agentId"] for h in _held(env)))
    intent_id = next(h["intentId"] for h in _held(env) if h["agentId"] == agent["agentId"])
    with env.gate.admin() as admin:
        admin.post(f"/v1/intents/{intent_id}/reject", json={"reason": "no"})
    thread.join(timeout=20)
    assert results[0].status_code == 403
    assert results[0].json()["status"] == "rejected"


def test_client_disconnect_releases_the_hold(env: Env, agent: dict[str, Any]) -> None:
    marker = f"gone-{time.monotonic_ns()}"
    results: list[Any] = []
    thread = _held_request(env, agent, "/v1/refunds", {"m": marker}, results, timeout=1.5)
    thread.join(timeout=10)
    assert isinstance(results[0], httpx.TimeoutException)
    wait_for(lambda: not any(h["agentId"] == agent["agentId"] for h in _held(env)))
    intent_id = _latest_intent(env, agent)
    with env.gate.admin() as admin:
        assert admin.get(f"/v1/intents/{intent_id}").json()["status"] == "pending_approval"
    approve(env, intent_id)
    time.sleep(0.5)
    assert not seen(env.plain, marker)


def test_wait_also_works_on_a_retry(env: Env, agent: dict[str, Any]) -> None:
    marker = f"retrywait-{time.monotonic_ns()}"
    body = {"m": marker}
    with env.client(agent) as client:
        intent_id = client.post(f"{env.plain.url}/v1/refunds", json=body).headers[
            "X-Gate-Intent-Id"
        ]
    results: list[Any] = []
    thread = _held_request(
        env, agent, "/v1/refunds", body, results, headers={"X-Gate-Intent-Id": intent_id}
    )
    wait_for(lambda: any(h["intentId"] == intent_id for h in _held(env)))
    approve(env, intent_id)
    thread.join(timeout=20)
    assert results[0].status_code == 200


def test_holds_do_not_block_other_traffic(env: Env, agent: dict[str, Any]) -> None:
    results: list[Any] = []
    threads = [
        _held_request(env, agent, "/v1/refunds", {"m": f"bg{i}"}, results, timeout=5)
        for i in range(5)
    ]
    wait_for(lambda: sum(h["agentId"] == agent["agentId"] for h in _held(env)) == 5)
    started = time.monotonic()
    with env.client(agent) as client:
        assert client.post(f"{env.plain.url}/v1/replies", json={"m": "quick"}).status_code == 200
    assert time.monotonic() - started < 3
    for thread in threads:
        thread.join(timeout=10)


# -- failures ------------------------------------------------------------------------------------


def test_upstream_refused_is_502_and_the_approval_stays_usable(
    env: Env, agent: dict[str, Any]
) -> None:
    """A refused connection means nothing left the gate: 502, and the approval is released
    (recorded as execution_not_sent), so the same request may be retried with it."""
    url = f"http://127.0.0.1:{env.dead_port}/v1/replies"
    with env.client(agent) as client:
        response = client.post(url, json={"m": "x"})
        assert response.status_code == 502
        assert response.json()["error"] == "upstream_unreachable"
        intent_id = _latest_intent(env, agent)
        wait_for(lambda: audit(env, intent_id)[-1] == "execution_not_sent")
        with env.gate.admin() as admin:
            assert admin.get(f"/v1/intents/{intent_id}").json()["status"] == "approved"
        again = client.post(url, json={"m": "x"}, headers={"X-Gate-Intent-Id": intent_id})
        assert again.status_code == 502  # tried again (not 409: the approval was unspent)
    wait_for(lambda: audit(env, intent_id).count("execution_not_sent") == 2)
    assert audit(env, intent_id)[-4:] == [
        "execution_requested",
        "execution_not_sent",
        "execution_requested",
        "execution_not_sent",
    ]


def test_an_unresolvable_host_after_approval_is_502_and_the_approval_stays_usable(
    env: Env, agent: dict[str, Any]
) -> None:
    url = "http://unresolvable.gate-test.invalid/v1/refunds"
    with env.client(agent) as client:
        pending = client.post(url, json={"amount": 5})
        assert pending.status_code == 202, pending.text
        intent_id = pending.headers["X-Gate-Intent-Id"]
        approve(env, intent_id)
        retry = client.post(url, json={"amount": 5}, headers={"X-Gate-Intent-Id": intent_id})
    assert retry.status_code == 502, retry.text
    body = retry.json()
    assert body["error"] == "upstream_unresolvable"
    assert "stays valid until it expires" in body["message"]
    wait_for(lambda: audit(env, intent_id)[-1] == "execution_not_sent")
    with env.gate.admin() as admin:
        assert admin.get(f"/v1/intents/{intent_id}").json()["status"] == "approved"


def test_streaming_response_arrives_as_it_is_sent(tmp_path: Path) -> None:
    events = [f"data: {i}\n\n".encode() for i in range(4)]
    with Upstream(handler=sse(events, interval=0.7)) as upstream:
        config = {
            "destinations.yaml": f"""
"127.0.0.1:{upstream.port}":
  paths:
    /stream: {{method: GET, passthrough: true}}
"""
        }
        with running_gate(tmp_path, policies=POLICIES, config=config) as gate:
            agent = gate.register("streamer")
            proxy = f"http://{agent['agentId']}:{agent['apiKey']}@127.0.0.1:{gate.proxy_port}"
            started = time.monotonic()
            with (
                httpx.Client(proxy=proxy, timeout=30) as client,
                client.stream("GET", f"{upstream.url}/stream") as response,
            ):
                chunks = response.iter_raw()
                first = next(chunks)
                first_at = time.monotonic() - started
                rest = b"".join(chunks)
            total = time.monotonic() - started
    assert first.startswith(b"data: 0")
    assert b"data: 3" in first + rest
    assert first_at < 1.0 < total


def test_a_stream_the_client_leaves_after_the_upstream_answered_is_recorded_as_run(
    tmp_path: Path,
) -> None:
    # The upstream answered 200 and started streaming; the agent read the first event and
    # went away. The write ran: recording it "failed" could prompt a second run.
    events = [f"data: {i}\n\n".encode() for i in range(4)]
    with Upstream(handler=sse(events, interval=0.7)) as upstream:
        config = {
            "destinations.yaml": f"""
"127.0.0.1:{upstream.port}":
  paths:
    /v1/replies: {{method: POST, destination: zendesk.reply, policy: support-reply}}
"""
        }
        with running_gate(tmp_path, policies=POLICIES, config=config) as gate:
            agent = gate.register("leaver")
            proxy = f"http://{agent['agentId']}:{agent['apiKey']}@127.0.0.1:{gate.proxy_port}"
            with (
                httpx.Client(proxy=proxy, timeout=30) as client,
                client.stream("POST", f"{upstream.url}/v1/replies", json={"m": "hi"}) as response,
            ):
                first = next(response.iter_raw())
            # The client is gone before the upstream's second event.
            with gate.admin() as admin:
                (listed,) = admin.get("/v1/intents", params={"limit": 5}).json()["intents"]
                intent_id = listed["intentId"]

                def outcome() -> list[dict[str, Any]]:
                    return admin.get(f"/v1/intents/{intent_id}/audit").json()

                wait_for(lambda: outcome()[-1]["eventType"].startswith("execution_s"))
                trail = outcome()
                intent = admin.get(f"/v1/intents/{intent_id}").json()
    assert first.startswith(b"data: 0")
    assert len(upstream.requests) == 1
    assert trail[-1]["eventType"] == "execution_succeeded"
    assert trail[-1]["metadata"]["status_code"] == 200
    assert trail[-1]["metadata"]["response"] == "incomplete"
    assert intent["status"] == "succeeded"


def test_injected_fault_fails_closed(tmp_path: Path) -> None:
    with Upstream() as upstream:
        config = {
            "destinations.yaml": f"""
"127.0.0.1:{upstream.port}":
  paths:
    /v1/replies: {{method: POST, destination: zendesk.reply, policy: support-reply}}
"""
        }
        with running_gate(
            tmp_path, policies=POLICIES, config=config, env={"GATE_CHAOS_FAIL_HOOKS": "request"}
        ) as gate:
            agent = gate.register("victim")
            proxy = f"http://{agent['agentId']}:{agent['apiKey']}@127.0.0.1:{gate.proxy_port}"
            with httpx.Client(proxy=proxy, timeout=30) as client:
                response = client.post(f"{upstream.url}/v1/replies", json={"m": "hello"})
            logs = gate.logs()
        assert response.status_code == 503
        assert response.json()["reason_code"] == "gate_internal_error"
        assert upstream.requests == []
        assert "hook_failed" in logs


def test_store_failure_fails_closed(tmp_path: Path) -> None:
    with Upstream() as upstream:
        config = {
            "destinations.yaml": f"""
"127.0.0.1:{upstream.port}":
  paths:
    /v1/replies: {{method: POST, destination: zendesk.reply, policy: support-reply}}
"""
        }
        with running_gate(tmp_path, policies=POLICIES, config=config) as gate:
            agent = gate.register("locked-out")
            proxy = f"http://{agent['agentId']}:{agent['apiKey']}@127.0.0.1:{gate.proxy_port}"
            # Another process holds the database's write lock: every ledger write fails.
            lock = sqlite3.connect(gate.data_dir / "gate.db", timeout=1)
            lock.execute("BEGIN EXCLUSIVE")
            try:
                with httpx.Client(proxy=proxy, timeout=60) as client:
                    response = client.post(f"{upstream.url}/v1/replies", json={"m": "hello"})
            finally:
                lock.rollback()
                lock.close()
        assert response.status_code == 503
        assert upstream.requests == []
        result = gate.cli("ledger", "verify", "--data-dir", str(gate.data_dir))
        assert result.returncode == 0, result.stdout


# -- reverse proxy and restart -------------------------------------------------------------------


def test_reverse_route(env: Env, agent: dict[str, Any]) -> None:
    marker = f"rev-{time.monotonic_ns()}"
    base = f"http://127.0.0.1:{env.gate.reverse_port}"
    with httpx.Client(base_url=base, timeout=30) as client:
        anonymous = client.post("/stripe/v1/replies", json={"m": marker})
        assert anonymous.status_code == 401
        ok = client.post(
            "/stripe/v1/replies", json={"m": marker}, headers={"X-Gate-Key": agent["apiKey"]}
        )
        assert ok.status_code == 200, ok.text
        unrouted = client.post("/nowhere/x", json={}, headers={"X-Gate-Key": agent["apiKey"]})
        assert unrouted.status_code == 404
    (received,) = seen(env.plain, marker)
    assert received.path == "/v1/replies"
    assert "x-gate-key" not in received.header_names


def test_restart_keeps_intents_retry_still_works(tmp_path: Path) -> None:
    with Upstream() as upstream:
        config = {
            "destinations.yaml": f"""
"127.0.0.1:{upstream.port}":
  paths:
    /v1/refunds: {{method: POST, destination: stripe.refund, policy: finance-high-risk}}
"""
        }
        with running_gate(tmp_path, policies=POLICIES, config=config) as gate:
            agent = gate.register("survivor")
            proxy = f"http://{agent['agentId']}:{agent['apiKey']}@127.0.0.1:{gate.proxy_port}"
            body = {"charge": "ch_9"}
            with httpx.Client(proxy=proxy, timeout=30) as client:
                intent_id = client.post(f"{upstream.url}/v1/refunds", json=body).headers[
                    "X-Gate-Intent-Id"
                ]
            gate.stop()
            gate.start()
            with gate.admin() as admin:
                assert admin.post(f"/v1/intents/{intent_id}/approve", json={}).status_code == 200
            with httpx.Client(proxy=proxy, timeout=30) as client:
                done = client.post(
                    f"{upstream.url}/v1/refunds", json=body, headers={"X-Gate-Intent-Id": intent_id}
                )
        assert done.status_code == 200
        assert len(upstream.requests) == 1


def test_hold_timeout_returns_202(tmp_path: Path) -> None:
    with Upstream() as upstream:
        config = {
            "destinations.yaml": f"""
"127.0.0.1:{upstream.port}":
  paths:
    /v1/refunds: {{method: POST, destination: stripe.refund, policy: finance-high-risk}}
"""
        }
        with running_gate(
            tmp_path, policies=POLICIES, config=config, env={"GATE_HOLD_TIMEOUT_MS": "1500"}
        ) as gate:
            agent = gate.register("impatient")
            proxy = f"http://{agent['agentId']}:{agent['apiKey']}@127.0.0.1:{gate.proxy_port}"
            started = time.monotonic()
            with httpx.Client(proxy=proxy, timeout=30) as client:
                response = client.post(
                    f"{upstream.url}/v1/refunds", json={}, headers={"X-Gate-Wait": "true"}
                )
            elapsed = time.monotonic() - started
    assert response.status_code == 202
    assert response.json()["reason_code"] == "hold_timeout"
    assert response.headers["X-Gate-Intent-Id"]
    assert 1.3 < elapsed < 10
    assert upstream.requests == []


def test_ca_certificate_is_served(env: Env) -> None:
    response = httpx.get(f"{env.gate.url}/v1/proxy/ca.crt")
    assert response.status_code == 200
    assert response.content == (env.gate.certs_dir / "mitmproxy-ca-cert.pem").read_bytes()
    assert b"PRIVATE KEY" not in response.content
    assert oct((env.gate.certs_dir / "mitmproxy-ca.pem").stat().st_mode & 0o777) == "0o600"


def test_prometheus_has_proxy_metrics(env: Env, agent: dict[str, Any]) -> None:
    with env.client(agent) as client:
        client.post(f"{env.plain.url}/v1/replies", json={"m": "metrics"})
    text = httpx.get(f"{env.gate.url}/metrics").text
    assert 'source="proxy"' in text
    assert "gate_held_requests" in text
    assert "gate_decision_latency_seconds_bucket" in text


def test_upstream_timeout_is_504_json_and_recorded(tmp_path: Path) -> None:
    from upstreams import slow

    with Upstream(handler=slow(6)) as upstream:
        config = {
            "destinations.yaml": f"""
"127.0.0.1:{upstream.port}":
  paths:
    /v1/replies: {{method: POST, destination: zendesk.reply, policy: support-reply}}
""",
            "gate.yaml": "upstream_timeout_s: 1\n",
        }
        with running_gate(tmp_path, policies=POLICIES, config=config) as gate:
            agent = gate.register("waiter")
            proxy = f"http://{agent['agentId']}:{agent['apiKey']}@127.0.0.1:{gate.proxy_port}"
            started = time.monotonic()
            with httpx.Client(proxy=proxy, timeout=30) as client:
                response = client.post(f"{upstream.url}/v1/replies", json={"m": "slow"})
            elapsed = time.monotonic() - started
            with gate.admin() as admin:
                intent_id = admin.get("/v1/intents", params={"limit": 1}).json()["intents"][0][
                    "intentId"
                ]

                def failed() -> bool:
                    trail = admin.get(f"/v1/intents/{intent_id}/audit").json()
                    return trail[-1]["eventType"] == "execution_failed"

                wait_for(failed)
                trail = admin.get(f"/v1/intents/{intent_id}/audit").json()
    assert response.status_code == 504
    assert response.json()["error"] == "upstream_timeout"
    assert response.headers["X-Gate-Decision"] == "error"
    assert elapsed < 4
    assert trail[-1]["metadata"]["error"] == "upstream_timeout"


def test_broken_registry_reload_keeps_the_last_good_one(env: Env, agent: dict[str, Any]) -> None:
    path = env.gate.config_dir / "destinations.yaml"
    original = path.read_text()
    try:
        path.write_text(original + '\n"bad.example":\n  paths:\n    /x: {polcy: oops}\n')
        wait_for(
            lambda: (
                'gate_config_reload_failures_total{config="destinations"}'
                in httpx.get(f"{env.gate.url}/metrics").text
            )
        )
        assert "destinations.yaml" in env.gate.logs() and "polcy" in env.gate.logs()
        with env.client(agent) as client:
            response = client.post(f"{env.plain.url}/v1/replies", json={"m": "still routed"})
        assert response.status_code == 200
    finally:
        path.write_text(original)
        time.sleep(1.5)


def test_http2_through_interception(env: Env, agent: dict[str, Any]) -> None:
    marker = f"h2-{time.monotonic_ns()}"
    url = f"{env.tls.url_localhost}/v1/replies"

    def curl(body: str) -> list[str]:
        result = subprocess.run(
            [
                "curl",
                "-s",
                "--http2",
                "-x",
                env.proxy_url(agent),
                "--cacert",
                env.ca,
                "-H",
                "Content-Type: application/json",
                "-d",
                body,
                url,
                "-w",
                "\n%{http_version} %{http_code}",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return result.stdout.rsplit("\n", 1)[-1].split()

    assert curl(json.dumps({"m": marker})) == ["2", "200"]
    assert seen(env.tls, marker)
    assert curl(json.dumps({"m": "we will sue"})) == ["2", "403"]


def test_busy_proxy_port_stops_serve(tmp_path: Path) -> None:
    import socket

    from gate_process import prepare_root

    prepare_root(tmp_path, POLICIES)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        gate = GateProcess(
            tmp_path, free_port(), taken.getsockname()[1], free_port(), "gate_sk_" + "x" * 40
        )
        gate.start(wait=False)
        assert gate.process is not None
        code = gate.process.wait(timeout=30)
    assert code != 0
    assert "cannot start" in gate.logs() and "forward" in gate.logs()
