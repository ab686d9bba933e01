"""Signed webhooks against a real receiver on 127.0.0.1."""

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gate_process import GateProcess, running_gate
from upstreams import RecordedRequest, Reply, Upstream

POLICIES = {
    "finance-high-risk": "id: finance-high-risk\nrequire_approval: always\n",
}
SECRET = "whsec-test-0123456789abcdef"


def _pending(gate: GateProcess, key: str) -> str:
    with gate.client(key) as client:
        response = client.post(
            "/v1/intents",
            json={"destination": "stripe.refund", "policy": "finance-high-risk", "payload": "{}"},
        )
    return response.json()["intentId"]


@pytest.fixture
def flaky_receiver() -> Iterator[Upstream]:
    calls = {"n": 0}

    def handler(request: RecordedRequest) -> Reply:
        calls["n"] += 1
        return Reply(500 if calls["n"] == 1 else 200, {}, b"ok")

    with Upstream(handler=handler) as receiver:
        yield receiver


def test_private_targets_are_refused_by_default(tmp_path: Path) -> None:
    with running_gate(tmp_path, policies=POLICIES) as gate:
        agent = gate.register("hook-owner")
        intent_id = _pending(gate, agent["apiKey"])
        with gate.client(agent["apiKey"]) as client:
            for url in (
                "http://127.0.0.1:9/x",
                "http://169.254.169.254/latest",
                "http://10.0.0.1/x",
                "http://[::1]:9/x",
            ):
                response = client.post(
                    "/v1/webhooks/register",
                    json={"intentId": intent_id, "url": url, "secret": SECRET},
                )
                assert response.status_code == 403, url
                assert response.json()["error"] == "webhook_target_forbidden"


def test_only_owner_or_reviewer_may_register(tmp_path: Path) -> None:
    with running_gate(
        tmp_path, policies=POLICIES, config={"gate.yaml": "webhook_allow_cidrs: [127.0.0.1/32]\n"}
    ) as gate:
        owner, stranger = gate.register("owner"), gate.register("stranger")
        intent_id = _pending(gate, owner["apiKey"])
        with gate.client(stranger["apiKey"]) as client:
            response = client.post(
                "/v1/webhooks/register",
                json={"intentId": intent_id, "url": "http://127.0.0.1:9/", "secret": SECRET},
            )
        assert response.status_code == 403


def test_signed_delivery_with_retry(tmp_path: Path, flaky_receiver: Upstream) -> None:
    config = {"gate.yaml": "webhook_allow_cidrs: [127.0.0.1/32]\n"}
    with running_gate(tmp_path, policies=POLICIES, config=config) as gate:
        agent = gate.register("hooked")
        intent_id = _pending(gate, agent["apiKey"])
        with gate.client(agent["apiKey"]) as client:
            registered = client.post(
                "/v1/webhooks/register",
                json={
                    "intentId": intent_id,
                    "url": f"{flaky_receiver.url}/gate-callback",
                    "secret": SECRET,
                },
            )
        assert registered.status_code == 201, registered.text
        assert SECRET not in registered.text
        with gate.admin() as admin:
            admin.post(f"/v1/intents/{intent_id}/approve", json={})
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(flaky_receiver.requests) < 2:
            time.sleep(0.1)
        logs = gate.logs()
    attempts = flaky_receiver.requests
    assert len(attempts) == 2  # the first got 500, the retry succeeded
    delivered = attempts[-1]
    body = json.loads(delivered.body)
    assert body["intentId"] == intent_id and body["event"] == "approved"
    timestamp = delivered.header("X-Gate-Timestamp")
    expected = hmac.new(
        SECRET.encode(), f"{timestamp}.".encode() + delivered.body, hashlib.sha256
    ).hexdigest()
    assert delivered.header("X-Gate-Signature") == f"v1={expected}"
    assert all(SECRET not in value for _, value in delivered.headers)
    assert SECRET not in logs
