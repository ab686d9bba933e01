"""The control API, end to end: a real `gate-proxy serve`, a real SQLite file, real HTTP."""

import base64
import json
import os
import sqlite3
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from gate_process import GateProcess, running_gate
from prometheus_client.parser import text_string_to_metric_families

from gate_proxy.core.canonical import canonical_bytes
from gate_proxy.keys import hash_key

POLICIES = {
    "support-reply": """
id: support-reply
destinations: [zendesk.reply, intercom.reply]
allowed_types: [text, json]
block_if_terms: ["refund guaranteed", "legal action", "sue"]
auto_approve_under: 1
expiry_minutes: 30
""",
    "finance-high-risk": """
id: finance-high-risk
destinations: [stripe.refund]
require_approval: always
expiry_minutes: 15
""",
    "two-person": """
id: two-person
destinations: [db.delete]
require_approval: always
require_approvals: 2
""",
    "schema-checked-email": """
id: schema-checked-email
destinations: [sendgrid.send]
field_checks:
  - path: to
    required: true
    pattern: "^[^@]+@[^@]+\\\\.[^@]+$"
  - path: amount
    min: 1
    max: 100
rate_limits:
  per_agent_per_hour: 3
environments:
  production:
    require_approval: always
  development:
    require_approval: never
""",
}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def gate(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GateProcess]:
    """The same API on both stores: SQLite in the data dir, or a real PostgreSQL."""
    root = tmp_path_factory.mktemp(f"api-{request.param}")
    url = request.getfixturevalue("pg_module_url") if request.param == "postgres" else None
    with running_gate(root, policies=POLICIES, database_url=url) as process:
        yield process


@pytest.fixture
def agent(gate: GateProcess, request: pytest.FixtureRequest) -> dict:
    name = f"agent-{request.node.name[:40]}-{time.monotonic_ns() % 10**6}"
    name = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in name)
    return gate.register(name)


@pytest.fixture
def reviewer(gate: GateProcess) -> dict:
    return gate.register(f"reviewer-{time.monotonic_ns() % 10**9}", role="reviewer")


def propose(gate: GateProcess, key: str, **body: object) -> httpx.Response:
    with gate.client(key) as client:
        return client.post("/v1/intents", json=body)


def reply(gate: GateProcess, key: str, payload: str = "Thanks, resolved.", **extra: object) -> dict:
    response = propose(
        gate,
        key,
        destination="zendesk.reply",
        policy="support-reply",
        payload=payload,
        recordCount=1,
        **extra,
    )
    assert response.status_code == 201, response.text
    return response.json()


def refund(gate: GateProcess, key: str, **extra: object) -> dict:
    response = propose(
        gate,
        key,
        destination="stripe.refund",
        policy="finance-high-risk",
        payload=json.dumps({"charge": "ch_1", "amount": 500}),
        **extra,
    )
    assert response.status_code == 201, response.text
    return response.json()


# -- agents and keys ---------------------------------------------------------------------------


def test_registration_needs_an_admin_key(gate: GateProcess, agent: dict) -> None:
    with gate.client() as anonymous:
        response = anonymous.post("/v1/agents/register", json={"name": "x1"})
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    with gate.client(agent["apiKey"]) as as_agent:
        response = as_agent.post("/v1/agents/register", json={"name": "x2"})
    assert response.status_code == 403
    assert agent["apiKey"].startswith("gate_sk_")
    assert agent["role"] == "agent"


def test_api_key_is_stored_only_as_a_hash(gate: GateProcess, agent: dict) -> None:
    key = agent["apiKey"]
    stored = gate.stored_bytes()
    assert hash_key(key).encode() in stored  # really looked where the agents are
    assert key.encode() not in stored
    with gate.admin() as admin:
        shown = admin.get(f"/v1/agents/{agent['agentId']}").json()
    assert "apiKey" not in shown and key not in json.dumps(shown)


def test_suspended_and_revoked_keys_get_403(gate: GateProcess) -> None:
    target = gate.register(f"suspendable-{time.monotonic_ns() % 10**9}")
    with gate.admin() as admin:
        assert admin.post(f"/v1/agents/{target['agentId']}/suspend").status_code == 200
    response = propose(gate, target["apiKey"], destination="zendesk.reply", policy="support-reply")
    assert response.status_code == 403
    assert response.json()["error"] == "agent_suspended"
    with gate.admin() as admin:
        assert admin.post(f"/v1/agents/{target['agentId']}/reactivate").status_code == 200
    assert reply(gate, target["apiKey"])["status"] == "approved"
    with gate.admin() as admin:
        assert admin.post(f"/v1/agents/{target['agentId']}/revoke").status_code == 200
        assert admin.post(f"/v1/agents/{target['agentId']}/reactivate").status_code == 409
    response = propose(gate, target["apiKey"], destination="zendesk.reply", policy="support-reply")
    assert response.status_code == 403
    assert response.json()["error"] == "agent_revoked"


def test_agents_list_and_get(gate: GateProcess, agent: dict, reviewer: dict) -> None:
    with gate.admin() as admin:
        names = {a["name"] for a in admin.get("/v1/agents").json()["agents"]}
    assert agent["name"] in names
    with gate.client(agent["apiKey"]) as own:
        assert own.get("/v1/agents").status_code == 403
        assert own.get(f"/v1/agents/{agent['agentId']}").json()["name"] == agent["name"]
        assert own.get(f"/v1/agents/{reviewer['agentId']}").status_code == 404


def test_unknown_key_is_401(gate: GateProcess) -> None:
    with gate.client("gate_sk_not-a-real-key") as client:
        response = client.get("/v1/intents")
    assert response.status_code == 401


# -- decisions ---------------------------------------------------------------------------------


def test_auto_approve_block_and_pending(gate: GateProcess, agent: dict) -> None:
    key = agent["apiKey"]
    approved = reply(gate, key)
    assert approved["status"] == "approved"
    assert approved["reason_code"] == "approved_by_policy"
    assert 0 <= approved["risk_score"] <= 1
    blocked = reply(gate, key, payload="We will take L3gal-Action!")
    assert blocked["status"] == "blocked"
    assert blocked["reason_code"] == "blocked_term_detected"
    assert "legal action" in blocked["blockReason"]
    pending = refund(gate, key)
    assert pending["status"] == "pending_approval"
    assert pending["expiresAt"]


def test_word_boundaries_and_evasions(gate: GateProcess, agent: dict) -> None:
    key = agent["apiKey"]
    assert reply(gate, key, payload="Your issue has been resolved")["status"] == "approved"
    assert reply(gate, key, payload="We will s.u.e you")["status"] == "blocked"
    escaped = json.dumps({"text": "we will \u0073ue"}, ensure_ascii=True).replace("s", "\\u0073")
    assert reply(gate, key, payload=escaped)["status"] == "blocked"
    assert reply(gate, key, payload="le\u200bgal ac\u00adtion")["status"] == "blocked"
    long_tail = "fine text " * 5000 + "refund guaranteed"
    assert reply(gate, key, payload=long_tail)["status"] == "blocked"


def test_unknown_policy_is_blocked(gate: GateProcess, agent: dict) -> None:
    response = propose(gate, agent["apiKey"], destination="zendesk.reply", policy="nope")
    assert response.status_code == 201
    assert response.json()["status"] == "blocked"
    assert response.json()["reason_code"] == "policy_not_found"


def test_field_checks_block_non_json_and_bad_fields(gate: GateProcess) -> None:
    sender = gate.register(f"sender-{time.monotonic_ns() % 10**9}", environment="development")
    key = sender["apiKey"]
    base = {"destination": "sendgrid.send", "policy": "schema-checked-email"}
    not_json = propose(gate, key, payload="to: someone", **base).json()
    assert not_json["status"] == "blocked"
    assert not_json["reason_code"] == "field_check_failed"
    bad = propose(gate, key, payload={"to": "nobody", "amount": 5}, **base).json()
    assert bad["status"] == "blocked" and "to" in bad["blockReason"]
    good = propose(gate, key, payload={"to": "a@b.co", "amount": 5}, **base).json()
    assert good["status"] == "approved"  # development: require_approval never


def test_environment_comes_from_the_server_not_the_request(gate: GateProcess) -> None:
    prod = gate.register(f"prod-{time.monotonic_ns() % 10**9}", environment="production")
    response = propose(
        gate,
        prod["apiKey"],
        destination="sendgrid.send",
        policy="schema-checked-email",
        payload={"to": "a@b.co", "amount": 5},
        metadata={"environment": "development"},
    ).json()
    assert response["status"] == "pending_approval"


def test_rate_limits(gate: GateProcess) -> None:
    sender = gate.register(f"rate-{time.monotonic_ns() % 10**9}", environment="development")
    statuses = [
        propose(
            gate,
            sender["apiKey"],
            destination="sendgrid.send",
            policy="schema-checked-email",
            payload={"to": "a@b.co", "amount": 5},
        ).json()
        for _ in range(4)
    ]
    assert [s["status"] for s in statuses] == ["approved"] * 3 + ["blocked"]
    assert statuses[-1]["reason_code"] == "rate_limited"


def test_allowed_policies_and_destinations_are_enforced(gate: GateProcess) -> None:
    scoped = gate.register(
        f"scoped-{time.monotonic_ns() % 10**9}",
        allowed_policies=["support-reply"],
        allowed_destinations=["zendesk.reply"],
    )
    key = scoped["apiKey"]
    assert reply(gate, key)["status"] == "approved"
    wrong_policy = refund(gate, key)
    assert wrong_policy["status"] == "blocked"
    assert wrong_policy["reason_code"] == "policy_not_allowed"
    wrong_destination = propose(
        gate, key, destination="intercom.reply", policy="support-reply", payload="hi"
    ).json()
    assert wrong_destination["status"] == "blocked"
    assert wrong_destination["reason_code"] == "destination_not_allowed"


def test_idempotency_key_gives_duplicate_blocked(gate: GateProcess, agent: dict) -> None:
    first = reply(gate, agent["apiKey"], idempotency_key="lead-42")
    second = reply(gate, agent["apiKey"], idempotency_key="lead-42")
    assert first["status"] == "approved"
    assert second["status"] == "duplicate_blocked"
    assert second["duplicateOf"] == first["intentId"]


def test_idempotency_key_header(gate: GateProcess, agent: dict) -> None:
    body = {"destination": "zendesk.reply", "policy": "support-reply", "payload": "hi"}
    with gate.client(agent["apiKey"]) as client:
        first = client.post("/v1/intents", json=body, headers={"Idempotency-Key": "hdr-1"})
        second = client.post("/v1/intents", json=body, headers={"Idempotency-Key": "hdr-1"})
    assert first.json()["status"] == "approved"
    assert second.json()["status"] == "duplicate_blocked"


def test_on_behalf_of_is_recorded(gate: GateProcess, agent: dict) -> None:
    intent = reply(gate, agent["apiKey"], on_behalf_of="agt_orchestrator")
    with gate.client(agent["apiKey"]) as client:
        trail = client.get(f"/v1/intents/{intent['intentId']}/audit").json()
        shown = client.get(f"/v1/intents/{intent['intentId']}").json()
    assert [e["eventType"] for e in trail] == ["proposed", "policy_checked", "approved"]
    assert trail[0]["metadata"]["on_behalf_of"] == "agt_orchestrator"
    assert trail[0]["actor"] == agent["name"]
    assert shown["on_behalf_of"] == "agt_orchestrator"


def test_agents_see_only_their_own(gate: GateProcess, agent: dict, reviewer: dict) -> None:
    other = gate.register(f"other-{time.monotonic_ns() % 10**9}")
    mine = reply(gate, agent["apiKey"])
    with gate.client(other["apiKey"]) as client:
        assert client.get(f"/v1/intents/{mine['intentId']}").status_code == 404
        assert client.get(f"/v1/intents/{mine['intentId']}/audit").status_code == 404
        ids = [i["intentId"] for i in client.get("/v1/intents").json()["intents"]]
        assert mine["intentId"] not in ids
    with gate.client(reviewer["apiKey"]) as client:
        assert client.get(f"/v1/intents/{mine['intentId']}").status_code == 200


def test_payload_preview_is_redacted(gate: GateProcess, agent: dict) -> None:
    secret = "sk_live_" + "Z" * 24
    payload = {
        "message": "hello",
        "api_key": "plain-secret-value-123",
        "note": f"Authorization: Bearer {secret}",
    }
    intent = reply(gate, agent["apiKey"], payload=json.dumps(payload))
    with gate.client(agent["apiKey"]) as client:
        preview = client.get(f"/v1/intents/{intent['intentId']}").json()["payload"]["preview"]
    assert "plain-secret-value-123" not in preview and secret not in preview
    assert "hello" in preview
    stored = gate.stored_bytes()
    assert intent["intentId"].encode() in stored
    assert secret.encode() not in stored and b"plain-secret-value-123" not in stored


# -- review ------------------------------------------------------------------------------------


def test_agents_cannot_approve(gate: GateProcess, agent: dict) -> None:
    other = gate.register(f"peer-{time.monotonic_ns() % 10**9}")
    pending = refund(gate, agent["apiKey"])
    for key in (agent["apiKey"], other["apiKey"]):
        with gate.client(key) as client:
            response = client.post(f"/v1/intents/{pending['intentId']}/approve", json={})
        assert response.status_code == 403


def test_nobody_approves_their_own_intent(gate: GateProcess, reviewer: dict) -> None:
    own = refund(gate, reviewer["apiKey"])
    with gate.client(reviewer["apiKey"]) as client:
        response = client.post(f"/v1/intents/{own['intentId']}/approve", json={})
        assert response.status_code == 403
        assert response.json()["error"] == "self_review"
        assert client.post(f"/v1/intents/{own['intentId']}/reject", json={}).status_code == 403
    with gate.admin() as admin:
        admin_own = admin.post(
            "/v1/intents",
            json={"destination": "stripe.refund", "policy": "finance-high-risk", "payload": "x"},
        ).json()
        response = admin.post(f"/v1/intents/{admin_own['intentId']}/approve", json={})
    assert response.status_code == 403


def test_approve_then_conflict_and_reject_flow(
    gate: GateProcess, agent: dict, reviewer: dict
) -> None:
    pending = refund(gate, agent["apiKey"])
    with gate.client(reviewer["apiKey"]) as client:
        approved = client.post(f"/v1/intents/{pending['intentId']}/approve", json={})
        assert approved.status_code == 200
        assert approved.json()["status"] == "approved" and approved.json()["approvedAt"]
        again = client.post(f"/v1/intents/{pending['intentId']}/approve", json={})
        assert again.status_code == 409
        other = refund(gate, agent["apiKey"])
        rejected = client.post(
            f"/v1/intents/{other['intentId']}/reject", json={"reason": "wrong customer"}
        )
        assert rejected.json()["status"] == "rejected"
    with gate.client(agent["apiKey"]) as client:
        trail = client.get(f"/v1/intents/{other['intentId']}/audit").json()
    assert trail[-1]["eventType"] == "rejected"
    assert trail[-1]["metadata"]["reason"] == "wrong customer"


def test_blocked_intent_cannot_be_approved(gate: GateProcess, agent: dict) -> None:
    blocked = reply(gate, agent["apiKey"], payload="legal action")
    with gate.admin() as admin:
        response = admin.post(f"/v1/intents/{blocked['intentId']}/approve", json={})
    assert response.status_code == 409


def test_expired_intent_gives_410(gate: GateProcess, agent: dict) -> None:
    """Past its deadline an intent cannot be approved (the sweeper's timing is tested with
    an injected clock in tests/test_usecase_proposals.py)."""
    pending = refund(gate, agent["apiKey"], expiresIn="10s")
    gate.shift_clock(11)
    with gate.admin() as admin:
        response = admin.post(f"/v1/intents/{pending['intentId']}/approve", json={})
        expired = admin.get("/v1/intents", params={"status": "expired", "limit": 500}).json()
    assert response.status_code == 410
    assert pending["intentId"] in [i["intentId"] for i in expired["intents"]]


def test_agent_cannot_stretch_policy_expiry(gate: GateProcess, agent: dict) -> None:
    pending = refund(gate, agent["apiKey"], expiresIn="30d")
    with gate.admin() as admin:
        created = admin.get(f"/v1/intents/{pending['intentId']}").json()["createdAt"]

    def seconds(text: str) -> float:
        return time.mktime(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S"))

    # Measured on the gate's own clock: at most the policy's 15 minutes.
    assert seconds(pending["expiresAt"]) - seconds(created) <= 15 * 60


def test_review_hash_binds_the_approval(gate: GateProcess, agent: dict, reviewer: dict) -> None:
    pending = refund(gate, agent["apiKey"])
    with gate.client(reviewer["apiKey"]) as client:
        wrong = client.post(
            f"/v1/intents/{pending['intentId']}/approve", json={"reviewHash": "0" * 64}
        )
        assert wrong.status_code == 409
        assert wrong.json()["error"] == "review_hash_mismatch"
        right = client.post(
            f"/v1/intents/{pending['intentId']}/approve", json={"reviewHash": pending["reviewHash"]}
        )
    assert right.status_code == 200


def test_n_of_m_needs_distinct_reviewers(gate: GateProcess, agent: dict) -> None:
    first, second = (
        gate.register(f"rv{i}-{time.monotonic_ns() % 10**9}", role="reviewer") for i in range(2)
    )
    pending = propose(
        gate, agent["apiKey"], destination="db.delete", policy="two-person", payload="DELETE FROM t"
    ).json()
    with gate.client(first["apiKey"]) as client:
        vote = client.post(f"/v1/intents/{pending['intentId']}/approve", json={}).json()
        assert vote["status"] == "pending_approval" and vote["approvals"] == 1
        assert client.post(f"/v1/intents/{pending['intentId']}/approve", json={}).status_code == 409
    with gate.client(second["apiKey"]) as client:
        done = client.post(f"/v1/intents/{pending['intentId']}/approve", json={}).json()
    assert done["status"] == "approved"


# -- execution orders --------------------------------------------------------------------------


def test_execution_order_is_signed_and_single_use(gate: GateProcess, agent: dict) -> None:
    pending = refund(gate, agent["apiKey"])
    with gate.client(agent["apiKey"]) as client:
        assert client.post(f"/v1/intents/{pending['intentId']}/execute").status_code == 409
    with gate.admin() as admin:
        admin.post(f"/v1/intents/{pending['intentId']}/approve", json={})
        key_info = admin.get("/v1/keys/signing").json()
    with gate.client(agent["apiKey"]) as client:
        order = client.post(f"/v1/intents/{pending['intentId']}/execute")
        assert order.status_code == 201
        order = order.json()
        assert order["execution_token"].startswith("gex_")
        assert client.post(f"/v1/intents/{pending['intentId']}/execute").status_code == 409
        shown = client.get(f"/v1/executions/{order['executionId']}").json()
        assert order["execution_token"] not in json.dumps(shown)
        assert shown["status"] == "pending"
    public_key = load_pem_public_key(key_info["public_key_pem"].encode())
    public_key.verify(base64.b64decode(order["signature"]), canonical_bytes(order["order"]))

    token = order["execution_token"]
    with httpx.Client(base_url=gate.url, headers={"Authorization": f"Bearer {token}"}) as worker:
        report = worker.post(
            f"/v1/executions/{order['executionId']}/report",
            json={"status": "succeeded", "report": {"rows": 3}},
        )
        assert report.status_code == 200
        reuse = worker.post(
            f"/v1/executions/{order['executionId']}/report", json={"status": "failed"}
        )
        assert reuse.status_code == 409
    with gate.client(agent["apiKey"]) as client:
        intent = client.get(f"/v1/intents/{pending['intentId']}").json()
        trail = [
            e["eventType"] for e in client.get(f"/v1/intents/{pending['intentId']}/audit").json()
        ]
    assert intent["status"] == "succeeded"
    assert trail[-2:] == ["execution_requested", "execution_succeeded"]
    assert token.encode() not in gate.stored_bytes()


def test_execution_report_rejects_a_wrong_token(gate: GateProcess, agent: dict) -> None:
    intent = reply(gate, agent["apiKey"])
    with gate.client(agent["apiKey"]) as client:
        order = client.post(f"/v1/intents/{intent['intentId']}/execute").json()
    with httpx.Client(base_url=gate.url, headers={"Authorization": "Bearer gex_wrong"}) as worker:
        response = worker.post(
            f"/v1/executions/{order['executionId']}/report", json={"status": "succeeded"}
        )
    assert response.status_code == 401


# -- API hygiene -------------------------------------------------------------------------------


def test_malformed_json_and_oversized_bodies(gate: GateProcess, agent: dict) -> None:
    with gate.client(agent["apiKey"]) as client:
        bad = client.post(
            "/v1/intents", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert bad.status_code == 400
        assert set(bad.json()) >= {"error", "message"}
        missing = client.post("/v1/intents", json={"policy": "support-reply"})
        assert missing.status_code == 400 and missing.json()["error"] == "bad_request"
        big = client.post(
            "/v1/intents",
            content=b"x" * (2 * 1024 * 1024),
            headers={"Content-Type": "application/json"},
        )
    assert big.status_code == 413
    assert big.json()["error"] == "payload_too_large"


def test_openapi_lists_every_route(gate: GateProcess) -> None:
    from gate_proxy.api.openapi import ROUTES

    with gate.client() as client:
        spec = client.get("/v1/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    documented = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    assert documented == {(m.upper(), p) for m, p, *_ in ROUTES}
    # Every documented route answers (not 404/405) on the live server.
    with gate.client() as client:
        for method, path in sorted(documented):
            concrete = path.replace("{agent_id}", "agt_x").replace("{intent_id}", "int_x")
            concrete = concrete.replace("{execution_id}", "exe_x")
            response = client.request(method, concrete)
            assert response.status_code != 405, (method, path)
            if "{" not in path:
                assert response.status_code != 404, (method, path)


def test_app_routes_match_openapi() -> None:
    from gate_proxy.api.app import build_app
    from gate_proxy.api.openapi import ROUTES

    app = build_app(None, body_limit=1024)  # type: ignore[arg-type]
    served = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD"
    }
    documented = {(m.upper(), p) for m, p, *_ in ROUTES}
    proxy_and_hooks = {
        ("POST", "/v1/webhooks/register"),
        ("GET", "/v1/proxy/ca.crt"),
        ("GET", "/v1/proxy/held"),
    }
    assert served | proxy_and_hooks == documented


def test_metrics(tmp_path: Path) -> None:
    # A gate of its own: the averages must not depend on what other tests approved.
    with running_gate(tmp_path) as gate:
        check_metrics(gate)


def check_metrics(gate: GateProcess) -> None:
    agent, reviewer = gate.register("metrics-agent"), gate.register("rita", role="reviewer")
    other = gate.register("other-agent")
    refund(gate, other["apiKey"])  # the reviewer's summary covers every agent
    pending = refund(gate, agent["apiKey"])
    gate.shift_clock(2.0)  # the review takes two seconds of the gate's time
    with gate.client(reviewer["apiKey"]) as client:
        client.post(f"/v1/intents/{pending['intentId']}/approve", json={})
        summary = client.get("/v1/metrics").json()
    for field in (
        "actions_attempted",
        "actions_blocked",
        "actions_pending",
        "actions_approved",
        "actions_succeeded",
        "actions_failed",
        "actions_duplicate",
        "avg_approval_latency_ms",
    ):
        assert field in summary
    assert summary["avg_approval_latency_ms"] >= 2000
    with gate.client(agent["apiKey"]) as client:
        own = client.get("/v1/metrics").json()
    assert own["actions_attempted"] < summary["actions_attempted"]
    text = httpx.get(f"{gate.url}/metrics").text
    samples = [
        (sample.name, sample.labels)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]
    assert any(
        name == "gate_decisions_total"
        and labels.get("outcome") == "pending_approval"
        and labels.get("destination") == "stripe.refund"
        for name, labels in samples
    )
    assert any(name == "gate_decision_latency_seconds_bucket" for name, _ in samples)


def test_legacy_aliases(gate: GateProcess, agent: dict, reviewer: dict) -> None:
    with gate.client(agent["apiKey"]) as client:
        proposed = client.post(
            "/v1/propose",
            json={"destination": "stripe.refund", "policy": "finance-high-risk", "payload": "x"},
        ).json()
        assert proposed["status"] == "pending_approval"
        listed = client.get("/v1/proposals").json()["intents"]
        assert proposed["intentId"] in [i["intentId"] for i in listed]
    with gate.client(reviewer["apiKey"]) as client:
        assert (
            client.post("/v1/approve", json={"intentId": proposed["intentId"]}).json()["status"]
            == "approved"
        )
        other = refund(gate, agent["apiKey"])
        assert (
            client.post("/v1/reject", json={"intentId": other["intentId"], "reason": "no"}).json()[
                "status"
            ]
            == "rejected"
        )


# -- ledger ------------------------------------------------------------------------------------


def test_ledger_verify_and_export(gate: GateProcess, agent: dict) -> None:
    reply(gate, agent["apiKey"])
    result = gate.cli("ledger", "verify", *gate.store_args())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "intact" in result.stdout
    exported = gate.cli("ledger", "export", "--format", "jsonl", *gate.store_args())
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert lines and all({"seq", "hash", "prev", "type"} <= set(line) for line in lines)
    assert [line["seq"] for line in lines] == list(range(1, len(lines) + 1))


def test_tampered_ledger_is_detected(tmp_path: Path) -> None:
    with running_gate(tmp_path, policies=POLICIES) as gate:
        agent = gate.register("tamper-agent")
        for _ in range(3):
            reply(gate, agent["apiKey"])
    db = gate.data_dir / "gate.db"
    assert gate.cli("ledger", "verify", "--data-dir", str(gate.data_dir)).returncode == 0
    conn = sqlite3.connect(db)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE ledger SET body = 'x' WHERE seq = 3")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM ledger WHERE seq = 3")
    # An attacker with raw file access drops the guard and edits an event.
    seq, event_id, body = conn.execute(
        "SELECT seq, id, body FROM ledger WHERE type = 'proposed' ORDER BY seq LIMIT 1"
    ).fetchone()
    forged = body.replace('"agent":"tamper-agent"', '"agent":"someone-else"')
    assert forged != body
    conn.execute("DROP TRIGGER ledger_no_update")
    conn.execute("UPDATE ledger SET body = ? WHERE seq = ?", (forged, seq))
    conn.commit()
    conn.close()
    result = gate.cli("ledger", "verify", "--data-dir", str(gate.data_dir))
    assert result.returncode == 1
    assert f"seq={seq}" in result.stdout and event_id in result.stdout


def test_rewritten_chain_breaks_the_signed_checkpoint(tmp_path: Path) -> None:
    from gate_proxy.ledger import seal

    with running_gate(tmp_path, policies=POLICIES) as gate:
        agent = gate.register("rewrite-agent")
        reply(gate, agent["apiKey"])
    conn = sqlite3.connect(gate.data_dir / "gate.db")
    conn.execute("DROP TRIGGER ledger_no_update")
    rows = conn.execute("SELECT seq, body FROM ledger ORDER BY seq").fetchall()
    prev = "0" * 64
    for seq, body in rows:  # recompute every hash so the chain itself is consistent
        event = json.loads(body)
        event["prev"] = prev
        if seq == 1:
            event["data"]["name"] = "forged"
        text, prev = seal(event)
        conn.execute("UPDATE ledger SET body = ?, hash = ? WHERE seq = ?", (text, prev, seq))
    conn.commit()
    conn.close()
    result = gate.cli("ledger", "verify", "--data-dir", str(gate.data_dir))
    assert result.returncode == 1
    assert "checkpoint" in result.stdout


# -- startup and configuration -------------------------------------------------------------------


def test_generated_admin_key_is_private_and_printed_once(tmp_path: Path) -> None:
    with running_gate(tmp_path, policies=POLICIES, admin_key=None) as gate:
        key_file = gate.data_dir / "admin.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert stat.S_IMODE((gate.data_dir / "signing.key").stat().st_mode) == 0o600
        key = key_file.read_text().strip()
        assert key in gate.logs()
        result = gate.cli(
            "agents",
            "register",
            "cli-bot",
            "--url",
            gate.url,
            "--data-dir",
            str(gate.data_dir),
            env={"GATE_ADMIN_KEY": ""},
        )
        assert result.returncode == 0, result.stderr
        assert "gate_sk_" in result.stdout
        gate.stop()
        first_log = gate.logs()
        gate.start()
        assert key not in gate.logs()
    assert key in first_log


def test_malformed_policy_stops_serve_with_file_and_line(tmp_path: Path) -> None:
    from gate_process import GateProcess, prepare_root
    from upstreams import free_port

    prepare_root(tmp_path, {"broken": "id: broken\nrequire_approval: sometimes\n"})
    gate = GateProcess(tmp_path, free_port(), free_port(), free_port(), "gate_sk_x" * 3)
    gate.start(wait=False)
    assert gate.process is not None
    assert gate.process.wait(timeout=30) != 0
    assert "broken.yaml:2" in gate.logs() and "require_approval" in gate.logs()


def test_hot_reload_keeps_last_good_policies(gate: GateProcess, agent: dict) -> None:
    path = gate.policy_dir / "support-reply.yaml"
    original = path.read_text()

    def reload_failures() -> float:
        text = httpx.get(f"{gate.url}/metrics").text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if (
                    sample.name == "gate_config_reload_failures_total"
                    and sample.labels.get("config") == "policies"
                ):
                    return sample.value
        return 0.0

    failures = reload_failures()
    try:
        path.write_text(original + "\nauto_approve_under: [oops\n")
        deadline = time.monotonic() + 10
        while reload_failures() == failures and time.monotonic() < deadline:
            time.sleep(0.1)
        assert reload_failures() > failures
        assert reply(gate, agent["apiKey"])["status"] == "approved"
        assert "reload failed" in gate.logs()
        path.write_text(original.replace("auto_approve_under: 1", "require_approval: always"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if reply(gate, agent["apiKey"])["status"] == "pending_approval":
                break
            time.sleep(0.3)
        else:
            pytest.fail("the fixed policy was never loaded")
    finally:
        path.write_text(original)
        deadline = time.monotonic() + 10  # the module's other tests need the original back
        while reply(gate, agent["apiKey"])["status"] != "approved" and time.monotonic() < deadline:
            time.sleep(0.1)


def test_policy_check_command(tmp_path: Path) -> None:
    from gate_process import REPO

    ok = GateProcess(tmp_path, 0, 0, 0, None).cli("policy", "check", str(REPO / "policies"))
    assert ok.returncode == 0, ok.stderr
    assert "support-reply" in ok.stdout
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    (bad_dir / "x.yaml").write_text("id: x\nauto_approve_under: -3\n")
    bad = GateProcess(tmp_path, 0, 0, 0, None).cli("policy", "check", str(bad_dir))
    assert bad.returncode == 1
    assert "x.yaml:2" in bad.stderr and "auto_approve_under" in bad.stderr


def test_decision_log_line(gate: GateProcess, agent: dict) -> None:
    intent = reply(gate, agent["apiKey"])
    time.sleep(0.2)
    lines = [json.loads(line) for line in gate.logs().splitlines() if line.startswith("{")]
    matching = [line for line in lines if line.get("intent_id") == intent["intentId"]]
    assert len(matching) == 1
    line = matching[0]
    assert line["decision"] == "approved" and line["agent"] == agent["name"]
    assert line["destination"] == "zendesk.reply" and line["latency_ms"] >= 0
    assert agent["apiKey"] not in gate.logs()


def test_data_files_are_private(gate: GateProcess) -> None:
    files = [path for path in gate.data_dir.iterdir() if path.is_file()]
    assert files  # signing.pub at least; gate.db and its WAL on SQLite
    if gate.database_url is None:
        assert "gate.db" in {path.name for path in files}
    assert all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in files)
    assert stat.S_IMODE(os.stat(gate.data_dir).st_mode) == 0o700


def test_cli_review_is_bound_to_what_it_shows(gate: GateProcess, agent: dict) -> None:
    pending = refund(gate, agent["apiKey"])
    common = ("--url", gate.url, "--key", gate.admin_key or "")
    wrong = gate.cli("approve", pending["intentId"], "--review-hash", "0" * 64, *common)
    assert wrong.returncode == 1 and "differs" in wrong.stderr
    shown = gate.cli("approve", pending["intentId"], *common)
    assert shown.returncode == 0, shown.stderr
    assert "stripe.refund" in shown.stdout and "approved" in shown.stdout
    listed = gate.cli("intents", "list", "--status", "approved", *common)
    assert pending["intentId"] in listed.stdout and "DESTINATION" in listed.stdout
    other = refund(gate, agent["apiKey"])
    rejected = gate.cli("reject", other["intentId"], "--reason", "not today", *common)
    assert rejected.returncode == 0 and "rejected" in rejected.stdout
