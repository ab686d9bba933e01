"""A keep-alive connection's credential is decoded once, yet the agent behind it is checked
on every request: a revocation bites on the very next request of an open connection, and a
connection that changes its credential is read again. In process, real use cases."""

import base64
import json
from typing import Any

from mitmproxy import http
from mitmproxy.test import taddons
from test_addons_inprocess import ADMIN_KEY, flow_for, register, runtime

from gate_proxy.proxy.addons.identity import GateIdentity, gate_fields
from gate_proxy.proxy.flowstate import state_of
from gate_proxy.proxy.runtime import ProxyRuntime

__all__ = ["runtime"]  # the fixture


async def identify(identity: GateIdentity, flow: http.HTTPFlow) -> http.HTTPFlow:
    flow.client_conn.id = "one-connection"
    with taddons.context():
        await identity.requestheaders(flow)
    return flow


def refusal(flow: http.HTTPFlow) -> tuple[int, str]:
    assert flow.response is not None
    return flow.response.status_code, json.loads(flow.response.content or b"{}")["reason_code"]


async def test_a_revocation_bites_on_the_next_request_of_an_open_connection(
    runtime: ProxyRuntime,
) -> None:
    agent = await register(runtime)
    identity = GateIdentity(runtime)
    first = await identify(identity, flow_for(agent, "POST", "/ok", b"{}"))
    assert first.response is None and state_of(first).principal is not None
    admin = await runtime.usecases.agents.authenticate(ADMIN_KEY)
    await runtime.usecases.agents.set_status(admin, agent["agentId"], "revoked")
    second = await identify(identity, flow_for(agent, "POST", "/ok", b"{}"))
    assert refusal(second) == (403, "agent_revoked")


async def test_another_credential_on_the_same_connection_is_read_again(
    runtime: ProxyRuntime,
) -> None:
    agent, other = await register(runtime, "bot"), await register(runtime, "other")
    identity = GateIdentity(runtime)
    await identify(identity, flow_for(agent, "POST", "/ok", b"{}"))
    second = await identify(identity, flow_for(other, "POST", "/ok", b"{}"))
    principal = state_of(second).principal
    assert principal is not None and principal.id == other["agentId"]
    # A key presented under another agent's name is refused, memo or not.
    wrong = base64.b64encode(f"{agent['agentId']}:{other['apiKey']}".encode()).decode()
    third = flow_for(None, "POST", "/ok", b"{}", headers={"Proxy-Authorization": f"Basic {wrong}"})
    assert refusal(await identify(identity, third)) == (407, "proxy_auth_invalid")


def test_the_gates_own_headers_are_read_as_mitmproxy_reads_them() -> None:
    fields: Any = (
        (b"Host", b"api.example"),
        (b"X-GATE-WAIT", b"true"),
        (b"x-gate-intent-id", b"int_1"),
        (b"X-Gate-Intent-Id", b"int_2"),
        (b"Proxy-Authorization", b""),
        (b"X-Gate-Key", "caf\u00e9".encode()),
    )
    headers = http.Headers(fields)
    own = gate_fields(fields)
    assert own[b"x-gate-wait"] == headers["X-Gate-Wait"] == "true"
    assert own[b"x-gate-intent-id"] == headers["X-Gate-Intent-Id"] == "int_1, int_2"
    assert own[b"proxy-authorization"] == headers["Proxy-Authorization"] == ""
    assert own[b"x-gate-key"] == headers["X-Gate-Key"] == "caf\u00e9"
    assert b"host" not in own
