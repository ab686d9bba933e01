"""Where a proxied request is decided: registry → policy → forward, refuse or hold.

Order of work for one request (after GateIdentity has named the agent):
  1. reverse listener: route the path prefix to its upstream;
  2. the whole body is read (up to the limit) and the registry maps host+path to a
     destination and policy;
  3. a retry with X-Gate-Intent-Id is checked against what was approved;
     otherwise the service records an intent and the policy decides;
  4. approved: the execution_requested event is durable before the request leaves;
     pending: 202, or held until a human decides (X-Gate-Wait); blocked: 403.
"""

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl

from mitmproxy import connection, http

from addons.guard import fail_closed, gate_response, refuse
from addons.identity import is_reverse
from gate_proxy.api.errors import http_status
from gate_proxy.clock import iso_in, utc_iso
from gate_proxy.core.authority import (
    FORWARDING_HOST_HEADERS,
    AuthorityClaims,
    AuthorityProblem,
    check_authority,
    forwarded_hosts,
)
from gate_proxy.core.body import RecordCountProblem, count_records, decode_body
from gate_proxy.core.fingerprint import request_fingerprint
from gate_proxy.core.headers import BOUND_HEADERS, SAFE_METHODS, override_signals
from gate_proxy.core.intents import Status
from gate_proxy.core.registry import Match
from gate_proxy.core.terms import NOT_JSON, decode_json
from gate_proxy.core.urlnorm import DEFAULT_PORTS, normalize_host, normalize_path, normalize_url
from gate_proxy.errors import GateError
from gate_proxy.logs import log_decision
from gate_proxy.principal import Principal
from gate_proxy.proxy.keepalive import keep_flow_alive
from gate_proxy.proxy.runtime import HeldRequest, ProxyRuntime, client_gone
from gate_proxy.service import ProposeInput, agent_watch_key
from gate_proxy.store.base import Conflict, Row

log = logging.getLogger("gate.proxy")

RETRY_AFTER_SECONDS = 10
REVERSE_UNROUTED = "gate_reverse_unrouted"


@dataclass(slots=True)
class InFlight:
    """A forwarded request whose outcome the ledger still owes."""

    intent_id: str
    agent_id: str
    shadow: bool = False


def payload_type(content_type: str) -> str | None:
    media = content_type.split(";", 1)[0].strip().lower()
    if not media:
        return None
    if media.endswith("/json") or media.endswith("+json"):
        return "json"
    if media == "text/csv":
        return "csv"
    if media.startswith("text/"):
        return "text"
    return media.rsplit("/", 1)[-1]


class GateDecision:
    def __init__(self, runtime: ProxyRuntime) -> None:
        self.runtime = runtime
        # client connection id -> the CONNECT authority its tunnel was decided on
        self._tunnels: dict[str, tuple[str, int]] = {}

    def client_disconnected(self, client: connection.Client) -> None:
        self._tunnels.pop(client.id, None)

    # -- routing and early refusals ------------------------------------------------------------

    @fail_closed("http_connect_destination")
    def http_connect(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        verdict = self.runtime.registry().host_decision(flow.request.host, flow.request.port)
        if not verdict.allow:
            # Refused at CONNECT: the upstream is never contacted, not even by TCP.
            principal: Principal | None = flow.metadata.get("gate_principal")
            refuse(
                flow,
                gate_response(
                    403,
                    status="blocked",
                    reason_code=verdict.reason_code or "destination_blocked",
                    message=f"CONNECT to {verdict.host} is not allowed",
                    destination=verdict.host,
                ),
            )
            self._log_refusal(principal, verdict.host, verdict.reason_code, "connect")
            return
        self._tunnels[flow.client_conn.id] = (flow.request.host, flow.request.port)

    @fail_closed("requestheaders")
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        reverse = is_reverse(flow)
        if reverse and flow.request.authority:
            # The reverse listener decides on its route table, never on a URL the client
            # names in an absolute-form request line.
            refuse(flow, authority_refusal(_absolute_form_on_reverse()))
            return
        if reverse:
            target = self.runtime.registry().match_route(flow.request.path)
            if target is None:
                refuse(
                    flow,
                    gate_response(
                        404,
                        status="blocked",
                        reason_code="route_not_found",
                        message="no reverse-proxy route for this path",
                    ),
                )
                return
            flow.request.scheme = target.scheme
            flow.request.host = target.host
            flow.request.port = target.port
            flow.request.path = target.path
        problem = check_authority(self._claims(flow, reverse))
        if problem is not None:
            refuse(flow, authority_refusal(problem))
            return
        canonical_authority(flow)
        limit = self.runtime.settings.proxy_body_limit
        length = flow.request.headers.get("Content-Length")
        if length is not None and length.strip().isdigit() and int(length) > limit:
            refuse(flow, too_large(limit))
            return
        # The decision needs the whole body, so it is never streamed upstream early.
        flow.request.stream = False

    def _claims(self, flow: http.HTTPFlow, reverse: bool) -> AuthorityClaims:
        """Every name this request gives for its target (see core/authority.py)."""
        request = flow.request
        headers = request.headers
        tunnel = None if reverse else self._tunnels.get(flow.client_conn.id)
        forwarding = [
            (name, value) for name in FORWARDING_HOST_HEADERS for value in headers.get_all(name)
        ]
        forwarding += [("Forwarded host", h) for h in forwarded_hosts(headers.get_all("forwarded"))]
        return AuthorityClaims(
            scheme=request.scheme,
            decided_host=request.host,
            decided_port=request.port,
            tunnel=tunnel,
            # Only inside a tunnel does the client's SNI name the target (outside one it
            # would name the proxy itself).
            sni=flow.client_conn.sni if tunnel is not None else None,
            target=request.authority or None,
            target_label=":authority" if request.is_http2 else "absolute-form target",
            # Reverse routes rewrite Host to the route target (the client named the gate).
            host_headers=() if reverse else tuple(headers.get_all("host")),
            forwarding=tuple(forwarding),
        )

    # -- the decision --------------------------------------------------------------------------

    @fail_closed("request")
    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        principal: Principal | None = flow.metadata.get("gate_principal")
        if principal is None:  # GateIdentity always sets it or answers; never forward unnamed
            raise RuntimeError("request reached the decision without an identity")
        started = time.perf_counter()
        request = flow.request
        if request.trailers:
            # Fields after the body are not part of what the gate decides on, and
            # servers disagree on whether they may change its meaning: refuse them.
            refuse(flow, invalid("trailers_not_allowed", "request trailers are refused"))
            return
        body = self._body(flow)
        if body is None:
            return
        normalized = normalize_path(request.path)
        # Forward exactly what was matched: no parser differential between gate and upstream.
        request.path = normalized.target
        match = self.runtime.registry().match(
            request.host, request.port, request.method, request.path
        )
        url = normalize_url(request.scheme, request.host, request.port, request.path)
        semantics = semantic_refusal(request, body, match)
        intent_id = flow.metadata.get("gate_intent_id")
        if (match.passthrough or intent_id) and not match.blocked and semantics is not None:
            reason_code, message = semantics
            refuse(
                flow,
                gate_response(
                    403,
                    status="blocked",
                    reason_code=reason_code,
                    message=message,
                    destination=match.destination or match.host,
                ),
            )
            self._log_refusal(principal, match.host, reason_code, "proxy")
            return
        if match.passthrough and not match.blocked:
            log_decision(
                decision="passthrough",
                agent=principal.name,
                destination=match.destination or match.host,
                policy="-",
                reason="passthrough",
                intent_id=None,
                latency_ms=(time.perf_counter() - started) * 1000,
                source="proxy",
                method=request.method,
                url=url,
            )
            return
        fingerprint = request_fingerprint(
            request.method,
            url,
            body,
            list(request.headers.items(multi=True)),
            self._fingerprint_headers(match),
        )
        if intent_id:
            await self._retry(flow, principal, intent_id, fingerprint)
            return
        await self._decide(flow, principal, match, body, url, fingerprint, semantics)

    def _body(self, flow: http.HTTPFlow) -> bytes | None:
        limit = self.runtime.settings.proxy_body_limit
        raw = flow.request.raw_content or b""
        if len(raw) > limit:
            refuse(flow, too_large(limit))
            return None
        if flow.request.headers.get("Content-Encoding", "identity").strip().lower() not in (
            "",
            "identity",
        ):
            try:
                decoded = flow.request.get_content(strict=True) or b""
            except ValueError:
                refuse(
                    flow,
                    gate_response(
                        400,
                        status="blocked",
                        reason_code="undecodable_body",
                        message="the request body's Content-Encoding could not be decoded",
                        error="bad_request",
                    ),
                )
                return None
            if len(decoded) > limit:
                refuse(flow, too_large(limit))
                return None
            return decoded
        return raw

    def _fingerprint_headers(self, match: Match) -> tuple[str, ...]:
        """The headers an approval is bound to: the defaults (core/headers.py), plus the
        policy's and the destination's own additions."""
        policy = self.runtime.service.policies().get(match.policy or "")
        declared = getattr(policy, "fingerprint_headers", None) or ()
        return (*BOUND_HEADERS, *declared, *match.fingerprint_headers)

    async def _decide(
        self,
        flow: http.HTTPFlow,
        principal: Principal,
        match: Match,
        body: bytes,
        url: str,
        fingerprint: str,
        semantics: tuple[str, str] | None = None,
    ) -> None:
        request = flow.request
        content_type = request.headers.get("Content-Type", "")
        kind = payload_type(content_type)
        # Read the body the way the upstream will (charset, BOM, UTF-16/32): the policy,
        # the term scan and the record count all see that text.
        decoded = decode_body(body, content_type)
        text = decoded.text
        record_count: int | None = None
        count_problem: RecordCountProblem | None = None
        if match.extract_records:
            if not body:
                record_count = 0
            else:
                parsed = decode_json(text) if text is not None and decoded.ok else NOT_JSON
                counted = count_records(parsed, match.extract_records)
                record_count, count_problem = counted.count, counted.problem
        # Shadow from the gate, the destination or the policy: any one of them is enough.
        policy = self.runtime.service.policies().get(match.policy or "")
        shadow = "shadow" in (
            self.runtime.settings.enforce,
            match.enforce,
            policy.for_environment(
                principal.environment or self.runtime.service.environment
            ).enforce
            if policy
            else None,
        )
        force_block = None
        if match.blocked:
            force_block = (
                match.reason_code or "destination_blocked",
                f"{match.host}{match.path} is blocked by the destination registry",
            )
        elif semantics is not None:
            force_block = semantics
        elif decoded.problem in ("ambiguous_charset", "unknown_charset"):
            force_block = (
                "ambiguous_body",
                f"the body's encoding is in doubt ({decoded.problem}: Content-Type says "
                f"{content_type!r}); send UTF-8 JSON, or one consistent charset",
            )
        elif count_problem is RecordCountProblem.AMBIGUOUS:
            force_block = (
                count_problem.value,
                f"the record path {match.extract_records} matches more than one key "
                "(duplicates or keys that differ only in case)",
            )
        force_pending, pending_reason = None, "manual_review_required"
        if match.require_approval:
            force_pending = "registry_require_approval"
        elif count_problem is RecordCountProblem.UNKNOWN:
            # The threshold cannot be applied to a count we could not read: a human decides.
            force_pending, pending_reason = "extract_records", count_problem.value
        destination = match.destination or f"{match.host}.http"
        proposal = ProposeInput(
            destination=destination,
            policy=match.policy or "-",
            payload=text,
            record_count=record_count,
            payload_type=kind,
            idempotency_key=request.headers.get("Idempotency-Key"),
            source="proxy",
            method=request.method,
            url=url,
            fingerprint=fingerprint,
            payload_size=len(body),
            shadow=shadow,
            force_pending=force_pending,
            force_pending_reason=pending_reason,
            force_block=force_block,
            execute_if_approved=not shadow,
        )
        try:
            outcome = await self.runtime.service.propose(principal, proposal)
        except GateError as exc:  # e.g. analysis_timeout: a clear refusal, nothing forwarded
            refuse(
                flow,
                gate_response(
                    http_status(exc),
                    status="error" if http_status(exc) >= 500 else "blocked",
                    reason_code=exc.error,
                    message=exc.message,
                    destination=destination,
                    policy=match.policy,
                ),
            )
            return
        intent = outcome.intent
        if shadow:
            return  # recorded as shadow; forwarded whatever the decision
        status = intent["status"]
        if status == Status.SCHEDULED:
            flow.metadata["gate_in_flight"] = InFlight(intent["id"], principal.id)
            return
        if status == Status.PENDING and flow.metadata.get("gate_wait"):
            await self._hold(flow, principal, intent)
            return
        refuse(flow, answer_for(intent))

    # -- bound retry ---------------------------------------------------------------------------

    async def _retry(
        self, flow: http.HTTPFlow, principal: Principal, intent_id: str, fingerprint: str
    ) -> None:
        service = self.runtime.service
        intent = await service.store.get_intent(intent_id)
        if intent is None or intent["source"] != "proxy":
            refuse(flow, retry_refusal(intent_id, "intent_not_found", "no such proxied intent"))
            return
        if intent["agent_id"] != principal.id:
            refuse(
                flow,
                retry_refusal(
                    intent_id,
                    "intent_agent_mismatch",
                    "the intent belongs to another agent",
                    intent,
                ),
            )
            return
        if intent["fingerprint"] != fingerprint:
            refuse(
                flow,
                retry_refusal(
                    intent_id,
                    "fingerprint_mismatch",
                    "this request differs from the one that was proposed (method, URL, body or "
                    "declared headers)",
                    intent,
                ),
            )
            return
        intent = await service.refresh_expiry(intent)
        if intent["status"] == Status.PENDING:
            if flow.metadata.get("gate_wait"):
                await self._hold(flow, principal, intent)
            else:
                refuse(flow, answer_for(intent))
            return
        await self._execute_approved(flow, principal, intent)

    async def _execute_approved(
        self, flow: http.HTTPFlow, principal: Principal, intent: Row
    ) -> None:
        if intent["status"] != Status.APPROVED:
            reason = {
                Status.SCHEDULED: "already_executed",
                Status.SUCCEEDED: "already_executed",
                Status.FAILED: "already_executed",
            }.get(intent["status"], f"intent_{intent['status']}")
            refuse(
                flow,
                retry_refusal(
                    intent["id"],
                    reason,
                    f"the intent is {intent['status']}; an approval "
                    "authorises exactly one execution",
                    intent,
                ),
            )
            return
        try:
            await self.runtime.service.claim_execution(intent, principal.name)
        except Conflict:
            refuse(
                flow,
                retry_refusal(
                    intent["id"], "already_executed", "this approval has already been used", intent
                ),
            )
            return
        except GateError as exc:  # the deadline passed, or the agent is no longer active
            refuse(flow, intent_refusal(exc, intent))
            return
        flow.metadata["gate_in_flight"] = InFlight(intent["id"], principal.id)

    # -- holding -------------------------------------------------------------------------------

    async def _hold(self, flow: http.HTTPFlow, principal: Principal, intent: Row) -> None:
        runtime = self.runtime
        service = runtime.service
        timeout = runtime.settings.hold_timeout_s
        decided = service.watchers.wait(intent["id"])
        agent_changed = service.watchers.wait(agent_watch_key(principal.id))
        held = HeldRequest(
            intent_id=intent["id"],
            agent_id=principal.id,
            agent=principal.name,
            destination=intent["destination"],
            method=flow.request.method,
            url=intent.get("url") or "",
            client_id=flow.client_conn.id,
            client=flow.client_conn,
            held_since=utc_iso(),
            release_at=iso_in_seconds(timeout),
        )
        token = runtime.held.add(held)
        service.metrics.held.set(len(runtime.held))
        cancelled = asyncio.ensure_future(held.cancel.wait())
        try:
            # Decided between the proposal and now? Then there is nothing to wait for.
            current = await service.refresh_expiry(await service.store.get_intent(intent["id"]))
            if current["status"] == Status.PENDING:
                async with keep_flow_alive(flow):
                    await asyncio.wait(
                        {decided, cancelled, agent_changed},
                        timeout=timeout,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                current = await service.store.get_intent(intent["id"])
        finally:
            runtime.held.remove(token)
            service.metrics.held.set(len(runtime.held))
            decided.cancel()
            cancelled.cancel()
            agent_changed.cancel()
        if held.cancel.is_set() or client_gone(flow):
            # The client left (mitmproxy reports it only after this hook returns, so
            # HeldRequests watches the socket): nothing goes upstream, and the intent
            # stays as it is; the agent re-sends with X-Gate-Intent-Id.
            flow.kill()
            return
        if current is None:
            raise RuntimeError("held intent vanished")
        try:
            # Revoked or suspended while held: nothing is released for it.
            await service.require_active_agent(principal.id)
        except GateError as exc:
            refuse(flow, intent_refusal(exc, current))
            return
        if current["status"] == Status.APPROVED:
            await self._execute_approved(flow, principal, current)
            return
        if current["status"] == Status.PENDING:
            refuse(flow, answer_for(current, held_timeout=True))
            return
        refuse(flow, answer_for(current))

    # -- helpers -------------------------------------------------------------------------------

    def _log_refusal(
        self, principal: Principal | None, host: str, reason: str | None, source: str
    ) -> None:
        self.runtime.service.metrics.decisions.inc("blocked", host, source)
        log_decision(
            decision="blocked",
            agent=principal.name if principal else "-",
            destination=host,
            policy="-",
            reason=reason,
            intent_id=None,
            latency_ms=0.0,
            source=source,
        )


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
    media = request.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    if body and media == "application/x-www-form-urlencoded":
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


def canonical_authority(flow: http.HTTPFlow) -> None:
    """Send the decided authority in one canonical spelling, and only there.

    HTTP/1 goes upstream in origin-form with exactly one Host header; HTTP/2 carries it
    in :authority. Upstreams then have one name to route on: the one that was checked.
    """
    request = flow.request
    host = normalize_host(request.host)
    shown = f"[{host}]" if ":" in host else host
    if request.port != DEFAULT_PORTS.get(request.scheme, -1):
        shown = f"{shown}:{request.port}"
    if request.is_http2 or request.is_http3:
        request.authority = shown
        if "host" in request.headers:
            request.headers["Host"] = shown
        return
    request.authority = ""
    request.headers["Host"] = shown


def invalid(error: str, message: str) -> http.Response:
    return gate_response(
        400,
        status="blocked",
        reason_code=error,
        message=message,
        error=error,
        headers={"Connection": "close"},
    )


def authority_refusal(problem: AuthorityProblem) -> http.Response:
    return gate_response(
        problem.status,
        status="blocked",
        reason_code=problem.reason_code,
        message=problem.message,
        error=problem.reason_code,
        claim=problem.claim,
    )


def _absolute_form_on_reverse() -> AuthorityProblem:
    return AuthorityProblem(
        400,
        "invalid_authority",
        "reverse-proxy routes take origin-form requests (a path), not a URL",
        "absolute-form target",
    )


def iso_in_seconds(seconds: float) -> str:
    return iso_in(timedelta(seconds=seconds))


def too_large(limit: int) -> http.Response:
    # Connection: close, because the client may still be sending a body we will not read.
    return gate_response(
        413,
        status="blocked",
        reason_code="payload_too_large",
        message=f"request body exceeds the gate's limit of {limit} bytes",
        error="payload_too_large",
        headers={"Connection": "close"},
    )


def intent_refusal(exc: GateError, intent: Row) -> http.Response:
    return gate_response(
        http_status(exc),
        status="blocked",
        reason_code=exc.error,
        message=exc.message,
        intent_id=intent["id"],
        destination=intent["destination"],
        policy=intent["policy"],
    )


def retry_refusal(
    intent_id: str, reason_code: str, message: str, intent: Row | None = None
) -> http.Response:
    return gate_response(
        409,
        status="conflict",
        reason_code=reason_code,
        message=message,
        intent_id=intent_id,
        destination=intent["destination"] if intent else None,
        policy=intent["policy"] if intent else None,
        intentStatus=intent["status"] if intent else None,
    )


def answer_for(intent: Row, *, held_timeout: bool = False) -> http.Response:
    status = intent["status"]
    common: dict[str, Any] = {
        "intent_id": intent["id"],
        "destination": intent["destination"],
        "policy": intent["policy"],
        "risk_score": intent["risk_score"],
        "risk_level": intent["risk_level"],
    }
    if status == Status.PENDING:
        return gate_response(
            202,
            status="pending_approval",
            reason_code="hold_timeout" if held_timeout else intent["reason_code"],
            message=None,
            expiresAt=intent.get("expires_at"),
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            **common,
        )
    if status == Status.DUPLICATE:
        return gate_response(
            409,
            status="duplicate_blocked",
            reason_code=intent["reason_code"],
            message=intent["block_reason"],
            duplicateOf=intent.get("duplicate_of"),
            **common,
        )
    if status == Status.EXPIRED:
        return gate_response(
            403,
            status="expired",
            reason_code="intent_expired",
            message="the approval window closed",
            **common,
        )
    if status == Status.REJECTED:
        return gate_response(
            403,
            status="rejected",
            reason_code="rejected_by_reviewer",
            message=intent.get("decision_note") or "rejected by a reviewer",
            **common,
        )
    return gate_response(
        403,
        status="blocked",
        reason_code=intent["reason_code"] or "blocked",
        message=intent.get("block_reason"),
        **common,
    )
