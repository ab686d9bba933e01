"""Bulk approve (POST /v1/intents/approve): every intent is approved as a single approve
would be (role, never one's own, N-of-M distinct reviewers, the review hash, the deadline)
and answered on its own; one refusal never stops the others, nor lets one through.

Three layers: the use case against a real temporary store; the parser against the
published schema; the real gate, where held proxied requests are released by one call and
the upstream receives exactly the approved ones.
"""

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest
from gate_process import GateProcess, running_gate
from hypothesis import given, settings
from hypothesis import strategies as st
from upstreams import Upstream

from gate_proxy.api.errors import HttpError
from gate_proxy.api.inputs import bulk_approval_from_body
from gate_proxy.api.openapi.requests import REQUEST_SCHEMAS
from gate_proxy.api.openapi.responses import RESPONSE_SCHEMAS
from gate_proxy.api.views import bulk_approval_view
from gate_proxy.clock import ManualClock, use_clock
from gate_proxy.core.intents import Status
from gate_proxy.errors import GateError, InvalidInput, NotPermitted
from gate_proxy.keys import load_or_create_signer
from gate_proxy.ledger import verify_database
from gate_proxy.loaders.policy_file import parse_policy
from gate_proxy.principal import Principal, Role
from gate_proxy.store.sqlite import SqliteStore
from gate_proxy.store.sqlite.schema import DB_FILE
from gate_proxy.usecases import Proposal, UseCases
from gate_proxy.usecases.records import review_hash
from gate_proxy.usecases.review import MAX_BULK_APPROVALS, BulkItem, BulkOutcome

POLICIES = {
    "review": parse_policy(
        "id: review\nrequire_approval: always\nexpiry_minutes: 30\n", "review.yaml"
    ),
    "two": parse_policy(
        "id: two\nrequire_approval: always\nrequire_approvals: 2\nexpiry_minutes: 30\n",
        "two.yaml",
    ),
}
AGENT = Principal(id="agt_bulk", name="bulk", role=Role.AGENT)
REVIEWERS = [Principal(id=f"rev_{n}", name=f"rev{n}", role=Role.REVIEWER) for n in (1, 2)]


def chain_intact(data_dir: Path) -> bool:
    return verify_database(data_dir / DB_FILE, load_or_create_signer(data_dir).public_key).ok


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[UseCases]:
    signer = load_or_create_signer(tmp_path)
    store = SqliteStore(tmp_path, signer)
    await store.open()
    usecases = UseCases.build(store, lambda: POLICIES, signer, "gate_sk_admin-" + "x" * 40)
    try:
        yield usecases
    finally:
        await usecases.close()
        await store.close()


async def pending(service: UseCases, count: int, policy: str = "review", by=AGENT) -> list[str]:
    proposals = [Proposal(f"api.{policy}", policy, payload=f'{{"n": {n}}}') for n in range(count)]
    outcomes = await asyncio.gather(*(service.proposals.propose(by, p) for p in proposals))
    ids = []
    for outcome in outcomes:
        assert outcome.intent is not None and outcome.intent.status is Status.PENDING
        ids.append(outcome.intent.id)
    return ids


def results(outcomes: list[BulkOutcome]) -> list[str]:
    return [bulk_approval_view([o])["results"][0]["result"] for o in outcomes]


def refusal_codes(outcomes: list[BulkOutcome]) -> list[str | None]:
    return [o.refusal.error if o.refusal is not None else None for o in outcomes]


# -- the use case ------------------------------------------------------------------------------


async def test_every_intent_is_approved_and_recorded(service: UseCases, tmp_path: Path) -> None:
    ids = await pending(service, 40)
    outcomes = await service.review.approve_many(
        REVIEWERS[0], [BulkItem(i) for i in ids], note="batch"
    )
    assert [o.intent_id for o in outcomes] == ids  # in the order given
    assert results(outcomes) == ["approved"] * 40
    for intent_id in ids:
        stored = await service.store.get_intent(intent_id)
        assert stored is not None
        assert (stored.status, stored.decided_by, stored.decision_note) == (
            Status.APPROVED,
            "rev_1",
            "batch",
        )
        events = [e["type"] for e in await service.store.ledger_events(intent_id=intent_id)]
        assert events.count("approved") == 1
    assert chain_intact(tmp_path)


async def test_one_refusal_does_not_stop_or_pass_the_others(service: UseCases) -> None:
    ids = await pending(service, 4)
    own = (await pending(service, 1, by=REVIEWERS[0]))[0]
    already = (await pending(service, 1))[0]
    await service.review.approve(REVIEWERS[1], already)
    intent = await service.store.get_intent(ids[1])
    assert intent is not None
    items = [
        BulkItem(ids[0]),
        BulkItem(ids[1], review_hash(intent)),  # the hash the reviewer saw: fine
        BulkItem(ids[2], "0" * 64),  # another request than the one reviewed
        BulkItem("int_does_not_exist"),
        BulkItem(own),  # the reviewer's own intent
        BulkItem(already),
        BulkItem(ids[3]),
    ]
    outcomes = await service.review.approve_many(REVIEWERS[0], items)
    assert refusal_codes(outcomes) == [
        None,
        None,
        "review_hash_mismatch",
        "not_found",
        "self_review",
        "not_pending",
        None,
    ]
    stored = [await service.store.get_intent(i) for i in (*ids, own)]
    assert [intent.status for intent in stored if intent is not None] == [
        Status.APPROVED,
        Status.APPROVED,
        Status.PENDING,  # the tampered one
        Status.APPROVED,
        Status.PENDING,  # the reviewer's own
    ]
    view = bulk_approval_view(outcomes)
    assert (view["approved"], view["pendingMoreVotes"], view["refused"]) == (3, 0, 4)
    assert view["results"][5]["intentStatus"] == "approved"  # the single route's extra field


async def test_n_of_m_needs_distinct_reviewers(service: UseCases) -> None:
    ids = await pending(service, 3, policy="two")
    first = await service.review.approve_many(REVIEWERS[0], [BulkItem(i) for i in ids])
    assert results(first) == ["pending_more_votes"] * 3
    assert {o.approval.approvals for o in first if o.approval} == {1}
    again = await service.review.approve_many(REVIEWERS[0], [BulkItem(i) for i in ids])
    assert refusal_codes(again) == ["already_voted"] * 3
    second = await service.review.approve_many(REVIEWERS[1], [BulkItem(i) for i in ids])
    assert results(second) == ["approved"] * 3
    for intent_id in ids:
        stored = await service.store.get_intent(intent_id)
        assert stored is not None and stored.status is Status.APPROVED


async def test_an_intent_named_twice_is_approved_once(service: UseCases) -> None:
    (intent_id,) = await pending(service, 1)
    outcomes = await service.review.approve_many(
        REVIEWERS[0], [BulkItem(intent_id), BulkItem(intent_id)]
    )
    assert refusal_codes(outcomes) == [None, "duplicate_in_request"]
    events = [e["type"] for e in await service.store.ledger_events(intent_id=intent_id)]
    assert events.count("approved") == 1


async def test_an_agent_key_may_not_bulk_approve(service: UseCases) -> None:
    ids = await pending(service, 2)
    with pytest.raises(NotPermitted):
        await service.review.approve_many(AGENT, [BulkItem(i) for i in ids])
    other = Principal(id="agt_other", name="other", role=Role.AGENT)
    with pytest.raises(NotPermitted):
        await service.review.approve_many(other, [BulkItem(i) for i in ids])
    for intent_id in ids:
        stored = await service.store.get_intent(intent_id)
        assert stored is not None and stored.status is Status.PENDING


async def test_a_closed_review_window_is_refused(service: UseCases) -> None:
    with use_clock(ManualClock()) as clock:
        ids = await pending(service, 2)
        clock.advance(31 * 60)
        outcomes = await service.review.approve_many(REVIEWERS[0], [BulkItem(i) for i in ids])
    assert refusal_codes(outcomes) == ["expired", "expired"]


async def test_too_many_intents_are_refused_before_any_is_read(service: UseCases) -> None:
    items = [BulkItem(f"int_{n}") for n in range(MAX_BULK_APPROVALS + 1)]
    with pytest.raises(InvalidInput):
        await service.review.approve_many(REVIEWERS[0], items)


async def test_a_full_batch_is_approved_with_concurrent_proposals(
    service: UseCases, tmp_path: Path
) -> None:
    """The maximum batch while new intents keep arriving: every one answered, the chain
    intact (the writes of both share the store's group commits)."""
    ids = await pending(service, 300)
    more = asyncio.ensure_future(pending(service, 50))
    outcomes = await service.review.approve_many(REVIEWERS[0], [BulkItem(i) for i in ids])
    await more
    assert results(outcomes) == ["approved"] * 300
    assert chain_intact(tmp_path)


# -- the parser and the published schema ---------------------------------------------------------


def parses(body: dict[str, Any]) -> bool:
    try:
        bulk_approval_from_body(body)
    except (InvalidInput, HttpError):
        return False
    return True


ITEMS = st.one_of(
    st.none(),
    st.text(max_size=3),
    st.integers(),
    st.fixed_dictionaries(
        {},
        optional={
            "intentId": st.one_of(
                st.none(), st.sampled_from(["", " ", "int_1", "\x1c"]), st.integers()
            ),
            "reviewHash": st.one_of(st.none(), st.text(max_size=3), st.integers()),
            "other": st.integers(),
        },
    ),
)
BODIES = st.fixed_dictionaries(
    {},
    optional={
        "intents": st.one_of(
            st.none(), st.integers(), st.text(max_size=2), st.lists(ITEMS, max_size=3)
        ),
        "note": st.one_of(st.none(), st.text(max_size=3), st.integers()),
        "unknown": st.integers(),
    },
)


def test_the_schema_admits_exactly_what_the_parser_accepts() -> None:
    validator = jsonschema_rs.Draft202012Validator(REQUEST_SCHEMAS["BulkApproval"])

    @settings(max_examples=500, derandomize=True, database=None, deadline=None)
    @given(BODIES)
    def agree(body: dict[str, Any]) -> None:
        assert validator.is_valid(body) == parses(body), body

    agree()


def test_past_the_cap_is_413_and_the_cap_itself_is_fine() -> None:
    at_cap = {"intents": [{"intentId": f"int_{n}"} for n in range(MAX_BULK_APPROVALS)]}
    assert len(bulk_approval_from_body(at_cap).items) == MAX_BULK_APPROVALS
    over = {"intents": [*at_cap["intents"], {"intentId": "int_x"}]}
    with pytest.raises(HttpError) as refused:
        bulk_approval_from_body(over)
    assert refused.value.status == 413 and refused.value.error == "too_many_intents"
    validator = jsonschema_rs.Draft202012Validator(REQUEST_SCHEMAS["BulkApproval"])
    assert validator.is_valid(at_cap) and not validator.is_valid(over)


def test_a_bad_item_is_named() -> None:
    with pytest.raises(InvalidInput) as refused:
        bulk_approval_from_body({"intents": [{"intentId": "int_1"}, {"intentId": " "}]})
    assert "intents[1].intentId" in refused.value.message


# -- the real gate -----------------------------------------------------------------------------

GATE_POLICIES = {
    "finance-high-risk": "id: finance-high-risk\nrequire_approval: always\nexpiry_minutes: 15\n",
}
HELD = 12


def conforms(schema_name: str, instance: object) -> bool:
    from gate_proxy.api.openapi import build_openapi

    document = build_openapi()
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": document["components"]}
    return jsonschema_rs.Draft202012Validator(schema, validate_formats=True).is_valid(instance)


@pytest.fixture(scope="module")
def gate_and_upstream(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[GateProcess, Upstream]]:
    with Upstream() as upstream:
        config = {
            "destinations.yaml": f"""
"127.0.0.1:{upstream.port}":
  paths:
    /v1/refunds: {{method: POST, destination: stripe.refund, policy: finance-high-risk}}
"""
        }
        root = tmp_path_factory.mktemp("bulk")
        with running_gate(root, policies=GATE_POLICIES, config=config) as gate:
            yield gate, upstream


def held_requests(
    gate: GateProcess, upstream: Upstream, agent: dict[str, Any], markers: list[str]
) -> tuple[list[threading.Thread], dict[str, Any]]:
    proxy = f"http://{agent['agentId']}:{agent['apiKey']}@127.0.0.1:{gate.proxy_port}"
    answers: dict[str, Any] = {}

    def run(marker: str) -> None:
        try:
            with httpx.Client(proxy=proxy, timeout=60) as client:
                answers[marker] = client.post(
                    f"{upstream.url}/v1/refunds",
                    json={"m": marker},
                    headers={"X-Gate-Wait": "true"},
                )
        except httpx.HTTPError as exc:
            answers[marker] = exc

    threads = [threading.Thread(target=run, args=(m,), daemon=True) for m in markers]
    for thread in threads:
        thread.start()
    return threads, answers


def held_of(gate: GateProcess, agent: dict[str, Any]) -> list[dict[str, Any]]:
    with gate.admin() as admin:
        return [
            h
            for h in admin.get("/v1/proxy/held").json()["held"]
            if h["agentId"] == agent["agentId"]
        ]


def wait_until(predicate: Any, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_one_call_releases_held_requests_and_a_tampered_one_stays_held(
    gate_and_upstream: tuple[GateProcess, Upstream],
) -> None:
    gate, upstream = gate_and_upstream
    agent = gate.register(f"bulk-agent-{time.monotonic_ns()}")
    reviewer = gate.register(f"bulk-reviewer-{time.monotonic_ns()}", role="reviewer")
    markers = [f"bulk-{time.monotonic_ns()}-{n}" for n in range(HELD)]
    threads, answers = held_requests(gate, upstream, agent, markers)
    assert wait_until(lambda: len(held_of(gate, agent)) == HELD)
    held = held_of(gate, agent)
    with gate.client(reviewer["apiKey"]) as client:
        hashes = {
            h["intentId"]: client.get(f"/v1/intents/{h['intentId']}").json()["reviewHash"]
            for h in held
        }
        wrong = held[0]["intentId"]  # the reviewer approves with another request's hash
        items = [
            {"intentId": i, "reviewHash": hashes[i] if i != wrong else hashes[held[1]["intentId"]]}
            for i in hashes
        ]
        answer = client.post("/v1/intents/approve", json={"intents": items, "note": "ok"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert conforms("BulkApprovalResult", body)
    assert (body["approved"], body["refused"]) == (HELD - 1, 1)
    refused = next(r for r in body["results"] if r["result"] == "refused")
    assert (refused["intentId"], refused["error"]) == (wrong, "review_hash_mismatch")

    assert wait_until(lambda: sum(not t.is_alive() for t in threads) == HELD - 1)
    received = [r.body.decode() for r in upstream.requests]
    delivered = [m for m in markers if any(m in b for b in received)]
    assert len(delivered) == HELD - 1  # each approved request once, the tampered one never
    assert all(sum(m in b for b in received) == 1 for m in delivered)
    (still_held,) = held_of(gate, agent)
    assert still_held["intentId"] == wrong
    with gate.admin() as admin:  # release the last one: rejected, never forwarded
        admin.post(f"/v1/intents/{wrong}/reject", json={"reason": "tampered"})
    for thread in threads:
        thread.join(timeout=20)
    assert (
        sum(1 for m in markers if any(m in r.body.decode() for r in upstream.requests)) == HELD - 1
    )
    statuses = sorted(a.status_code for a in answers.values())
    assert statuses == [200] * (HELD - 1) + [403]


def test_roles_and_bounds_on_the_real_gate(gate_and_upstream: tuple[GateProcess, Upstream]) -> None:
    gate, _ = gate_and_upstream
    agent = gate.register(f"bulk-self-{time.monotonic_ns()}", role="reviewer")
    with gate.client(agent["apiKey"]) as client:
        proposed = client.post(
            "/v1/intents",
            json={"destination": "stripe.refund", "policy": "finance-high-risk", "payload": "x"},
        ).json()["intentId"]
        own = client.post("/v1/intents/approve", json={"intents": [{"intentId": proposed}]})
    assert own.status_code == 200
    assert own.json()["results"][0]["error"] == "self_review"
    plain_agent = gate.register(f"bulk-plain-{time.monotonic_ns()}")
    with gate.client(plain_agent["apiKey"]) as client:
        # 403 before the body is read: even a malformed one.
        assert client.post("/v1/intents/approve", content=b"{nope").status_code == 403
    with httpx.Client(base_url=gate.url) as anonymous:
        assert anonymous.post("/v1/intents/approve", json={"intents": []}).status_code == 401
    with gate.admin() as admin:
        too_many = [{"intentId": f"int_{n}"} for n in range(MAX_BULK_APPROVALS + 1)]
        over = admin.post("/v1/intents/approve", json={"intents": too_many})
        assert over.status_code == 413 and over.json()["error"] == "too_many_intents"
        assert admin.post("/v1/intents/approve", json={"intents": []}).status_code == 400
        assert admin.post("/v1/intents/approve", json={}).status_code == 400
        # Not a lookup of an intent named "approve": the bulk route's 405.
        not_a_lookup = admin.get("/v1/intents/approve")
        assert not_a_lookup.status_code == 405
        assert "POST" in not_a_lookup.headers["Allow"]
        assert admin.get(f"/v1/intents/{proposed}").status_code == 200
        admin_answer = admin.post(
            "/v1/intents/approve",
            json={"intents": [{"intentId": proposed}, {"intentId": "int_no"}]},
        )
    assert [r.get("error") for r in admin_answer.json()["results"]] == [None, "not_found"]
    assert conforms("BulkApprovalResult", admin_answer.json())


def test_the_answer_schema_covers_every_result() -> None:
    assert "BulkApprovalResult" in RESPONSE_SCHEMAS
    refused = bulk_approval_view(
        [BulkOutcome("int_1", refusal=GateError("not_found", "intent not found"))]
    )
    assert conforms("BulkApprovalResult", refused)
    assert not conforms("BulkApprovalResult", {**refused, "results": [{"intentId": "x"}]})
