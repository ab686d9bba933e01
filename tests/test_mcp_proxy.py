"""MCP governance end to end: the official MCP Python SDK on both sides of the real gate.

A real MCP server (``MCPServer``, streamable HTTP, on 127.0.0.1, plain and TLS) whose tools
record every call they execute, and a real MCP client whose HTTP client goes through the
gate's forward proxy (plain HTTP, and TLS intercepted with the gate's CA). Every test
asserts on what the MCP server executed, and on what reached it at all.
"""

import asyncio
import json
import ssl
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
import uvicorn
from gate_process import GateProcess, running_gate
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import Context, MCPServer
from mitmproxy.test import tflow
from upstreams import free_port, issue_server_cert, make_test_ca

from gate_proxy.core.mcp import McpBody, parse_mcp_body
from gate_proxy.proxy.addons.guard import gate_response, refuse
from gate_proxy.proxy.addons.mcp import GATE_REFUSED, McpAnswers, McpExchange
from gate_proxy.proxy.flowstate import state_of

SECRET = "mcp-bearer-0123456789abcdef"
POLICY = """id: payments-tools
# Tools not named below are approved when every check passes.
require_approval: never
field_checks:
  - {path: amount, max: 1000}
block_if_terms: [chargeback]
tools:
  read: [lookup]
  require_approval: [issue_refund]
  block: [delete_*]
"""


# -- the MCP server ---------------------------------------------------------------------------


@dataclass
class Executions:
    """What the MCP server's tools ran, and every HTTP request that reached it."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ran(self, tool: str) -> list[dict[str, Any]]:
        with self.lock:
            return [arguments for name, arguments in self.calls if name == tool]

    def saw(self, marker: str) -> bool:
        with self.lock:
            return any(marker in r["body"] for r in self.requests)


def mcp_server(executions: Executions) -> MCPServer:
    server = MCPServer("payments")

    def record(tool: str, **arguments: Any) -> None:
        with executions.lock:
            executions.calls.append((tool, arguments))

    @server.tool()
    def lookup(order: str) -> str:
        record("lookup", order=order)
        return f"order {order}: shipped"

    @server.tool()
    def issue_refund(charge: str, amount: int) -> str:
        record("issue_refund", charge=charge, amount=amount)
        return f"refunded {amount} on {charge}"

    @server.tool()
    def send_note(to: str, text: str) -> str:
        record("send_note", to=to, text=text)
        return f"note sent to {to}"

    @server.tool()
    def delete_customer(customer: str) -> str:
        record("delete_customer", customer=customer)
        return "deleted"

    @server.tool()
    async def stream_report(ctx: Context) -> str:
        record("stream_report")
        await ctx.report_progress(1, 2, "first half")
        # Waits until the client has *seen* the progress event: if the gate buffered the
        # event stream, that could only happen after this returns, so it would time out.
        released = await anyio.to_thread.run_sync(executions.release.wait, 10)
        return "released" if released else "timed out"

    return server


class Recording:
    """ASGI middleware: every HTTP request that reaches the MCP server, with its body."""

    def __init__(self, app: Any, executions: Executions) -> None:
        self.app, self.executions = app, executions

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        entry = {
            "method": scope["method"],
            "headers": {k.decode().lower(): v.decode() for k, v in scope["headers"]},
            "body": "",
        }
        with self.executions.lock:
            self.executions.requests.append(entry)

        async def recorded() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                entry["body"] += message.get("body", b"").decode("utf-8", "replace")
            return message

        await self.app(scope, recorded, send)


@dataclass
class Served:
    url: str
    port: int
    server: uvicorn.Server
    thread: threading.Thread


def serve(executions: Executions, port: int, tls: tuple[Path, Path] | None = None) -> Served:
    app = Recording(mcp_server(executions).streamable_http_app(), executions)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    if tls is not None:
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            ssl_certfile=str(tls[0]),
            ssl_keyfile=str(tls[1]),
        )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "the MCP server did not start"
    host = "localhost" if tls else "127.0.0.1"
    return Served(f"{'https' if tls else 'http'}://{host}:{port}/mcp", port, server, thread)


# -- the gate ---------------------------------------------------------------------------------


def registry(plain: int, tls: int) -> str:
    return f"""
default:
  action: block
"127.0.0.1:{plain}":
  protocol: mcp
  paths:
    /mcp: {{destination: payments.mcp, policy: payments-tools}}
"localhost:{tls}":
  protocol: mcp
  paths:
    /mcp: {{destination: payments-vault.mcp, policy: payments-tools}}
"""


@dataclass
class Env:
    gate: GateProcess
    executions: Executions
    plain: Served
    tls: Served

    @property
    def gate_ca(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.gate.certs_dir / "mitmproxy-ca-cert.pem"))

    def proxy_url(self, agent: dict[str, Any]) -> str:
        return f"http://{agent['agentId']}:{agent['apiKey']}@127.0.0.1:{self.gate.proxy_port}"

    def http(self, agent: dict[str, Any], **headers: str) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(
            proxy=self.proxy_url(agent),
            verify=self.gate_ca,
            headers=headers,
            timeout=httpx2.Timeout(30, read=60),
            trust_env=False,
        )

    @asynccontextmanager
    async def client(
        self, agent: dict[str, Any], *, tls: bool = False, mode: str = "legacy", **headers: str
    ) -> AsyncIterator[Client]:
        url = self.tls.url if tls else self.plain.url
        async with self.http(agent, **headers) as http:
            transport = streamable_http_client(url, http_client=http)
            async with Client(transport, mode=mode, cache=None) as client:  # type: ignore[arg-type]
                yield client

    def raw(self, agent: dict[str, Any]) -> httpx.Client:
        return httpx.Client(proxy=self.proxy_url(agent), timeout=30, trust_env=False)

    def intents(self, agent: dict[str, Any], status: str | None = None) -> list[dict[str, Any]]:
        query = f"?status={status}" if status else ""
        with self.gate.client(agent["apiKey"]) as client:
            return client.get(f"/v1/intents{query}").json()["intents"]

    def review(self, intent_id: str, action: str = "approve") -> None:
        body = {} if action == "approve" else {"reason": "not this one"}
        with self.gate.admin() as admin:
            response = admin.post(f"/v1/intents/{intent_id}/{action}", json=body)
        assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("mcp")
    ca = make_test_ca(root / "upstream-ca")
    cert = issue_server_cert(ca, names=("localhost",))
    executions = Executions()
    plain = serve(executions, free_port())
    tls = serve(executions, free_port(), tls=cert)
    config = {
        "destinations.yaml": registry(plain.port, tls.port),
        "gate.yaml": f"upstream_ca_bundle: {ca[0]}\n",
        # Only the TLS endpoint is vault-managed: see the streaming test.
        "vault.yaml": "credentials:\n  payments-vault.mcp: {ref: GATE_MCP_SECRET}\n",
    }
    try:
        with running_gate(
            root,
            policies={"payments-tools": POLICY},
            config=config,
            env={"GATE_MCP_SECRET": SECRET},
        ) as gate:
            yield Env(gate, executions, plain, tls)
    finally:
        for served in (plain, tls):
            served.server.should_exit = True
            served.thread.join(timeout=10)


@pytest.fixture
def agent(env: Env) -> dict[str, Any]:
    return env.gate.register(f"mcp-agent-{time.monotonic_ns()}")


def run(coroutine: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, timeout=90))


def decision(result: Any) -> dict[str, Any]:
    assert result.is_error, result
    return result.meta["gate-proxy/decision"]


def text(result: Any) -> str:
    return "\n".join(block.text for block in result.content)


# -- sessions, protocol traffic and reads ------------------------------------------------------


@pytest.mark.parametrize(("tls", "mode"), [(False, "legacy"), (True, "legacy"), (False, "auto")])
def test_the_session_lists_tools_and_a_read_tool_answers_without_an_intent(
    env: Env, agent: dict[str, Any], tls: bool, mode: str
) -> None:
    order = f"o-{time.monotonic_ns()}"

    async def session() -> tuple[list[str], Any]:
        async with env.client(agent, tls=tls, mode=mode) as client:
            tools = await client.list_tools()
            return [tool.name for tool in tools.tools], await client.call_tool(
                "lookup", {"order": order}
            )

    before = len(env.executions.requests)
    names, result = run(session())
    assert {"lookup", "issue_refund", "send_note", "delete_customer"} <= set(names)
    assert not result.is_error and text(result) == f"order {order}: shipped"
    assert env.executions.ran("lookup").count({"order": order}) == 1
    if tls:  # vault-managed: the whole session carries the credential, the agent never has it
        session_requests = env.executions.requests[before:]
        assert session_requests
        assert all(
            r["headers"].get("authorization") == f"Bearer {SECRET}" for r in session_requests
        )
    # Protocol traffic and reads are forwarded without an intent.
    assert env.intents(agent) == []


def test_an_approved_write_runs_once_with_the_vault_credential(
    env: Env, agent: dict[str, Any]
) -> None:
    to = f"team-{time.monotonic_ns()}@example.com"

    async def session() -> Any:
        async with env.client(agent, tls=True) as client:
            return await client.call_tool("send_note", {"to": to, "text": "hello"})

    result = run(session())
    assert not result.is_error and text(result) == f"note sent to {to}"
    assert env.executions.ran("send_note") == [{"to": to, "text": "hello"}]
    (intent,) = env.intents(agent)
    assert intent["status"] == "succeeded"
    # The reviewer sees the redacted arguments: PII masked, the rest as sent.
    preview = json.loads(intent["payload"]["preview"])
    assert preview["text"] == "hello" and to not in intent["payload"]["preview"]
    with env.gate.admin() as admin:
        shown = admin.get(f"/v1/intents/{intent['intentId']}").json()
    assert shown["metadata"]["mcp"]["tool"] == "send_note"
    assert shown["tool"] == "send_note"
    # The CLI names the tool too, so a reviewer at a terminal sees what runs.
    listed = env.gate.cli(
        "intents", "list", "--url", env.gate.url, "--key", env.gate.admin_key or ""
    )
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if intent["intentId"] in line)
    assert "send_note" in row
    (received,) = [r for r in env.executions.requests if to in r["body"]]
    assert received["headers"]["authorization"] == f"Bearer {SECRET}"
    assert SECRET not in text(result)


# -- refusals: never executed ----------------------------------------------------------------


@pytest.mark.parametrize("tls", [False, True])
def test_a_blocked_tool_and_an_over_limit_argument_are_refused_and_never_executed(
    env: Env, agent: dict[str, Any], tls: bool
) -> None:
    marker = f"c-{time.monotonic_ns()}"

    async def session() -> list[Any]:
        async with env.client(agent, tls=tls) as client:
            return [
                await client.call_tool("delete_customer", {"customer": marker}),
                await client.call_tool("issue_refund", {"charge": marker, "amount": 5000}),
                await client.call_tool("issue_refund", {"charge": marker, "amount": 5, "x": 1}),
                await client.call_tool("send_note", {"to": marker, "text": "a chargeback"}),
            ]

    blocked, over, _, term = run(session())
    assert decision(blocked)["reason_code"] == "tool_blocked"
    assert "Blocked by the gate" in text(blocked) and "delete_customer" in text(blocked)
    assert decision(over)["reason_code"] == "field_check_failed"
    assert "above the maximum 1000" in text(over)
    assert decision(term)["reason_code"] == "blocked_term_detected"
    assert not env.executions.saw(marker) and env.executions.ran("delete_customer") == []
    statuses = {i["reason_code"]: i["status"] for i in env.intents(agent)}
    assert statuses["tool_blocked"] == "blocked" and statuses["field_check_failed"] == "blocked"


def test_odd_spellings_of_a_blocked_tool_never_reach_the_server(
    env: Env, agent: dict[str, Any]
) -> None:
    marker = f"odd-{time.monotonic_ns()}"

    async def session() -> list[Any]:
        async with env.client(agent) as client:
            return [
                await client.call_tool(name, {"customer": marker})
                for name in ("Delete_Customer", "DELETE_CUSTOMER", "delete_custоmer", "ｄelete")
            ]

    results = run(session())
    codes = [decision(r)["reason_code"] for r in results]
    invalid = "mcp_tool_name_invalid"
    assert codes == ["tool_blocked", "tool_blocked", invalid, invalid]
    assert not env.executions.saw(marker)


# -- approvals bound to the exact call -------------------------------------------------------


def test_a_write_goes_pending_is_approved_then_runs_exactly_once(
    env: Env, agent: dict[str, Any]
) -> None:
    charge = f"ch-{time.monotonic_ns()}"
    arguments = {"charge": charge, "amount": 50}

    async def call(args: dict[str, Any], mode: str = "legacy") -> Any:
        async with env.client(agent, mode=mode) as client:  # a new session every time
            return await client.call_tool("issue_refund", args)

    pending = run(call(arguments))
    meta = decision(pending)
    assert (meta["status"], meta["reason_code"]) == ("pending_approval", "tool_review_required")
    assert meta["intentId"] in text(pending) and "same call again" in text(pending)
    # Asked again before anyone decided: the same intent, nothing new, nothing run.
    assert decision(run(call(arguments)))["intentId"] == meta["intentId"]
    assert env.executions.ran("issue_refund").count(arguments) == 0
    assert [i["intentId"] for i in env.intents(agent)] == [meta["intentId"]]

    env.review(meta["intentId"])
    # Other arguments do not ride on the approval: a new intent, pending, not run.
    other = run(call({"charge": charge, "amount": 51}))
    assert decision(other)["status"] == "pending_approval"
    assert decision(other)["intentId"] != meta["intentId"]
    # The same call, in a new session with a new JSON-RPC id (and the modern protocol):
    # it runs, once, and answers with the server's result.
    done = run(call(arguments, mode="auto"))
    assert not done.is_error and text(done) == f"refunded 50 on {charge}"
    assert env.executions.ran("issue_refund").count(arguments) == 1
    # Once more: the approval is used up; a new request for a human, not a second run.
    again = run(call(arguments))
    assert decision(again)["status"] == "pending_approval"
    assert decision(again)["intentId"] not in (meta["intentId"], decision(other)["intentId"])
    assert env.executions.ran("issue_refund").count(arguments) == 1
    assert env.executions.ran("issue_refund").count({"charge": charge, "amount": 51}) == 0
    with env.gate.admin() as admin:
        intent = admin.get(f"/v1/intents/{meta['intentId']}").json()
    assert intent["status"] == "succeeded"


def test_a_re_sent_call_finds_its_intent_behind_many_other_open_ones(
    env: Env, agent: dict[str, Any]
) -> None:
    # The call's intent is found by the call itself, not in a window of the agent's
    # newest intents: 210 newer pending calls (past the 200 once scanned) do not hide it.
    charge = f"ch-{time.monotonic_ns()}"
    arguments = {"charge": charge, "amount": 7}

    async def first_then_others() -> Any:
        async with env.client(agent) as client:
            first = await client.call_tool("issue_refund", arguments)
            for index in range(210):
                other = await client.call_tool(
                    "issue_refund", {"charge": f"{charge}-other-{index}", "amount": 1}
                )
                assert decision(other)["status"] == "pending_approval"
            return first

    async def call() -> Any:
        async with env.client(agent) as client:
            return await client.call_tool("issue_refund", arguments)

    intent_id = decision(run(first_then_others()))["intentId"]
    assert decision(run(call()))["intentId"] == intent_id  # the same intent, not a new one
    with env.gate.client(agent["apiKey"]) as client:
        listed = client.get("/v1/intents?status=pending_approval&limit=500").json()["intents"]
    assert len(listed) >= 211 and [i["intentId"] for i in listed].count(intent_id) == 1
    env.review(intent_id)
    done = run(call())
    assert not done.is_error and text(done) == f"refunded 7 on {charge}"
    assert env.executions.ran("issue_refund").count(arguments) == 1


def wait_for_pending(env: Env, agent: dict[str, Any], seen: set[str]) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for intent in env.intents(agent, "pending_approval"):
            if intent["intentId"] not in seen:
                return intent["intentId"]
        time.sleep(0.05)
    raise AssertionError("no held intent appeared")


@pytest.mark.parametrize("verdict", ["approve", "reject"])
def test_x_gate_wait_holds_the_call_until_a_human_decides(
    env: Env, agent: dict[str, Any], verdict: str
) -> None:
    charge = f"held-{time.monotonic_ns()}"
    results: list[Any] = []

    def held_call() -> None:
        async def session() -> Any:
            async with env.client(agent, **{"X-Gate-Wait": "true"}) as client:
                return await client.call_tool("issue_refund", {"charge": charge, "amount": 70})

        results.append(run(session()))

    thread = threading.Thread(target=held_call, daemon=True)
    thread.start()
    intent_id = wait_for_pending(env, agent, set())
    time.sleep(0.3)  # the call is held, not answered: nothing has run
    assert (
        thread.is_alive()
        and env.executions.ran("issue_refund").count({"charge": charge, "amount": 70}) == 0
    )
    env.review(intent_id, verdict)
    thread.join(timeout=60)
    (result,) = results
    if verdict == "approve":
        assert not result.is_error and text(result) == f"refunded 70 on {charge}"
        assert env.executions.ran("issue_refund").count({"charge": charge, "amount": 70}) == 1
    else:
        assert decision(result)["status"] == "rejected"
        assert "Rejected by a reviewer" in text(result)
        assert not env.executions.saw(charge)


# -- streaming --------------------------------------------------------------------------------


@pytest.mark.parametrize("tls", [False, True])
def test_event_stream_responses_are_streamed_not_buffered(
    env: Env, agent: dict[str, Any], tls: bool
) -> None:
    # A write approved by the policy; the TLS endpoint is vault-managed, so its stream is
    # also scrubbed of the credential, line by line, without holding an event back.
    env.executions.release.clear()
    seen: list[str] = []
    content_types: list[str] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        seen.append(message or "")
        env.executions.release.set()

    async def record_type(response: httpx2.Response) -> None:
        content_types.append(response.headers.get("content-type", ""))

    async def session() -> Any:
        async with env.http(agent) as http:
            http.event_hooks["response"].append(record_type)
            url = env.tls.url if tls else env.plain.url
            transport = streamable_http_client(url, http_client=http)
            async with Client(transport, mode="legacy", cache=None) as client:  # type: ignore[arg-type]
                return await client.call_tool("stream_report", {}, progress_callback=progress)

    result = run(session())
    assert seen == ["first half"]
    assert not result.is_error and text(result) == "released"
    assert any(t.startswith("text/event-stream") for t in content_types)


# -- batches and malformed JSON-RPC ----------------------------------------------------------


def rpc(method: str, request_id: int | None, **params: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params}
    if request_id is not None:
        message["id"] = request_id
    return message


def test_a_batch_is_decided_per_message_and_forwarded_whole_or_not_at_all(
    env: Env, agent: dict[str, Any]
) -> None:
    marker = f"b-{time.monotonic_ns()}"
    read = rpc("tools/call", 1, name="lookup", arguments={"order": marker})
    write = rpc("tools/call", 2, name="issue_refund", arguments={"charge": marker, "amount": 9})
    note = rpc("tools/call", 3, name="send_note", arguments={"to": marker, "text": "x"})
    with env.raw(agent) as client:
        mixed = client.post(env.plain.url, json=[read, write, rpc("notifications/x", None)])
        writes = client.post(env.plain.url, json=[write, note])
    assert mixed.status_code == 200, mixed.text
    answers = {a["id"]: a["result"] for a in mixed.json()}
    assert answers[2]["_meta"]["gate-proxy/decision"]["status"] == "pending_approval"
    assert answers[1]["isError"] and "was not sent" in answers[1]["content"][0]["text"]
    assert writes.status_code == 200
    for answer in writes.json():
        assert answer["result"]["_meta"]["gate-proxy/decision"]["reason_code"] == (
            "mcp_batch_writes"
        )
    # Nothing of either batch reached the server, and one intent (the write) was recorded.
    assert not env.executions.saw(marker)
    assert [i["status"] for i in env.intents(agent)] == ["pending_approval"]


@pytest.mark.parametrize(
    ("body", "headers", "reason"),
    [
        (
            b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"send_note","MARK"',
            {},
            "mcp_invalid_json",
        ),
        (
            b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"lookup",'
            b'"name":"send_note","arguments":{"to":"MARK","text":"x"}}}',
            {},
            "mcp_duplicate_key",
        ),
        (
            b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"send_note",'
            b'"arguments":"{\\"to\\":\\"MARK\\",\\"text\\":\\"x\\"}"}}',
            {},
            "mcp_invalid_params",
        ),
        (
            b'{"jsonrpc":"2.0","id":1,"method":"TOOLS/CALL","params":{"name":"send_note",'
            b'"arguments":{"to":"MARK","text":"x"}}}',
            {},
            "mcp_method_not_governed",
        ),
        (
            b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"lookup",'
            b'"arguments":{"order":"MARK"}}}',
            {"Mcp-Method": "tools/call", "Mcp-Name": "send_note"},
            "mcp_header_mismatch",
        ),
        (
            b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"lookup",'
            b'"arguments":{"order":"MARK"}}}',
            {"Content-Type": "text/plain"},
            "mcp_not_json",
        ),
    ],
)
def test_malformed_json_rpc_is_refused_with_a_json_rpc_error_and_never_forwarded(
    env: Env, agent: dict[str, Any], body: bytes, headers: dict[str, str], reason: str
) -> None:
    marker = f"m-{time.monotonic_ns()}"
    payload = body.replace(b"MARK", marker.encode())
    with env.raw(agent) as client:
        response = client.post(
            env.plain.url,
            content=payload,
            headers={"Content-Type": "application/json", **headers},
        )
    assert response.status_code == 400, response.text
    answer = response.json()
    assert answer["jsonrpc"] == "2.0" and answer["error"]["data"]["reason_code"] == reason
    assert not env.executions.saw(marker)
    assert env.intents(agent) == []


# -- in process: the answer the gate makes, as JSON-RPC --------------------------------------


def answered_flow(body: str, answer: Any, **headers: str) -> Any:
    flow = tflow.tflow()
    parsed = parse_mcp_body(body)
    assert isinstance(parsed, McpBody)
    calls = parsed.calls
    state = state_of(flow)
    state.mcp = McpExchange(parsed, "payments.mcp", calls[0] if len(calls) == 1 else None)
    refuse(flow, answer)
    return flow


def test_in_process_a_pending_answer_becomes_a_tool_result_with_the_request_id() -> None:
    body = json.dumps(rpc("tools/call", "call-9", name="issue_refund", arguments={"amount": 5}))
    pending = gate_response(
        202,
        status="pending_approval",
        reason_code="tool_review_required",
        intent_id="int_abc",
        destination="payments.mcp",
        expiresAt="2026-01-01T00:00:00Z",
        headers={"Retry-After": "10"},
    )
    flow = answered_flow(body, pending)
    asyncio.run(McpAnswers(None).request(flow))  # type: ignore[arg-type]
    assert flow.response.status_code == 200
    assert flow.response.headers["X-Gate-Intent-Id"] == "int_abc"
    answer = json.loads(flow.response.content)
    assert answer["id"] == "call-9" and answer["result"]["isError"] is True
    assert "int_abc" in answer["result"]["content"][0]["text"]


def test_in_process_a_refused_protocol_request_gets_a_json_rpc_error() -> None:
    flow = answered_flow(
        json.dumps(rpc("tools/list", 4)),
        gate_response(403, status="blocked", reason_code="destination_blocked", message="no"),
    )
    asyncio.run(McpAnswers(None).request(flow))  # type: ignore[arg-type]
    answer = json.loads(flow.response.content)
    assert answer["id"] == 4 and answer["error"]["code"] == GATE_REFUSED
    assert answer["error"]["data"]["reason_code"] == "destination_blocked"


def test_in_process_notifications_only_keep_the_gate_answer() -> None:
    blocked = gate_response(403, status="blocked", reason_code="destination_blocked")
    flow = answered_flow(json.dumps(rpc("notifications/initialized", None)), blocked)
    asyncio.run(McpAnswers(None).request(flow))  # type: ignore[arg-type]
    assert flow.response.status_code == 403
