"""A proxied request, described and decided: the edge of ``core.decide.decide``.

After GateIdentity named the agent and GateRouting matched the registry, the whole body
is read the way the upstream will read it, the request is described (destination,
policy, facts, what the registry and the edge found) and handed to the proposals use
case, which runs the one decider inside the store's write. The verdict says what to do:
forward (with the write-ahead execution_requested already durable), answer 202 or hold
(X-Gate-Wait), or refuse. A re-send of an approved request (X-Gate-Intent-Id) goes to
``approvals.py`` instead.
"""

import dataclasses
from urllib.parse import parse_qsl

from mitmproxy import http

from gate_proxy.core.body import (
    RecordCountProblem,
    count_records,
    decode_body,
    media_type,
    payload_type_of,
)
from gate_proxy.core.decide import PASSTHROUGH, Action
from gate_proxy.core.fingerprint import request_fingerprint
from gate_proxy.core.headers import BOUND_HEADERS, SAFE_METHODS, override_signals
from gate_proxy.core.intents import Status
from gate_proxy.core.registry import Match
from gate_proxy.core.terms import NOT_JSON, decode_json
from gate_proxy.core.urlnorm import normalize_url
from gate_proxy.errors import GateError
from gate_proxy.proxy.addons.answers import answer_for, bad_request, error_answer
from gate_proxy.proxy.addons.approvals import Approvals, HoldTicket
from gate_proxy.proxy.addons.guard import fail_closed, gate_response, refuse
from gate_proxy.proxy.addons.mcp import McpEdge
from gate_proxy.proxy.addons.routing import too_large
from gate_proxy.proxy.flowstate import FlowState, InFlight, state_of
from gate_proxy.proxy.runtime import ProxyRuntime
from gate_proxy.usecases import Proposal


class GateDecision:
    def __init__(self, runtime: ProxyRuntime) -> None:
        self.runtime = runtime
        self.approvals = Approvals(runtime)
        self.mcp = McpEdge(runtime)

    @fail_closed("request")
    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        to_hold = await self._decide(flow)
        if to_hold is not None:
            # Held in a frame of its own: the body, the proposal and the verdict's
            # description (the decision's locals) are not kept alive for the whole hold.
            await self.approvals.hold(flow, to_hold)

    async def _decide(self, flow: http.HTTPFlow) -> HoldTicket | None:
        """Decide, and answer or let the request go; what to hold, if it is to be held."""
        state = state_of(flow)
        principal, match, snapshot = state.principal, state.match, state.snapshot
        if principal is None or match is None or snapshot is None:
            # GateIdentity and GateRouting always set these or answer: never forward a
            # request nobody named or matched.
            raise RuntimeError("request reached the decision without identity or match")
        request = flow.request
        if request.trailers:
            # Fields after the body are not part of what the gate decides on, and servers
            # disagree on whether they may change its meaning: refuse them.
            refuse(flow, bad_request("trailers_not_allowed", "request trailers are refused"))
            return None
        body = self._body(flow)
        if body is None:
            return None
        url = normalize_url(request.scheme, request.host, request.port, request.path)
        retry_of = state.retry_of
        if match.protocol == "mcp":
            proposal = self._describe_mcp(flow, state, match, body, url)
            if proposal is None:
                return None  # answered: a body the gate cannot read as the server would
            if state.mcp is None or state.mcp.write is None:
                retry_of = None  # protocol traffic and reads are never retries of a write
            elif retry_of is None:
                # The same call re-sent (new id, maybe a new session) finds its intent.
                retry_of = await self.mcp.open_intent(principal, proposal)
        else:
            proposal = self._describe(flow, state, match, body, url)
        if retry_of:
            if proposal.refusal is not None:
                reason_code, message = proposal.refusal
                refuse(
                    flow,
                    gate_response(403, status="blocked", reason_code=reason_code, message=message),
                )
                return None
            return await self.approvals.retry(flow, principal, retry_of, proposal.fingerprint or "")
        try:
            outcome = await self.runtime.usecases.proposals.propose(
                principal, proposal, policies=snapshot.policies
            )
        except GateError as exc:  # e.g. analysis_timeout: a clear refusal, nothing forwarded
            refuse(flow, error_answer(exc, destination=proposal.destination, policy=match.policy))
            return None
        verdict, intent = outcome.verdict, outcome.intent
        state.verdict = verdict
        state.intent_id = intent.id if intent is not None else None
        state.outcome = "shadow" if verdict.shadow else verdict.status
        state.reason = verdict.reason_code
        if verdict.action is Action.FORWARD:
            if intent is not None and intent.status == Status.SCHEDULED:
                state.in_flight = InFlight(intent.id, principal.id)
            return None  # passthrough and shadow go upstream with no execution to record
        assert intent is not None
        if verdict.action is Action.PENDING and state.wait:
            # The findings are on the intent (its decision record); the flow keeps what the
            # rest of the request needs, not a held copy of them.
            state.verdict = dataclasses.replace(verdict, findings=())
            return HoldTicket.of(principal, intent)
        refuse(flow, answer_for(intent))
        return None

    def _body(self, flow: http.HTTPFlow) -> bytes | None:
        limit = self.runtime.settings.proxy_body_limit
        raw = flow.request.raw_content or b""
        if len(raw) > limit:
            refuse(flow, too_large(limit))
            return None
        encoding = flow.request.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding in ("", "identity"):
            return raw
        try:
            decoded = flow.request.get_content(strict=True) or b""
        except ValueError:
            refuse(
                flow,
                bad_request(
                    "undecodable_body", "the request body's Content-Encoding could not be decoded"
                ),
            )
            return None
        if len(decoded) > limit:
            refuse(flow, too_large(limit))
            return None
        return decoded

    def _describe(
        self, flow: http.HTTPFlow, state: FlowState, match: Match, body: bytes, url: str
    ) -> Proposal:
        """What the decider needs to know about this request, read as the upstream will."""
        request = flow.request
        content_type = request.headers.get("Content-Type", "")
        # Read the body the way the upstream will (charset, BOM, UTF-16/32): the policy,
        # the term scan and the record count all see that text.
        decoded = decode_body(body, content_type)
        record_count: int | None = None
        count_problem: RecordCountProblem | None = None
        if match.extract_records:
            if not body:
                record_count = 0
            else:
                parsed = decode_json(decoded.text or "") if decoded.ok else NOT_JSON
                counted = count_records(parsed, match.extract_records)
                record_count, count_problem = counted.count, counted.problem
        refusal = semantic_refusal(request, body, match)
        if refusal is None and decoded.problem in ("ambiguous_charset", "unknown_charset"):
            refusal = (
                "ambiguous_body",
                f"the body's encoding is in doubt ({decoded.problem}: Content-Type says "
                f"{content_type!r}); send UTF-8 JSON, or one consistent charset",
            )
        if refusal is None and count_problem is RecordCountProblem.AMBIGUOUS:
            refusal = (
                count_problem.value,
                f"the record path {match.extract_records} matches more than one key "
                "(duplicates or keys that differ only in case)",
            )
        proposal = self._proposal(flow, state, match, body, url, decoded.text, refusal)
        proposal.fingerprint = request_fingerprint(
            request.method,
            url,
            body,
            list(request.headers.items(multi=True)),
            self._bound_headers(state, match),
        )
        proposal.record_count = record_count
        if count_problem is RecordCountProblem.UNKNOWN:
            proposal.review_reason = count_problem.value
        return proposal

    def _describe_mcp(
        self, flow: http.HTTPFlow, state: FlowState, match: Match, body: bytes, url: str
    ) -> Proposal | None:
        """An MCP endpoint's request: protocol traffic, or one tool call (addons/mcp.py)."""
        request = flow.request
        decoded = decode_body(body, request.headers.get("Content-Type", ""))
        refusal = semantic_refusal(request, body, match)
        base = self._proposal(flow, state, match, body, url, decoded.text, refusal)
        return self.mcp.describe(
            flow, state, match, base, body, decoded, self._bound_headers(state, match)
        )

    def _proposal(  # everything but the fingerprint, which depends on what is bound
        self,
        flow: http.HTTPFlow,
        state: FlowState,
        match: Match,
        body: bytes,
        url: str,
        payload: str | None,
        refusal: tuple[str, str] | None,
    ) -> Proposal:
        request = flow.request
        content_type = request.headers.get("Content-Type", "")
        registry_block = None
        if match.blocked:
            detail = f": {match.refusal}" if match.refusal else ""
            registry_block = (
                match.reason_code or "destination_blocked",
                f"{match.host}{match.path} is blocked by the destination registry{detail}",
            )
        shadow = "shadow" in (self.runtime.settings.enforce, match.enforce)
        injection = state.injection
        return Proposal(
            destination=match.destination or f"{match.host}.http",
            policy=match.policy or "-",
            payload=payload,
            payload_type=payload_type_of(content_type),
            idempotency_key=request.headers.get("Idempotency-Key"),
            source="proxy",
            method=request.method,
            url=url,
            payload_size=len(body),
            registry_block=registry_block,
            passthrough=match.passthrough,
            require_approval=match.require_approval,
            refusal=refusal,
            shadow=shadow,
            credential_destination=injection.destination if injection is not None else None,
            execute_if_approved=True,
        )

    @staticmethod
    def _bound_headers(state: FlowState, match: Match) -> tuple[str, ...]:
        """The headers an approval is bound to: the defaults (core/headers.py), plus the
        policy's and the destination's own additions."""
        policies = state.snapshot.policies if state.snapshot is not None else {}
        policy = policies.get(match.policy or "")
        declared = getattr(policy, "fingerprint_headers", None) or ()
        return (*BOUND_HEADERS, *declared, *match.fingerprint_headers)


def semantic_refusal(request: http.Request, body: bytes, match: Match) -> tuple[str, str] | None:
    """Why this request's meaning differs from what the gate would decide on, if it does.

    The gate decides on the request line's method and path. A method or path override
    (X-HTTP-Method-Override, X-Original-URL, ``_method``) makes the upstream act on
    another one, so it is refused unless the destination allows it (then it is bound
    into the approval). A read (GET/HEAD/OPTIONS/TRACE) that carries a body is not a read.
    """
    if match.blocked:
        return None
    form_keys: list[str] = []
    if body and media_type(request.headers.get("Content-Type", "")) == (
        "application/x-www-form-urlencoded"
    ):
        text = body.decode("utf-8", "replace")
        form_keys = [key for key, _ in parse_qsl(text, keep_blank_values=True)]
    signals = override_signals(
        request.headers.fields, [key for key, _ in request.query.fields], form_keys
    )
    if signals and not match.allow_method_override:
        return (
            "method_override_refused",
            f"{', '.join(signals)} would make the upstream act on another method or path than "
            "the request line the gate decides on (a destination may allow it with "
            "allow_method_override: true)",
        )
    if match.passthrough and request.method.upper() in SAFE_METHODS and body:
        return (
            "not_a_read",
            f"a {request.method.upper()} with a body is not a read; send writes as writes",
        )
    return None


__all__ = ["PASSTHROUGH", "GateDecision", "semantic_refusal"]
