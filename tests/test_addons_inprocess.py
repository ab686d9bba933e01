"""Each gate addon in process (mitmproxy's tflow), against real use cases over a temporary
SQLite store and a real config snapshot — the middle layer between the pure core and the
end-to-end tests. No sockets: the flows are built in memory and the hooks called."""

import base64
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mitmproxy import http
from mitmproxy.test import taddons, tflow, tutils

from gate_proxy.clock import ManualClock, use_clock
from gate_proxy.core.intents import Status
from gate_proxy.keys import load_or_create_signer
from gate_proxy.loaders.policy_file import parse_policy
from gate_proxy.loaders.registry_file import parse_registry_text
from gate_proxy.loaders.snapshot import ConfigSnapshot
from gate_proxy.metrics import GateMetrics
from gate_proxy.proxy.addons import GateDecision, GateForwarding, GateIdentity, GateRouting
from gate_proxy.proxy.addons.record import GateRecord
from gate_proxy.proxy.flowstate import state_of
from gate_proxy.proxy.runtime import ProxyRuntime
from gate_proxy.settings import Settings
from gate_proxy.store.sqlite import SqliteStore
from gate_proxy.usecases import UseCases

ADMIN_KEY = "gate_sk_admin-" + "x" * 40
POLICIES = {
    "auto": parse_policy("id: auto\nrequire_approval: never\n", "auto.yaml"),
    "review": parse_policy("id: review\nrequire_approval: always\nexpiry_minutes: 10\n", "r.yaml"),
    "terms": parse_policy("id: terms\nblock_if_terms: [sue]\nrequire_approval: never\n", "t.yaml"),
}
REGISTRY = parse_registry_text(
    "default:\n  action: block\n"
    '"api.example":\n  paths:\n'
    "    /ok: {method: POST, destination: crm.ok, policy: auto}\n"
    "    /review: {method: POST, destination: crm.review, policy: review}\n"
    "    /terms: {method: POST, destination: crm.terms, policy: terms}\n"
    "    /read: {method: GET, passthrough: true}\n"
    '"blocked.example":\n  block: true\n',
    "destinations.yaml",
)


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[ProxyRuntime]:
    signer = load_or_create_signer(tmp_path)
    store = SqliteStore(tmp_path, signer)
    await store.open()
    usecases = UseCases.build(store, lambda: POLICIES, signer, ADMIN_KEY, metrics=GateMetrics())
    snapshot = ConfigSnapshot(REGISTRY, POLICIES, None, 1)
    try:
        yield ProxyRuntime(usecases, lambda: snapshot, Settings())
    finally:
        await usecases.close()
        await store.close()


async def register(runtime: ProxyRuntime, name: str = "bot") -> dict[str, Any]:
    admin = await runtime.usecases.agents.authenticate(ADMIN_KEY)
    return await runtime.usecases.agents.register(admin, {"name": name})


def flow_for(
    agent: dict[str, Any] | None,
    method: str,
    path: str,
    body: bytes = b"",
    host: str = "api.example",
    headers: dict[str, str] | None = None,
) -> http.HTTPFlow:
    fields = [(b"Host", host.encode()), (b"Content-Type", b"application/json")]
    if agent is not None:
        token = base64.b64encode(f"{agent['agentId']}:{agent['apiKey']}".encode())
        fields.append((b"Proxy-Authorization", b"Basic " + token))
    for name, value in (headers or {}).items():
        fields.append((name.encode(), value.encode()))
    request = tutils.treq(
        method=method.encode(),
        scheme=b"https",
        host=host,
        port=443,
        path=path.encode(),
        authority=b"",
        headers=http.Headers(fields),
        content=body,
    )
    return tflow.tflow(req=request)


async def through(runtime: ProxyRuntime, flow: http.HTTPFlow) -> http.HTTPFlow:
    """The request hooks, in the order the proxy calls them."""
    identity, routing, decision = GateIdentity(runtime), GateRouting(runtime), GateDecision(runtime)
    with taddons.context():
        await identity.requestheaders(flow)
        await routing.requestheaders(flow)
        await decision.request(flow)
    return flow


def answer(flow: http.HTTPFlow) -> tuple[int, dict[str, Any]]:
    assert flow.response is not None
    return flow.response.status_code, json.loads(flow.response.content or b"{}")


# -- identity -----------------------------------------------------------------------------


async def test_identity_names_the_agent_and_strips_the_gates_headers(
    runtime: ProxyRuntime,
) -> None:
    agent = await register(runtime)
    flow = flow_for(agent, "POST", "/ok", b"{}", headers={"X-Gate-Wait": "true", "TE": "x"})
    with taddons.context():
        await GateIdentity(runtime).requestheaders(flow)
    state = state_of(flow)
    assert state.principal is not None and state.principal.id == agent["agentId"]
    assert state.wait is True
    names = {name.lower() for name, _ in flow.request.headers.fields}
    assert not names & {b"proxy-authorization", b"x-gate-wait", b"te"}


async def test_identity_refuses_without_credentials(runtime: ProxyRuntime) -> None:
    flow = flow_for(None, "POST", "/ok", b"{}")
    with taddons.context():
        await GateIdentity(runtime).requestheaders(flow)
    status, body = answer(flow)
    assert status == 407 and body["reason_code"] == "proxy_auth_required"
    assert flow.response is not None and "Proxy-Authenticate" in flow.response.headers


# -- routing ------------------------------------------------------------------------------


async def test_routing_takes_one_snapshot_and_one_match(runtime: ProxyRuntime) -> None:
    agent = await register(runtime)
    flow = flow_for(agent, "POST", "/ok/../ok", b"{}")
    with taddons.context():
        await GateIdentity(runtime).requestheaders(flow)
        await GateRouting(runtime).requestheaders(flow)
    state = state_of(flow)
    assert state.snapshot is not None and state.snapshot.generation == 1
    assert state.match is not None and state.match.destination == "crm.ok"
    assert flow.request.path == "/ok"  # forwarded as matched
    assert flow.request.headers["Host"] == "api.example"


async def test_routing_refuses_a_second_name_for_the_target(runtime: ProxyRuntime) -> None:
    agent = await register(runtime)
    flow = flow_for(agent, "POST", "/ok", b"{}", headers={"X-Forwarded-Host": "evil.example"})
    with taddons.context():
        await GateIdentity(runtime).requestheaders(flow)
        await GateRouting(runtime).requestheaders(flow)
    status, body = answer(flow)
    assert (status, body["reason_code"]) == (421, "authority_mismatch")


# -- decision and approvals ----------------------------------------------------------------


async def test_an_approved_write_is_in_flight_with_its_write_ahead_record(
    runtime: ProxyRuntime,
) -> None:
    agent = await register(runtime)
    flow = await through(runtime, flow_for(agent, "POST", "/ok", b'{"a": 1}'))
    state = state_of(flow)
    assert flow.response is None  # going upstream
    assert state.verdict is not None and state.verdict.status == "approved"
    assert state.in_flight is not None and state.intent_id == state.in_flight.intent_id
    events = await runtime.usecases.store.ledger_events(intent_id=state.intent_id)
    assert [e["type"] for e in events] == [
        "proposed",
        "policy_checked",
        "approved",
        "execution_requested",
    ]


async def test_a_blocked_write_is_answered_and_recorded(runtime: ProxyRuntime) -> None:
    agent = await register(runtime)
    flow = await through(runtime, flow_for(agent, "POST", "/terms", b'{"m": "we sue"}'))
    status, body = answer(flow)
    assert (status, body["reason_code"]) == (403, "blocked_term_detected")
    intent = await runtime.usecases.store.get_intent(body["intentId"])
    assert intent is not None and intent.status is Status.BLOCKED


async def test_a_passthrough_read_records_nothing(runtime: ProxyRuntime) -> None:
    agent = await register(runtime)
    flow = await through(runtime, flow_for(agent, "GET", "/read"))
    assert flow.response is None
    assert state_of(flow).verdict is not None and state_of(flow).intent_id is None
    assert await runtime.usecases.store.list_intents() == []


async def test_a_retry_runs_once_and_only_while_its_approval_lasts(
    runtime: ProxyRuntime,
) -> None:
    agent = await register(runtime)
    with use_clock(ManualClock()) as clock:
        pending = await through(runtime, flow_for(agent, "POST", "/review", b'{"r": 1}'))
        status, body = answer(pending)
        assert status == 202
        intent_id = body["intentId"]
        reviewer = await runtime.usecases.agents.authenticate(ADMIN_KEY)
        await runtime.usecases.review.approve(reviewer, intent_id)
        retry = {"X-Gate-Intent-Id": intent_id}
        first = await through(
            runtime, flow_for(agent, "POST", "/review", b'{"r": 1}', headers=retry)
        )
        assert first.response is None and state_of(first).in_flight is not None
        second = await through(
            runtime, flow_for(agent, "POST", "/review", b'{"r": 1}', headers=retry)
        )
        assert answer(second)[1]["reason_code"] == "already_executed"
        other = await through(
            runtime, flow_for(agent, "POST", "/review", b'{"r": 2}', headers=retry)
        )
        assert answer(other)[1]["reason_code"] == "fingerprint_mismatch"

        late = await through(runtime, flow_for(agent, "POST", "/review", b'{"r": 3}'))
        late_id = answer(late)[1]["intentId"]
        await runtime.usecases.review.approve(reviewer, late_id)
        clock.advance(11 * 60)  # past the 10-minute window and the 5-minute minimum
        stale = await through(
            runtime,
            flow_for(agent, "POST", "/review", b'{"r": 3}', headers={"X-Gate-Intent-Id": late_id}),
        )
    assert answer(stale)[1]["reason_code"] in ("intent_expired", "expired")


# -- forwarding and the record --------------------------------------------------------------


async def test_forwarding_records_the_outcome_and_the_record_writes_one_line(
    runtime: ProxyRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    agent = await register(runtime)
    flow = await through(runtime, flow_for(agent, "POST", "/ok", b'{"a": 1}'))
    forwarding, record = GateForwarding(runtime), GateRecord(runtime)
    flow.response = tutils.tresp(status_code=201, content=b"{}")
    caplog.set_level(logging.INFO, logger="gate.decision")
    with taddons.context():
        await forwarding.responseheaders(flow)
        await forwarding.response(flow)
        record.response(flow)
        record.response(flow)  # a second end of the same request writes nothing more
        await forwarding.done()
    intent_id = state_of(flow).intent_id
    events = await runtime.usecases.store.ledger_events(intent_id=intent_id)
    assert events[-1]["type"] == "execution_succeeded"
    lines = [r for r in caplog.records if r.name == "gate.decision"]
    assert len(lines) == 1
    assert lines[0].__dict__["decision"] == "approved"
    assert lines[0].__dict__["status"] == 201
