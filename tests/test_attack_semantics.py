"""An approval covers one request, and a read is a read (issue 9, items 6 and 7).

After a human approved ``POST /v1/refunds``, a retry that adds a header which changes
what the upstream does (another Stripe account, a method override, a rewritten URL, a new
idempotency key) is another request: refused. Method and path overrides are refused
outright unless a destination allows them, and then they are bound into the approval. A
GET passthrough rule passes reads only: a GET with a body or an override is refused.
"""

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from gate_process import GateProcess, running_gate
from upstreams import Upstream

POLICIES = {"finance": "id: finance\nrequire_approval: always\n"}


def registry(port: int) -> str:
    return f"""
default:
  action: block
"localhost:{port}":
  paths:
    /v1/refunds: {{method: POST, destination: stripe.refund, policy: finance}}
    /v1/override:
      method: POST
      destination: legacy.api
      policy: finance
      allow_method_override: true
    /v1/tenants:
      method: POST
      destination: saas.write
      policy: finance
      fingerprint_headers: [X-Customer-Region]
    /read: {{method: GET, passthrough: true}}
"""


class Env:
    def __init__(self, gate: GateProcess, upstream: Upstream) -> None:
        self.gate, self.upstream = gate, upstream
        self.agent = gate.register(f"semantics-{time.monotonic_ns()}")

    def client(self) -> httpx.Client:
        agent = self.agent
        proxy = f"http://{agent['agentId']}:{agent['apiKey']}@127.0.0.1:{self.gate.proxy_port}"
        return httpx.Client(proxy=proxy, timeout=10)

    def url(self, path: str) -> str:
        return f"http://localhost:{self.upstream.port}{path}"

    def received(self, mark: str) -> list[Any]:
        return [r for r in self.upstream.requests if mark.encode() in r.body or mark in r.path]

    def approve(self, intent_id: str) -> None:
        with self.gate.admin() as admin:
            response = admin.post(f"/v1/intents/{intent_id}/approve", json={})
        assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("semantics")
    with Upstream() as upstream:
        config = {"destinations.yaml": registry(upstream.port)}
        with running_gate(root, policies=POLICIES, config=config) as gate:
            yield Env(gate, upstream)


def approved(env: Env, path: str, body: dict[str, Any], headers: dict[str, str]) -> str:
    with env.client() as client:
        pending = client.post(env.url(path), json=body, headers=headers)
    assert pending.status_code == 202, pending.text
    intent_id = pending.headers["X-Gate-Intent-Id"]
    env.approve(intent_id)
    return intent_id


@pytest.mark.parametrize(
    ("extra", "status", "reason"),
    [
        ({"Stripe-Account": "acct_other"}, 409, "fingerprint_mismatch"),
        ({"Idempotency-Key": "another"}, 409, "fingerprint_mismatch"),
        ({"Stripe-Version": "2019-01-01"}, 409, "fingerprint_mismatch"),
        ({"X-HTTP-Method-Override": "DELETE"}, 403, "method_override_refused"),
        ({"X-HTTP-Method": "DELETE"}, 403, "method_override_refused"),
        ({"X-Method-Override": "DELETE"}, 403, "method_override_refused"),
        ({"X-Original-URL": "/v1/payouts"}, 403, "method_override_refused"),
        ({"X-Rewrite-URL": "/v1/payouts"}, 403, "method_override_refused"),
    ],
)
def test_a_retry_that_changes_meaning_does_not_ride_the_approval(
    env: Env, extra: dict[str, str], status: int, reason: str
) -> None:
    mark = f"r{time.monotonic_ns()}"
    body = {"charge": "ch_1", "m": mark}
    base = {"Idempotency-Key": mark}
    intent_id = approved(env, "/v1/refunds", body, base)
    with env.client() as client:
        changed = client.post(
            env.url("/v1/refunds"),
            json=body,
            headers={**base, **extra, "X-Gate-Intent-Id": intent_id},
        )
        assert (changed.status_code, changed.json()["reason_code"]) == (status, reason)
        assert not env.received(mark)
        exact = client.post(
            env.url("/v1/refunds"), json=body, headers={**base, "X-Gate-Intent-Id": intent_id}
        )
    assert exact.status_code == 200, exact.text
    assert len(env.received(mark)) == 1


def test_method_override_in_a_form_body_is_refused(env: Env) -> None:
    mark = f"f{time.monotonic_ns()}"
    with env.client() as client:
        response = client.post(env.url("/v1/refunds"), data={"_method": "DELETE", "m": mark})
    assert response.status_code == 403
    assert response.json()["reason_code"] == "method_override_refused"
    assert not env.received(mark)


def test_an_allowed_override_is_bound_into_the_approval(env: Env) -> None:
    mark = f"o{time.monotonic_ns()}"
    body = {"m": mark}
    intent_id = approved(env, "/v1/override", body, {"X-HTTP-Method-Override": "PATCH"})
    with env.client() as client:
        other = client.post(
            env.url("/v1/override"),
            json=body,
            headers={"X-HTTP-Method-Override": "DELETE", "X-Gate-Intent-Id": intent_id},
        )
        assert other.status_code == 409
        assert not env.received(mark)
        same = client.post(
            env.url("/v1/override"),
            json=body,
            headers={"X-HTTP-Method-Override": "PATCH", "X-Gate-Intent-Id": intent_id},
        )
    assert same.status_code == 200, same.text
    (delivered,) = env.received(mark)
    assert delivered.header("X-HTTP-Method-Override") == "PATCH"


def test_a_destination_can_bind_its_own_headers(env: Env) -> None:
    mark = f"t{time.monotonic_ns()}"
    body = {"m": mark}
    intent_id = approved(env, "/v1/tenants", body, {"X-Customer-Region": "eu"})
    with env.client() as client:
        moved = client.post(
            env.url("/v1/tenants"),
            json=body,
            headers={"X-Customer-Region": "us", "X-Gate-Intent-Id": intent_id},
        )
        assert moved.status_code == 409
        same = client.post(
            env.url("/v1/tenants"),
            json=body,
            headers={"X-Customer-Region": "eu", "X-Gate-Intent-Id": intent_id},
        )
    assert same.status_code == 200
    assert len(env.received(mark)) == 1


@pytest.mark.parametrize(
    ("query", "headers", "content", "reason"),
    [
        ("", {}, b'{"delete": "everything"}', "not_a_read"),
        ("", {"X-HTTP-Method-Override": "POST"}, b"", "method_override_refused"),
        ("", {"X-HTTP-Method-Override": "POST"}, b'{"x": 1}', "method_override_refused"),
        ("", {"X-HTTP-Method": "POST"}, b"", "method_override_refused"),
        ("", {"X-Method-Override": "POST"}, b"", "method_override_refused"),
        ("?_method=POST", {}, b"", "method_override_refused"),
        ("?_METHOD=delete", {}, b"", "method_override_refused"),
        ("", {"X-Original-URL": "/admin/delete"}, b"", "method_override_refused"),
        ("", {"X-Rewrite-URL": "/admin/delete"}, b"", "method_override_refused"),
    ],
)
def test_a_passthrough_read_that_carries_a_write_is_refused(
    env: Env, query: str, headers: dict[str, str], content: bytes, reason: str
) -> None:
    mark = f"p{time.monotonic_ns()}"
    with env.client() as client:
        response = client.request(
            "GET", env.url(f"/read/{mark}{query}"), headers=headers, content=content
        )
    assert response.status_code == 403, response.text
    assert response.json()["reason_code"] == reason
    assert not env.received(mark)


def test_a_plain_read_passes(env: Env) -> None:
    mark = f"g{time.monotonic_ns()}"
    with env.client() as client:
        response = client.get(env.url(f"/read/{mark}?page=2"))
    assert response.status_code == 200
    assert len(env.received(mark)) == 1
