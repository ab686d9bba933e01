"""Seed 004's own Python SDK (zehrava-gate 0.2.0, unmodified) against a real `gate-proxy serve`.

The SDK sends every unset optional field as JSON null, posts approve/execute with no body at
all, reads `verify` from GET /v1/intents/:id and registers webhooks with an optional secret.
Where we differ from the seed on purpose (webhook signatures, /v1/deliver), the test pins the
safer behaviour and that the refusal names the way forward.
"""

import json
import time
from collections.abc import Iterator

import httpx
import pytest
from gate_process import GateProcess, running_gate
from zehrava_gate import Gate, GateError

POLICIES = {
    "support-reply": """
id: support-reply
destinations: [zendesk.reply]
block_if_terms: ["refund guaranteed"]
auto_approve_under: 1
""",
    "finance-high-risk": """
id: finance-high-risk
destinations: [stripe.refund]
require_approval: always
""",
}


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GateProcess]:
    with running_gate(tmp_path_factory.mktemp("sdk"), policies=POLICIES) as process:
        yield process


def sdk_for(gate: GateProcess, role: str = "agent") -> tuple[Gate, dict]:
    registered = gate.register(f"sdk-{role}-{time.monotonic_ns() % 10**9}", role=role)
    return Gate(endpoint=gate.url, api_key=registered["apiKey"]), registered


def test_propose_with_every_optional_field_null(gate: GateProcess) -> None:
    agent, _ = sdk_for(gate)
    approved = agent.propose(
        destination="zendesk.reply", policy="support-reply", payload="Resolved, thanks."
    )
    assert approved["status"] == "approved"
    assert approved["intentId"].startswith("int_")
    blocked = agent.propose(
        destination="zendesk.reply", policy="support-reply", payload="A refund guaranteed!"
    )
    assert blocked["status"] == "blocked"
    assert "refund guaranteed" in blocked["blockReason"]


def test_approve_execute_and_verify_round_trip(gate: GateProcess) -> None:
    agent, _ = sdk_for(gate)
    reviewer, _ = sdk_for(gate, role="reviewer")
    pending = agent.propose(
        destination="stripe.refund",
        policy="finance-high-risk",
        payload=json.dumps({"amount": 40}),
        estimated_value_usd=40.0,
        sensitivity_tags=["finance"],
        metadata={"ticket": "T-1"},
    )
    assert pending["status"] == "pending_approval"
    with pytest.raises(GateError) as early:
        agent.execute(intent_id=pending["intentId"])
    assert early.value.status == 409

    approved = reviewer.approve(intent_id=pending["intentId"])  # posts no body at all
    assert approved["status"] == "approved"
    order = agent.execute(intent_id=pending["intentId"])
    assert order["execution_token"].startswith("gex_")
    assert order["executionId"].startswith("exe_")

    verified = agent.verify(intent_id=pending["intentId"])
    assert verified["status"] == "scheduled"  # an order is out, not yet reported
    assert verified["decision"]["decision"] == "pending_approval"
    assert verified["decision"]["evaluated_at"]
    trail = [event["eventType"] for event in verified["audit"]]
    assert trail[:2] == ["proposed", "policy_checked"]
    assert "approved" in trail and trail[-1] == "execution_requested"
    assert order["execution_token"] not in json.dumps(verified)


def test_reject_with_and_without_a_reason(gate: GateProcess) -> None:
    agent, _ = sdk_for(gate)
    reviewer, _ = sdk_for(gate, role="reviewer")
    first = agent.propose(destination="stripe.refund", policy="finance-high-risk", payload="a")
    second = agent.propose(destination="stripe.refund", policy="finance-high-risk", payload="b")
    assert reviewer.reject(intent_id=first["intentId"], reason="not today")["status"] == "rejected"
    assert reviewer.reject(intent_id=second["intentId"])["status"] == "rejected"  # reason: null


def test_an_agent_cannot_approve_its_own_intent_through_the_sdk(gate: GateProcess) -> None:
    agent, _ = sdk_for(gate)
    pending = agent.propose(destination="stripe.refund", policy="finance-high-risk", payload="x")
    with pytest.raises(GateError) as refused:
        agent.approve(intent_id=pending["intentId"])
    assert refused.value.status == 403
    assert agent.verify(intent_id=pending["intentId"])["status"] == "pending_approval"


def test_webhook_secret_is_generated_when_the_sdk_sends_none(gate: GateProcess) -> None:
    agent, _ = sdk_for(gate)
    pending = agent.propose(destination="stripe.refund", policy="finance-high-risk", payload="x")
    hook = agent.register_webhook(intent_id=pending["intentId"], url="http://127.0.0.1:9/hook")
    assert len(hook["secret"]) >= 32  # shown once; deliveries are signed with it

    # The seed's README example secret is 11 characters: too short to sign with.
    with pytest.raises(GateError) as short:
        agent.register_webhook(
            intent_id=pending["intentId"], url="http://127.0.0.1:9/hook", secret="your-secret"
        )
    assert short.value.status == 400
    assert "16" in short.value.body["message"]


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'"estimated_value_usd": -5', "estimated_value_usd"),
        (b'"estimated_value_usd": NaN', "estimated_value_usd"),
        (b'"estimated_value_usd": Infinity', "estimated_value_usd"),
        (b'"recordCount": -1', "recordCount"),
        (b'"sensitivity_tags": "pii"', "sensitivity_tags"),
        (b'"metadata": [1]', "metadata"),
        (b'"idempotency_key": 7', "idempotency_key"),
    ],
)
def test_bad_optional_fields_are_400_naming_the_field(
    gate: GateProcess, raw: bytes, field: str
) -> None:
    registered = gate.register(f"raw-{time.monotonic_ns() % 10**9}")
    body = b'{"destination": "stripe.refund", "policy": "finance-high-risk", ' + raw + b"}"
    with gate.client(registered["apiKey"]) as client:
        answer = client.post(
            "/v1/intents", content=body, headers={"Content-Type": "application/json"}
        )
    assert answer.status_code == 400
    assert field in answer.json()["message"]


def test_legacy_routes_of_the_seed(gate: GateProcess) -> None:
    agent, registered = sdk_for(gate)
    _, reviewer = sdk_for(gate, role="reviewer")
    pending = agent.propose(destination="stripe.refund", policy="finance-high-risk", payload="x")
    with gate.client(registered["apiKey"]) as client:
        shown = client.get(f"/v1/proposals/{pending['intentId']}")
        assert shown.status_code == 200
        assert shown.json()["decision"]["decision"] == "pending_approval"
        gone = client.post("/v1/deliver", json={"proposalId": pending["intentId"]})
        assert gone.status_code == 410
        assert "/v1/intents/{intentId}/execute" in gone.json()["message"]
    with gate.client(reviewer["apiKey"]) as client:
        answer = client.post("/v1/approve", json={"proposalId": pending["intentId"]})
        assert answer.status_code == 200
        assert answer.json()["status"] == "approved"
        assert client.post("/v1/approve", json={}).status_code == 400
    # Who is asking is settled before what they sent: no key and a bad body is 401, not 400.
    with httpx.Client(base_url=gate.url) as anonymous:
        for path in ("/v1/approve", "/v1/reject", "/v1/deliver"):
            assert anonymous.post(path, content=b"{not json").status_code == 401
