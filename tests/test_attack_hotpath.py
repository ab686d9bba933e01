"""Attacks on the hot-path work (issue 13): what the speed-ups must not have loosened.

Against the real gate: credentials decoded once per connection (two agents on one
keep-alive socket, a key under another agent's name, a revocation between two requests),
holds that are one future each (revoked while held, then approved singly or in bulk; an
approval released by a bulk call and raced by the agent's own retry), bulk approve
answered per intent exactly as the single approve, and the on-loop SQLite writer refused
its lock for longer than its busy timeout while an approval is claimed and approved.
In-process: canonical bytes against the RFC 8785 reference for adversarial values.
"""

from __future__ import annotations

import base64
import enum
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import rfc8785
from gate_process import GateProcess, running_gate
from rawhttp import proxy_auth, raw_proxy, read_response
from upstreams import Upstream

from gate_proxy.core.canonical import canonical_bytes

POLICIES = {
    "finance-high-risk": "id: finance-high-risk\nrequire_approval: always\nexpiry_minutes: 15\n",
    "two-reviewers": (
        "id: two-reviewers\nrequire_approval: always\nrequire_approvals: 2\nexpiry_minutes: 15\n"
    ),
    "support-reply": "id: support-reply\nauto_approve_under: 1\n",
}


def _destinations(port: int) -> str:
    return f"""
"127.0.0.1:{port}":
  paths:
    /v1/refunds: {{method: POST, destination: stripe.refund, policy: finance-high-risk}}
    /v1/replies: {{method: POST, destination: zendesk.reply, policy: support-reply}}
    /v1/payouts: {{method: POST, destination: stripe.payout, policy: two-reviewers}}
"""


@pytest.fixture(scope="module")
def gate_and_upstream(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[GateProcess, Upstream]]:
    with Upstream() as upstream:
        root = tmp_path_factory.mktemp("hotpath")
        config = {"destinations.yaml": _destinations(upstream.port)}
        with running_gate(root, policies=POLICIES, config=config) as gate:
            yield gate, upstream


def _unique(prefix: str) -> str:
    return f"{prefix}-{time.monotonic_ns()}"


def _delivered(upstream: Upstream, marker: str) -> int:
    return sum(marker.encode() in request.body for request in upstream.requests)


def _wait_until(predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _raw_post(upstream: Upstream, path: str, auth: bytes, marker: str) -> bytes:
    body = json.dumps({"m": marker}).encode()
    return (
        f"POST {upstream.url}{path} HTTP/1.1\r\nHost: 127.0.0.1:{upstream.port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n".encode()
        + auth
        + b"\r\n"
        + body
    )


def _basic(user: str, key: str) -> bytes:
    token = base64.b64encode(f"{user}:{key}".encode())
    return b"Proxy-Authorization: Basic " + token + b"\r\n"


def _proxy_client(gate: GateProcess, agent: dict[str, Any]) -> httpx.Client:
    proxy = f"http://{agent['agentId']}:{agent['apiKey']}@127.0.0.1:{gate.proxy_port}"
    return httpx.Client(proxy=proxy, timeout=30)


# -- credentials decoded once per connection -------------------------------------------------


def test_two_agents_alternating_on_one_keep_alive_connection_are_each_decided_as_themselves(
    gate_and_upstream: tuple[GateProcess, Upstream],
) -> None:
    gate, upstream = gate_and_upstream
    free = gate.register(_unique("hp-free"))
    # Scoped away from zendesk.reply: its request there is refused by the agent scope.
    scoped = gate.register(_unique("hp-scoped"), allowed_destinations=["stripe.refund"])
    markers = [_unique(f"hp-alt-{n}") for n in range(4)]
    statuses = []
    with raw_proxy(gate.proxy_port) as sock:
        for marker, agent in zip(markers, (free, scoped, free, scoped), strict=True):
            sock.sendall(_raw_post(upstream, "/v1/replies", proxy_auth(agent), marker))
            statuses.append(read_response(sock).status)
    assert statuses == [200, 403, 200, 403]
    assert [_delivered(upstream, m) for m in markers] == [1, 0, 1, 0]


def test_a_key_under_another_agents_name_mid_connection_is_refused(
    gate_and_upstream: tuple[GateProcess, Upstream],
) -> None:
    gate, upstream = gate_and_upstream
    victim = gate.register(_unique("hp-victim"))
    attacker = gate.register(_unique("hp-attacker"))
    first, impersonated, garbage, again = (_unique(f"hp-imp-{n}") for n in range(4))
    with raw_proxy(gate.proxy_port) as sock:
        sock.sendall(_raw_post(upstream, "/v1/replies", proxy_auth(attacker), first))
        assert read_response(sock).status == 200
        # The attacker's own key under the victim's name: the user must match the key.
        forged = _basic(victim["agentId"], attacker["apiKey"])
        sock.sendall(_raw_post(upstream, "/v1/replies", forged, impersonated))
        assert read_response(sock).status == 407
    with raw_proxy(gate.proxy_port) as sock:
        sock.sendall(_raw_post(upstream, "/v1/replies", _basic(victim["agentId"], "x"), garbage))
        assert read_response(sock).status == 407
        # A bad credential on the connection poisons nothing for a good one after it.
        sock.sendall(_raw_post(upstream, "/v1/replies", proxy_auth(victim), again))
        assert read_response(sock).status == 200
    assert [_delivered(upstream, m) for m in (first, impersonated, garbage, again)] == [1, 0, 0, 1]


@pytest.mark.parametrize("action", ["revoke", "suspend"])
def test_a_status_change_between_two_requests_on_one_connection_bites_at_once(
    gate_and_upstream: tuple[GateProcess, Upstream], action: str
) -> None:
    gate, upstream = gate_and_upstream
    agent = gate.register(_unique(f"hp-{action}"))
    before, after = _unique("hp-before"), _unique("hp-after")
    with raw_proxy(gate.proxy_port) as sock:
        sock.sendall(_raw_post(upstream, "/v1/replies", proxy_auth(agent), before))
        assert read_response(sock).status == 200
        with gate.admin() as admin:
            assert admin.post(f"/v1/agents/{agent['agentId']}/{action}").status_code == 200
        sock.sendall(_raw_post(upstream, "/v1/replies", proxy_auth(agent), after))
        assert read_response(sock).status in (403, 407)
    assert (_delivered(upstream, before), _delivered(upstream, after)) == (1, 0)


# -- holds: one future each ------------------------------------------------------------------


def _hold(
    gate: GateProcess,
    upstream: Upstream,
    agent: dict[str, Any],
    marker: str,
    path: str = "/v1/refunds",
) -> tuple[threading.Thread, dict[str, Any]]:
    answer: dict[str, Any] = {}

    def run() -> None:
        try:
            with _proxy_client(gate, agent) as client:
                answer["response"] = client.post(
                    f"{upstream.url}{path}", json={"m": marker}, headers={"X-Gate-Wait": "1"}
                )
        except httpx.HTTPError as exc:
            answer["response"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, answer


def _held_intent(gate: GateProcess, agent: dict[str, Any]) -> str:
    found: list[str] = []

    def held() -> bool:
        with gate.admin() as admin:
            rows = admin.get("/v1/proxy/held").json()["held"]
        found[:] = [r["intentId"] for r in rows if r["agentId"] == agent["agentId"]]
        return bool(found)

    assert _wait_until(held), "the request was never held"
    return found[0]


def _retry(
    gate: GateProcess, upstream: Upstream, agent: dict[str, Any], marker: str, intent: str
) -> httpx.Response:
    with _proxy_client(gate, agent) as client:
        return client.post(
            f"{upstream.url}/v1/refunds", json={"m": marker}, headers={"X-Gate-Intent-Id": intent}
        )


@pytest.mark.parametrize("bulk", [False, True], ids=["single", "bulk"])
def test_a_held_request_whose_agent_is_revoked_is_never_forwarded_even_if_approved(
    gate_and_upstream: tuple[GateProcess, Upstream], bulk: bool
) -> None:
    gate, upstream = gate_and_upstream
    agent = gate.register(_unique("hp-held-revoked"))
    marker = _unique("hp-held-revoked")
    thread, answer = _hold(gate, upstream, agent, marker)
    intent = _held_intent(gate, agent)
    with gate.admin() as admin:
        assert admin.post(f"/v1/agents/{agent['agentId']}/revoke").status_code == 200
        thread.join(timeout=10)  # the revocation ends the hold at once, not at its timeout
        assert not thread.is_alive()
        if bulk:
            approved = admin.post("/v1/intents/approve", json={"intents": [{"intentId": intent}]})
            assert approved.status_code == 200
            assert approved.json()["results"][0]["error"] == "agent_inactive"
        else:
            approved = admin.post(f"/v1/intents/{intent}/approve", json={})
            assert approved.status_code == 409
            assert approved.json()["error"] == "agent_inactive"
    assert answer["response"].status_code == 403
    assert _retry(gate, upstream, agent, marker, intent).status_code in (403, 407)
    assert _delivered(upstream, marker) == 0


def test_a_hold_outlives_an_agent_change_that_leaves_the_agent_active(
    gate_and_upstream: tuple[GateProcess, Upstream],
) -> None:
    # Any status write on the agent wakes its holds; one that leaves it active (set active
    # again) must not end them early with "still pending": the approval then releases the
    # held request itself, once.
    gate, upstream = gate_and_upstream
    agent = gate.register(_unique("hp-held-touched"))
    marker = _unique("hp-held-touched")
    thread, answer = _hold(gate, upstream, agent, marker)
    intent = _held_intent(gate, agent)
    with gate.admin() as admin:
        for _ in range(2):
            assert admin.post(f"/v1/agents/{agent['agentId']}/reactivate").status_code == 200
        assert intent in [r["intentId"] for r in admin.get("/v1/proxy/held").json()["held"]]
        assert admin.post(f"/v1/intents/{intent}/approve", json={}).status_code == 200
    thread.join(timeout=20)
    assert not thread.is_alive()
    response = answer["response"]
    assert isinstance(response, httpx.Response) and response.status_code == 200, response
    assert _delivered(upstream, marker) == 1


def test_a_held_request_waits_for_the_whole_quorum_then_runs_once(
    gate_and_upstream: tuple[GateProcess, Upstream],
) -> None:
    # Two reviewers required: the first vote wakes the hold but ends nothing; the request
    # stays held (not answered "still pending") and the second vote releases it, once.
    gate, upstream = gate_and_upstream
    first, second = (gate.register(_unique(f"hp-q{n}"), role="reviewer") for n in (1, 2))
    agent = gate.register(_unique("hp-quorum-held"))
    marker = _unique("hp-quorum-held")
    thread, answer = _hold(gate, upstream, agent, marker, path="/v1/payouts")
    intent = _held_intent(gate, agent)
    with gate.client(first["apiKey"]) as client:
        assert client.post(f"/v1/intents/{intent}/approve", json={}).status_code == 200
    with gate.admin() as admin:
        assert intent in [r["intentId"] for r in admin.get("/v1/proxy/held").json()["held"]]
    assert _delivered(upstream, marker) == 0
    with gate.client(second["apiKey"]) as client:
        assert client.post(f"/v1/intents/{intent}/approve", json={}).status_code == 200
    thread.join(timeout=20)
    assert not thread.is_alive() and answer["response"].status_code == 200
    assert _delivered(upstream, marker) == 1


def test_a_suspended_then_reactivated_agents_bulk_approval_executes_once(
    gate_and_upstream: tuple[GateProcess, Upstream],
) -> None:
    gate, upstream = gate_and_upstream
    agent = gate.register(_unique("hp-held-suspended"))
    marker = _unique("hp-held-suspended")
    thread, answer = _hold(gate, upstream, agent, marker)
    intent = _held_intent(gate, agent)
    with gate.admin() as admin:
        assert admin.post(f"/v1/agents/{agent['agentId']}/suspend").status_code == 200
        thread.join(timeout=10)
        assert answer["response"].status_code == 403
        assert admin.post(f"/v1/agents/{agent['agentId']}/reactivate").status_code == 200
        approved = admin.post("/v1/intents/approve", json={"intents": [{"intentId": intent}]})
    assert approved.json()["results"][0]["result"] == "approved"
    assert _delivered(upstream, marker) == 0  # the ended hold released nothing
    statuses = [_retry(gate, upstream, agent, marker, intent).status_code for _ in range(3)]
    assert statuses[0] == 200 and all(s != 200 for s in statuses[1:])
    assert _delivered(upstream, marker) == 1


def test_a_bulk_release_raced_by_the_agents_own_retries_forwards_once(
    gate_and_upstream: tuple[GateProcess, Upstream],
) -> None:
    gate, upstream = gate_and_upstream
    agent = gate.register(_unique("hp-race"))
    marker = _unique("hp-race")
    thread, answer = _hold(gate, upstream, agent, marker)
    intent = _held_intent(gate, agent)
    retries: list[int] = []

    def retry() -> None:
        retries.append(_retry(gate, upstream, agent, marker, intent).status_code)

    racers = [threading.Thread(target=retry, daemon=True) for _ in range(4)]
    with gate.admin() as admin:
        for racer in racers:
            racer.start()
        approved = admin.post("/v1/intents/approve", json={"intents": [{"intentId": intent}]})
    assert approved.json()["results"][0]["result"] == "approved"
    for racer in (thread, *racers):
        racer.join(timeout=20)
    statuses = [answer["response"].status_code, *retries]
    assert statuses.count(200) == 1, statuses
    assert _delivered(upstream, marker) == 1


# -- bulk approve: per intent exactly as the single approve ----------------------------------


def _propose(gate: GateProcess, key: str, policy: str = "finance-high-risk") -> str:
    with gate.client(key) as client:
        response = client.post(
            "/v1/intents",
            json={"destination": "stripe.refund", "policy": policy, "payload": _unique("p")},
        )
    assert response.status_code in (201, 202), response.text
    return response.json()["intentId"]


def _single_result(response: httpx.Response) -> tuple[str, str | None]:
    body = response.json()
    if response.status_code == 200:
        return ("pending_more_votes" if "approvals" in body else "approved", None)
    return ("refused", body["error"])


def _bulk_result(entry: dict[str, Any]) -> tuple[str, str | None]:
    return (entry["result"], entry.get("error"))


def _pair(make: Callable[[], str]) -> tuple[str, str]:
    return make(), make()


def test_bulk_answers_every_case_as_the_single_approve_does(
    gate_and_upstream: tuple[GateProcess, Upstream],
) -> None:
    gate, _ = gate_and_upstream
    reviewer = gate.register(_unique("hp-rev"), role="reviewer")
    other = gate.register(_unique("hp-rev2"), role="reviewer")
    agent = gate.register(_unique("hp-prop"))
    doomed = gate.register(_unique("hp-doomed"))
    cases: dict[str, tuple[str, str]] = {
        "ok": _pair(lambda: _propose(gate, agent["apiKey"])),
        "own": _pair(lambda: _propose(gate, reviewer["apiKey"])),
        "quorum_first": _pair(lambda: _propose(gate, agent["apiKey"], "two-reviewers")),
        "quorum_again": _pair(lambda: _propose(gate, agent["apiKey"], "two-reviewers")),
        "quorum_second": _pair(lambda: _propose(gate, agent["apiKey"], "two-reviewers")),
        "approved": _pair(lambda: _propose(gate, agent["apiKey"])),
        "rejected": _pair(lambda: _propose(gate, agent["apiKey"])),
        "hash": _pair(lambda: _propose(gate, agent["apiKey"])),
        "inactive": _pair(lambda: _propose(gate, doomed["apiKey"])),
        "missing": ("int_nothing_here_1", "int_nothing_here_2"),
    }
    with gate.admin() as admin:
        for intent in cases["approved"]:
            assert admin.post(f"/v1/intents/{intent}/approve", json={}).status_code == 200
        for intent in cases["rejected"]:
            admin.post(f"/v1/intents/{intent}/reject", json={"reason": "no"}).raise_for_status()
        admin.post(f"/v1/agents/{doomed['agentId']}/revoke").raise_for_status()
    with gate.client(other["apiKey"]) as second:  # one vote already in for these
        for intent in cases["quorum_second"]:
            second.post(f"/v1/intents/{intent}/approve", json={}).raise_for_status()
    with gate.client(reviewer["apiKey"]) as client:  # and one of the reviewer's own
        for intent in cases["quorum_again"]:
            client.post(f"/v1/intents/{intent}/approve", json={}).raise_for_status()
        singles = {}
        for name, (intent, _) in cases.items():
            body = {"reviewHash": "0" * 64} if name == "hash" else {}
            singles[name] = _single_result(client.post(f"/v1/intents/{intent}/approve", json=body))
        items = [
            {"intentId": bulk, **({"reviewHash": "0" * 64} if name == "hash" else {})}
            for name, (_, bulk) in cases.items()
        ]
        answer = client.post("/v1/intents/approve", json={"intents": items})
    assert answer.status_code == 200, answer.text
    bulks = dict(zip(cases, map(_bulk_result, answer.json()["results"]), strict=True))
    assert bulks == singles
    assert singles["quorum_second"] == ("approved", None)  # the cases are what they say
    assert singles["quorum_again"] == ("refused", "already_voted")


def test_one_reviewer_cannot_fill_a_quorum_by_naming_an_intent_twice(
    gate_and_upstream: tuple[GateProcess, Upstream],
) -> None:
    gate, _ = gate_and_upstream
    reviewer = gate.register(_unique("hp-dup"), role="reviewer")
    agent = gate.register(_unique("hp-dup-agent"))
    intent = _propose(gate, agent["apiKey"], "two-reviewers")
    spelled = [intent, f" {intent}", f"{intent}\t", intent]  # ids are trimmed: one intent
    with gate.client(reviewer["apiKey"]) as client:
        answer = client.post(
            "/v1/intents/approve", json={"intents": [{"intentId": i} for i in spelled]}
        ).json()
        status = client.get(f"/v1/intents/{intent}").json()["status"]
    results = [_bulk_result(r) for r in answer["results"]]
    assert results[0] == ("pending_more_votes", None)
    assert all(r[0] == "refused" for r in results[1:]), results
    assert status == "pending_approval"


# -- the on-loop SQLite writer refused its lock ----------------------------------------------


def _hold_write_lock(db: Path, seconds: float, taken: threading.Event) -> None:
    lock = sqlite3.connect(db, timeout=5, isolation_level=None)
    try:
        lock.execute("BEGIN IMMEDIATE")
        taken.set()
        time.sleep(seconds)  # another process's long write: nothing to inject a clock into
        lock.execute("ROLLBACK")
    finally:
        lock.close()


def test_a_claim_and_a_bulk_approval_while_another_process_holds_the_lock_fail_closed(
    gate_and_upstream: tuple[GateProcess, Upstream],
) -> None:
    gate, upstream = gate_and_upstream
    agent = gate.register(_unique("hp-locked"))
    approved_marker, pending_marker = _unique("hp-locked-a"), _unique("hp-locked-p")
    with _proxy_client(gate, agent) as client:
        first = client.post(f"{upstream.url}/v1/refunds", json={"m": approved_marker})
        second = client.post(f"{upstream.url}/v1/refunds", json={"m": pending_marker})
    assert (first.status_code, second.status_code) == (202, 202)
    approved, pending = first.json()["intentId"], second.json()["intentId"]
    with gate.admin() as admin:
        assert admin.post(f"/v1/intents/{approved}/approve", json={}).status_code == 200

    taken = threading.Event()
    locker = threading.Thread(
        target=_hold_write_lock, args=(gate.data_dir / "gate.db", 6.0, taken), daemon=True
    )
    locker.start()
    assert taken.wait(10)
    outcomes: dict[str, Any] = {}

    def claim() -> None:
        outcomes["claim"] = _retry(gate, upstream, agent, approved_marker, approved)

    def bulk() -> None:
        with gate.admin() as admin:
            outcomes["bulk"] = admin.post(
                "/v1/intents/approve", json={"intents": [{"intentId": pending}]}
            )

    workers = [threading.Thread(target=f, daemon=True) for f in (claim, bulk)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    locker.join(timeout=30)
    assert outcomes["claim"].status_code == 503, outcomes["claim"].text
    assert outcomes["bulk"].json()["results"][0]["result"] == "refused"
    assert _delivered(upstream, approved_marker) == 0

    # The lock is gone: the unspent approval executes once, the approval lands once.
    statuses = [_retry(gate, upstream, agent, approved_marker, approved).status_code]
    statuses.append(_retry(gate, upstream, agent, approved_marker, approved).status_code)
    assert statuses[0] == 200 and statuses[1] != 200
    assert _delivered(upstream, approved_marker) == 1
    with gate.admin() as admin:
        again = admin.post("/v1/intents/approve", json={"intents": [{"intentId": pending}]})
    assert again.json()["results"][0]["result"] == "approved"
    verified = gate.cli("ledger", "verify", *gate.store_args())
    assert verified.returncode == 0, verified.stdout + verified.stderr


# -- canonical bytes: the orjson road against the reference ----------------------------------


class _Text(str):
    def __str__(self) -> str:  # what a naive encoder would write instead of the characters
        return "not-the-characters"


class _Status(enum.StrEnum):
    ODD = "é\n\u2028"


class _Count(enum.IntEnum):
    ONE = 1


class _Flag(int):
    pass


class _Ratio(float):
    pass


ADVERSARIAL = [
    _Text("abc"),
    {"k": _Text("abc")},
    [_Status.ODD, {"s": _Status.ODD}],
    {"n": _Count.ONE, "m": [_Count.ONE]},
    {"f": _Flag(7)},
    {"r": _Ratio(0.5), "q": [_Ratio(1.0)]},
    {"big": 2**53 - 1, "neg": -(2**53) + 1},
    [1e16, 1e16 - 2, 9999999999999998.0, 1e15 + 0.5, 123456789012345.67],
    [0.0001, 0.00009999999999999999, 0.00010000000000000002, 1e-4 * 3, 1e-5],
    [-0.0, 0.0, 5e-324, 1.7976931348623157e308, 0.1 + 0.2],
    {"é": 1, "e": 2, "\U0001f600": 3, "\uffff": 4, "z": {"ä": [0.5]}},
    {"\x7f": 1, "~": 2, " ": 3, "": {"": []}},
    ((1, (2, (3.5, ("x",)))),),
    {"t": (True, False, None, (1.25, [0.001]))},
    {"s": '\x00\x1f\x7f\u2028\u2029"\\/'},
    [[[[[[[[[[{"deep": 0.75}]]]]]]]]]],
]


@pytest.mark.parametrize("value", ADVERSARIAL, ids=[str(n) for n in range(len(ADVERSARIAL))])
def test_canonical_bytes_equal_the_reference_for_adversarial_values(value: object) -> None:
    assert canonical_bytes(value) == rfc8785.dumps(value)
