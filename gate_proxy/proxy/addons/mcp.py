"""MCP endpoints (``protocol: mcp`` in the registry) at the proxy edge.

``McpEdge`` is used by ``GateDecision`` to describe a request to an MCP endpoint:

- GET (the server's SSE stream), DELETE (session end), HEAD and OPTIONS without a body,
  and POSTs carrying only protocol messages (``initialize``, ``ping``, notifications,
  ``tools/list``, ...) or calls to ``read`` tools are protocol traffic: forwarded as a
  passthrough, without an intent (counted in the decision metrics).
- A POST with one ``tools/call`` to any other tool is a write: decided like any request,
  with the call's ``arguments`` as the payload, the ``tools:`` rules of the policy mapped
  onto the decider's inputs (a blocked tool is a refusal, a ``require_approval`` tool a
  forced review), and an approval bound to the call (``core.fingerprint``).
- A body the gate cannot read as the server would is refused with a JSON-RPC error (400),
  never forwarded; a batch with more than one such write is refused as a whole.

``McpAnswers`` (loaded after every addon that may refuse in the request hook) turns the
gate's own answer to a parsed MCP request into a JSON-RPC response with the request's id
(HTTP 200): a ``tools/call`` gets a tool result with ``isError: true`` and a text the
model can act on; other requests get a JSON-RPC error. docs/mcp.md has the details.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Final

from mitmproxy import http

from gate_proxy.core.body import BodyText, RecordCountProblem, count_records, media_type
from gate_proxy.core.fingerprint import mcp_call_fingerprint, request_fingerprint
from gate_proxy.core.intents import Status
from gate_proxy.core.mcp import (
    PARSE_ERROR,
    McpBody,
    McpProblem,
    RequestId,
    ToolCall,
    ToolRule,
    ToolRules,
    ToolRuling,
    check_routing_headers,
    parse_mcp_body,
    rule_for_tool,
)
from gate_proxy.core.mcp.record import tool_metadata
from gate_proxy.core.registry import Match
from gate_proxy.core.terms import decode_json
from gate_proxy.principal import Principal
from gate_proxy.proxy.addons.guard import fail_closed, gate_response, refuse
from gate_proxy.proxy.flowstate import FlowState, state_of
from gate_proxy.proxy.runtime import ProxyRuntime
from gate_proxy.usecases import Proposal

__all__ = ["GATE_REFUSED", "McpAnswers", "McpEdge", "McpExchange"]

# JSON-RPC error code for "the gate did not pass this request" (the implementation-defined
# band -32000..-32019; the MCP SDK keeps -32000 and -32001 for itself).
GATE_REFUSED: Final = -32010
DECISION_META: Final = "gate-proxy/decision"
_BODYLESS_TRAFFIC: Final = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})


@dataclass(frozen=True, slots=True)
class McpExchange:
    """A parsed MCP POST: what the answer needs to speak JSON-RPC back."""

    body: McpBody
    destination: str
    write: ToolCall | None  # the one call decided as a write (None: none, or refused whole)


class McpEdge:
    def __init__(self, runtime: ProxyRuntime) -> None:
        self.runtime = runtime

    def describe(
        self,
        flow: http.HTTPFlow,
        state: FlowState,
        match: Match,
        base: Proposal,
        body: bytes,
        decoded: BodyText,
        bound_headers: tuple[str, ...],
    ) -> Proposal | None:
        """The proposal for a request to an MCP endpoint; None when it was answered here."""
        request = flow.request
        method = request.method.upper()
        if method != "POST":
            plain = self._plain(base, request, body, bound_headers)
            if method in _BODYLESS_TRAFFIC and not body:
                state.inject_without_execution = True
                return dataclasses.replace(plain, passthrough=True)
            return dataclasses.replace(
                plain,
                refusal=base.refusal
                or (
                    "mcp_method_not_allowed",
                    f"an MCP endpoint takes POST (JSON-RPC), and GET, DELETE, HEAD or OPTIONS "
                    f"without a body; not a {method}"
                    + (" with a body" if method in _BODYLESS_TRAFFIC else ""),
                ),
            )
        parsed = self._parse(request, decoded)
        if isinstance(parsed, McpProblem):
            refuse(flow, problem_answer(parsed))
            return None
        rules = self._tool_rules(state, match)
        writes = [
            (call, rule)
            for call in parsed.calls
            if (rule := rule_for_tool(rules, call.name)).ruling is not ToolRuling.READ
        ]
        destination = base.destination
        if len(writes) > 1:
            state.mcp = McpExchange(parsed, destination, None)
            refuse(flow, batch_refusal(destination, match.policy))
            return None
        if not writes:
            state.mcp = McpExchange(parsed, destination, None)
            state.inject_without_execution = True
            plain = self._plain(base, request, body, bound_headers)
            return dataclasses.replace(plain, passthrough=True)
        call, rule = writes[0]
        state.mcp = McpExchange(parsed, destination, call)
        return self._write(flow, match, base, call, rule, rules, bound_headers)

    @staticmethod
    def _plain(
        base: Proposal, request: http.Request, body: bytes, bound_headers: tuple[str, ...]
    ) -> Proposal:
        """Protocol traffic keeps the plain request fingerprint (recorded if it is refused)."""
        fingerprint = request_fingerprint(
            request.method, base.url or "", body, _header_pairs(request), bound_headers
        )
        return dataclasses.replace(base, fingerprint=fingerprint)

    def _parse(self, request: http.Request, decoded: BodyText) -> McpBody | McpProblem:
        content_type = request.headers.get("Content-Type", "")
        if media_type(content_type) != "application/json":
            return McpProblem(
                PARSE_ERROR, "mcp_not_json", "an MCP POST carries Content-Type: application/json"
            )
        if decoded.problem is not None or decoded.text is None:
            return McpProblem(
                PARSE_ERROR,
                "mcp_invalid_json",
                f"the body is not readable JSON text ({decoded.problem or 'empty'}); send UTF-8",
            )
        parsed = parse_mcp_body(decoded.text)
        if isinstance(parsed, McpProblem):
            return parsed
        return check_routing_headers(parsed, _header_pairs(request)) or parsed

    def _tool_rules(self, state: FlowState, match: Match) -> ToolRules | None:
        policies = state.snapshot.policies if state.snapshot is not None else {}
        policy = policies.get(match.policy or "")
        if policy is None:
            return None  # no policy: every call goes to the decider, which blocks it
        principal = state.principal
        environment = (principal.environment if principal else None) or (
            self.runtime.usecases.proposals.environment
        )
        return policy.for_environment(environment).tools

    def _write(
        self,
        flow: http.HTTPFlow,
        match: Match,
        base: Proposal,
        call: ToolCall,
        rule: ToolRule,
        rules: ToolRules | None,
        bound_headers: tuple[str, ...],
    ) -> Proposal:
        refusal = base.refusal or rule.refusal
        review = "tool_review_required" if rule.ruling is ToolRuling.REVIEW else None
        record_count: int | None = None
        spec = (rules.record_path(call.name) if rules is not None else None) or (
            match.extract_records
        )
        if spec:
            counted = count_records(decode_json(call.arguments_json), spec)
            record_count = counted.count
            if counted.problem is RecordCountProblem.AMBIGUOUS and refusal is None:
                refusal = (
                    counted.problem.value,
                    f"the record path {spec} matches more than one key in the arguments",
                )
            elif counted.problem is RecordCountProblem.UNKNOWN:
                review = counted.problem.value  # a human looks at what could not be counted
        request = flow.request
        headers = _header_pairs(request)
        # Mcp-Param-* headers repeat arguments for routers (2026-07-28): bind them too.
        params = tuple(name.lower() for name, _ in headers if name.lower().startswith("mcp-param-"))
        fingerprint = mcp_call_fingerprint(
            base.url or "", call.binding, headers, (*bound_headers, *params)
        )
        return dataclasses.replace(
            base,
            payload=call.arguments_json,
            payload_type="json",
            payload_size=len(call.arguments_json.encode("utf-8")),
            record_count=record_count,
            refusal=refusal,
            review_reason=review,
            fingerprint=fingerprint,
            metadata=tool_metadata(call.name),
        )

    async def open_intent(self, principal: Principal, proposal: Proposal) -> str | None:
        """The approved (else pending) intent this same call already has, if any.

        A model re-sends a call after approval as the same call with a new JSON-RPC id, in
        the same or a new session; it cannot add the gate's X-Gate-Intent-Id header. The
        call's fingerprint finds its intent, which ``Approvals.retry`` then runs once.
        """
        usecases = self.runtime.usecases
        if not proposal.fingerprint:
            return None
        # Looked up by the call itself (an index), so an agent's other open intents,
        # however many, never hide it; approved before pending, newest first.
        intents = await usecases.store.find_open_calls(
            principal.id, proposal.destination, proposal.fingerprint
        )
        for intent in intents:
            current = await usecases.expiry.current(intent)  # one past its deadline: expired
            if current.status in (Status.APPROVED, Status.PENDING):
                return current.id
        return None


def _header_pairs(request: http.Request) -> list[tuple[str, str]]:
    return [
        (name.decode("latin-1"), value.decode("latin-1")) for name, value in request.headers.fields
    ]


# -- answers ----------------------------------------------------------------------------------


def _json_response(status: int, body: Any, headers: dict[str, str]) -> http.Response:
    return http.Response.make(
        status,
        json.dumps(body, ensure_ascii=False).encode("utf-8"),
        {"Content-Type": "application/json", "Cache-Control": "no-store", **headers},
    )


def problem_answer(problem: McpProblem) -> http.Response:
    """A body the gate cannot read as the server would: 400 with a JSON-RPC error."""
    error = {
        "code": problem.code,
        "message": problem.message,
        "data": {"reason_code": problem.reason_code, "gate": "refused: nothing was forwarded"},
    }
    body = {"jsonrpc": "2.0", "id": problem.request_id, "error": error}
    return _json_response(400, body, {"X-Gate-Decision": "blocked", "Connection": "close"})


def batch_refusal(destination: str, policy: str | None) -> http.Response:
    return gate_response(
        403,
        status="blocked",
        reason_code="mcp_batch_writes",
        message="a batch may carry at most one tools/call that is not a read tool; "
        "send writes one per request",
        destination=destination,
        policy=policy,
    )


class McpAnswers:
    """Speaks JSON-RPC back for every answer the gate made to a parsed MCP request."""

    def __init__(self, runtime: ProxyRuntime) -> None:
        self.runtime = runtime

    @fail_closed("mcp_answer")
    def request(self, flow: http.HTTPFlow) -> None:
        state = state_of(flow)
        exchange = state.mcp
        if exchange is None or flow.response is None or not state.answered:
            return
        answer = mcp_answer(flow.response, exchange)
        if answer is not None:
            flow.response = answer


def mcp_answer(response: http.Response, exchange: McpExchange) -> http.Response | None:
    """The gate's JSON answer as the JSON-RPC response(s) to the body's requests (HTTP 200),
    or None when the body holds no request (notifications only: the answer stays)."""
    try:
        gate = json.loads(response.content or b"{}")
    except ValueError:
        gate = {}
    if not isinstance(gate, dict):
        gate = {}
    items: list[dict[str, Any]] = []
    for message in exchange.body.requests:
        assert message.request_id is not None
        call = message.call
        decided = exchange.write is None or call is exchange.write
        if call is not None:
            text = (
                decision_text(gate, call.name, exchange.destination)
                if decided
                else not_sent_text(call.name, exchange.write)
            )
            items.append(_tool_result(message.request_id, text, gate, call.name))
        else:
            text = _summary(gate) if decided else not_sent_text(None, exchange.write)
            items.append(_error(message.request_id, text, gate))
    if not items:
        return None
    keep = {"X-Gate-Decision", "X-Gate-Intent-Id", "Retry-After", "Connection"}
    headers = {name: value for name, value in response.headers.items() if name in keep}
    return _json_response(200, items if exchange.body.batch else items[0], headers)


def _decision_meta(gate: dict[str, Any], tool: str | None) -> dict[str, Any]:
    fields = ("status", "intentId", "reason_code", "message", "destination", "policy")
    meta = {key: gate.get(key) for key in fields}
    meta["expiresAt"] = gate.get("expiresAt")
    meta["tool"] = tool
    return meta


def _tool_result(
    request_id: RequestId, text: str, gate: dict[str, Any], tool: str
) -> dict[str, Any]:
    result = {
        "content": [{"type": "text", "text": text}],
        "isError": True,
        "_meta": {DECISION_META: _decision_meta(gate, tool)},
    }
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def _error(request_id: RequestId, text: str, gate: dict[str, Any]) -> dict[str, Any]:
    error = {"code": GATE_REFUSED, "message": text, "data": _decision_meta(gate, None)}
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


def _summary(gate: dict[str, Any]) -> str:
    reason = gate.get("message") or gate.get("reason_code") or "refused"
    return f"Refused by the gate ({gate.get('reason_code') or 'blocked'}): {reason}"


def decision_text(gate: dict[str, Any], tool: str, destination: str) -> str:
    """What the model reads: what happened to its call, and what to do next."""
    status = gate.get("status")
    code = gate.get("reason_code") or status or "refused"
    reason = gate.get("message") or code
    subject = f"The tool `{tool}` on {gate.get('destination') or destination}"
    intent = gate.get("intentId")
    if status == "pending_approval":
        held = " The gate held the call until its hold timeout." if code == "hold_timeout" else ""
        until = f" until {gate['expiresAt']}" if gate.get("expiresAt") else ""
        return (
            f"Pending approval: {subject} needs a human decision (intent {intent}, open"
            f"{until}); it was not called.{held} Once it is approved, make the same call "
            "again with the same arguments: it then runs once. A call with other arguments "
            "is a new request."
        )
    if status == "rejected":
        return f"Rejected by a reviewer: {subject} was not called ({reason}). Do not retry it."
    if status == "expired":
        return (
            f"{subject} was not called: the approval window of intent {intent} closed. "
            "Make the call again to ask for a new approval."
        )
    if status == "duplicate_blocked":
        return f"Refused as a duplicate: {subject} was not called ({reason})."
    if status == "error":
        return f"The gate could not process this call: {subject} was not called ({reason})."
    return f"Blocked by the gate: {subject} was not called. Reason: {reason} ({code})."


def not_sent_text(tool: str | None, write: ToolCall | None) -> str:
    what = f"The call to `{tool}`" if tool else "This request"
    other = f"the call to `{write.name}`" if write is not None else "another call"
    return (
        f"{what} was not sent: it came in one batch with {other}, which the gate did not "
        "forward. Send it again on its own."
    )
