"""Control API routes. Thin: parse and authorise, call the service, shape the answer."""

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from gate_proxy.api.errors import http_status
from gate_proxy.errors import GateError, InvalidInput, NotFound, NotPermitted, invalid
from gate_proxy.principal import Principal
from gate_proxy.service import (
    GateService,
    Outcome,
    ProposeInput,
    parse_expires_in,
    public_agent,
    review_hash,
)
from gate_proxy.store.base import Row

log = logging.getLogger("gate.api")

SERVICE = web.AppKey("service", GateService)
EXTRA = web.AppKey("extra", dict)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        text=json.dumps(data, ensure_ascii=False, default=str),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def error_response(status: int, error: str, message: str, **extra: Any) -> web.Response:
    return json_response({"error": error, "message": message, **extra}, status=status)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except GateError as exc:
        return json_response(exc.body(), status=http_status(exc))
    except web.HTTPRequestEntityTooLarge as exc:
        return error_response(413, "payload_too_large", exc.text or "request body too large")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = exc.reason.lower().replace(" ", "_")
        return error_response(exc.status, code, exc.reason)
    except Exception:
        # Never echo internals: the exception text could carry request data.
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error_response(500, "internal_error", "the gate hit an internal error")


def bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("X-Gate-Key") or None


async def caller(request: web.Request) -> Principal:
    return await request.app[SERVICE].authenticate(bearer(request))


async def read_json(request: web.Request) -> dict[str, Any]:
    raw = await request.read()  # aiohttp enforces client_max_size here (413)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("invalid_json", f"request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise invalid("request body must be a JSON object")
    return body


# -- views -------------------------------------------------------------------------------------


def intent_view(intent: Row) -> dict[str, Any]:
    return {
        "intentId": intent["id"],
        "status": intent["status"],
        "agentId": intent["agent_id"],
        "agent": intent["agent_name"],
        "on_behalf_of": intent.get("on_behalf_of"),
        "source": intent["source"],
        "destination": intent["destination"],
        "policy": intent["policy"],
        "reason_code": intent.get("reason_code"),
        "blockReason": intent.get("block_reason"),
        "risk_score": intent["risk_score"],
        "risk_level": intent["risk_level"],
        "recordCount": intent.get("record_count"),
        "estimated_value_usd": intent.get("estimated_value_usd"),
        "sensitivity_tags": intent.get("sensitivity_tags") or [],
        "idempotency_key": intent.get("idempotency_key"),
        "duplicateOf": intent.get("duplicate_of"),
        "environment": intent.get("environment"),
        "payload": {
            "type": intent.get("payload_type"),
            "size": intent.get("payload_size"),
            "sha256": intent.get("payload_sha256"),
            "preview": intent.get("payload_preview"),
        },
        "method": intent.get("method"),
        "url": intent.get("url"),
        "reviewHash": review_hash(intent),
        "requireApprovals": intent.get("require_approvals", 1),
        "shadow": bool(intent.get("shadow")),
        "metadata": intent.get("metadata") or {},
        "createdAt": intent["created_at"],
        "expiresAt": intent.get("expires_at"),
        "decidedAt": intent.get("decided_at"),
        "decidedBy": intent.get("decided_by"),
        "note": intent.get("decision_note"),
        **({"approvals": intent["approvals"]} if "approvals" in intent else {}),
    }


def decision_view(outcome: Outcome) -> dict[str, Any]:
    intent = outcome.intent
    return {
        "intentId": intent["id"],
        "status": intent["status"],
        "risk_score": intent["risk_score"],
        "risk_level": intent["risk_level"],
        "reason_code": intent["reason_code"],
        "blockReason": intent["block_reason"],
        "expiresAt": intent["expires_at"],
        "destination": intent["destination"],
        "policy": intent["policy"],
        "reviewHash": review_hash(intent),
        **({"duplicateOf": outcome.duplicate_of} if outcome.duplicate_of else {}),
    }


def execution_view(execution: Row) -> dict[str, Any]:
    # Never the token, nor its hash.
    return {
        "executionId": execution["id"],
        "intent_id": execution["intent_id"],
        "mode": execution["mode"],
        "status": execution["status"],
        "worker_report": execution.get("report"),
        "created_at": execution["created_at"],
        "expires_at": execution["expires_at"],
        "completed_at": execution.get("completed_at"),
    }


# -- handlers ----------------------------------------------------------------------------------


async def health(request: web.Request) -> web.Response:
    extra = request.app[EXTRA]
    return json_response({"status": "ok", **{k: v() for k, v in extra.get("health", {}).items()}})


async def register_agent(request: web.Request) -> web.Response:
    principal = await caller(request)
    result = await request.app[SERVICE].register_agent(principal, await read_json(request))
    return json_response(result, status=201)


async def list_agents(request: web.Request) -> web.Response:
    principal = await caller(request)
    if not principal.can_review:
        raise NotPermitted("forbidden", "listing agents needs a reviewer or admin key")
    agents = await request.app[SERVICE].store.list_agents()
    return json_response({"agents": [public_agent(agent) for agent in agents]})


async def get_agent(request: web.Request) -> web.Response:
    principal = await caller(request)
    agent = await request.app[SERVICE].find_agent(request.match_info["agent_id"])
    if not principal.can_see(agent["id"]):
        raise NotFound("not_found", "agent not found")
    return json_response(public_agent(agent))


def _agent_status_handler(status: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        principal = await caller(request)
        agent = await request.app[SERVICE].set_agent_status(
            principal, request.match_info["agent_id"], status
        )
        return json_response(agent)

    return handler


def propose_input(body: dict[str, Any]) -> ProposeInput:
    destination, policy = body.get("destination"), body.get("policy")
    if not isinstance(destination, str) or not destination.strip():
        raise invalid("destination is required")
    if not isinstance(policy, str) or not policy.strip():
        raise invalid("policy is required")
    payload = body.get("payload")
    if payload is not None and not isinstance(payload, str):
        payload = json.dumps(payload, ensure_ascii=False)
    record_count = body.get("recordCount", body.get("record_count"))
    if record_count is not None and (
        not isinstance(record_count, int) or isinstance(record_count, bool) or record_count < 0
    ):
        raise invalid("recordCount must be a non-negative integer")
    value = body.get("estimated_value_usd")
    if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)):
        raise invalid("estimated_value_usd must be a number")
    tags = body.get("sensitivity_tags", [])
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise invalid("sensitivity_tags must be a list of strings")
    metadata = body.get("metadata", {})
    if not isinstance(metadata, dict):
        raise invalid("metadata must be an object")
    for key in ("idempotency_key", "on_behalf_of"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise invalid(f"{key} must be a string")
    return ProposeInput(
        destination=destination.strip(),
        policy=policy.strip(),
        payload=payload,
        record_count=record_count,
        estimated_value_usd=float(value) if value is not None else None,
        sensitivity_tags=tuple(tags),
        idempotency_key=body.get("idempotency_key"),
        on_behalf_of=body.get("on_behalf_of"),
        expires_in_seconds=parse_expires_in(body.get("expiresIn")),
        metadata=metadata,
    )


async def create_intent(request: web.Request) -> web.Response:
    principal = await caller(request)
    proposal = propose_input(await read_json(request))
    if proposal.idempotency_key is None and request.headers.get("Idempotency-Key"):
        proposal.idempotency_key = request.headers["Idempotency-Key"]  # Stripe's convention
    outcome = await request.app[SERVICE].propose(principal, proposal)
    return json_response(decision_view(outcome), status=201)


async def list_intents(request: web.Request) -> web.Response:
    principal = await caller(request)
    try:
        limit = max(1, min(int(request.query.get("limit", "50")), 500))
    except ValueError as exc:
        raise invalid("limit must be a number") from exc
    intents = await request.app[SERVICE].list_intents(principal, request.query.get("status"), limit)
    return json_response({"intents": [intent_view(intent) for intent in intents]})


async def get_intent(request: web.Request) -> web.Response:
    principal = await caller(request)
    service = request.app[SERVICE]
    intent = await service.get_intent(principal, request.match_info["intent_id"])
    view = intent_view(intent)
    view["executions"] = [
        execution_view(execution) for execution in await service.store.list_executions(intent["id"])
    ]
    return json_response(view)


async def intent_decision(request: web.Request) -> web.Response:
    principal = await caller(request)
    service = request.app[SERVICE]
    intent = await service.get_intent(principal, request.match_info["intent_id"])
    events = await service.store.ledger_events(intent_id=intent["id"])
    checked = next((e for e in events if e["type"] == "policy_checked"), None)
    data = checked["data"] if checked else {}
    return json_response(
        {
            "intent_id": intent["id"],
            "decision": data.get("result"),
            "reason_code": data.get("reason_code"),
            "rule": data.get("rule"),
            "risk_score": data.get("risk_score"),
            "risk_level": data.get("risk_level"),
            "evaluated_at": checked["at"] if checked else None,
        }
    )


async def intent_audit(request: web.Request) -> web.Response:
    principal = await caller(request)
    events = await request.app[SERVICE].audit_trail(principal, request.match_info["intent_id"])
    return json_response(
        [
            {
                "eventType": event["type"],
                "actor": event["actor"],
                "createdAt": event["at"],
                "metadata": event["data"],
                "seq": event["seq"],
                "hash": event["hash"],
            }
            for event in events
        ]
    )


async def _review(request: web.Request, intent_id: str, action: str) -> web.Response:
    principal = await caller(request)
    body = await read_json(request)
    expected = body.get("reviewHash", body.get("fingerprint"))
    if expected is not None and not isinstance(expected, str):
        raise invalid("reviewHash must be a string")
    service = request.app[SERVICE]
    if action == "approve":
        note = body.get("note")
        intent = await service.approve(principal, intent_id, note=note, expected_hash=expected)
        view = {
            "intentId": intent_id,
            "status": intent["status"],
            "approvedAt": intent.get("decided_at"),
        }
        if "approvals" in intent:
            view.update(approvals=intent["approvals"], required=intent["require_approvals"])
        return json_response(view)
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise invalid("reason must be a string")
    intent = await service.reject(principal, intent_id, reason=reason, expected_hash=expected)
    return json_response(
        {
            "intentId": intent_id,
            "status": intent["status"],
            "rejectedAt": intent["decided_at"],
            "reason": reason,
        }
    )


async def approve_intent(request: web.Request) -> web.Response:
    return await _review(request, request.match_info["intent_id"], "approve")


async def reject_intent(request: web.Request) -> web.Response:
    return await _review(request, request.match_info["intent_id"], "reject")


async def execute_intent(request: web.Request) -> web.Response:
    principal = await caller(request)
    order = await request.app[SERVICE].execute(principal, request.match_info["intent_id"])
    return json_response(order, status=201)


async def get_execution(request: web.Request) -> web.Response:
    principal = await caller(request)
    execution = await request.app[SERVICE].get_execution(
        principal, request.match_info["execution_id"]
    )
    return json_response(execution_view(execution))


async def report_execution(request: web.Request) -> web.Response:
    body = await read_json(request)
    execution = await request.app[SERVICE].report_execution(
        request.match_info["execution_id"], bearer(request), body
    )
    return json_response(execution_view(execution))


async def signing_key(request: web.Request) -> web.Response:
    signer = request.app[SERVICE].signer
    return json_response(
        {"key_id": signer.key_id, "alg": "Ed25519", "public_key_pem": signer.public_pem()}
    )


async def ledger(request: web.Request) -> web.Response:
    principal = await caller(request)
    if not principal.can_review:
        raise NotPermitted("forbidden", "reading the whole ledger needs a reviewer or admin key")
    try:
        after = int(request.query.get("after", "0"))
        limit = max(1, min(int(request.query.get("limit", "100")), 1000))
    except ValueError as exc:
        raise invalid("after and limit must be numbers") from exc
    events = await request.app[SERVICE].store.ledger_events(after_seq=after, limit=limit)
    return json_response({"events": events})


async def summary_metrics(request: web.Request) -> web.Response:
    principal = await caller(request)
    return json_response(await request.app[SERVICE].summary_metrics(principal))


async def prometheus(request: web.Request) -> web.Response:
    text = request.app[SERVICE].metrics.registry.render()
    return web.Response(
        text=text,
        content_type="text/plain",
        charset="utf-8",
        headers={"X-Content-Type-Options": "nosniff"},
    )


# -- legacy aliases (seed 004) -------------------------------------------------------------------


async def legacy_approve(request: web.Request) -> web.Response:
    body = await read_json(request)
    intent_id = body.get("intentId") or body.get("intent_id")
    if not isinstance(intent_id, str):
        raise invalid("intentId is required")
    return await _review_with_body(request, intent_id, "approve", body)


async def legacy_reject(request: web.Request) -> web.Response:
    body = await read_json(request)
    intent_id = body.get("intentId") or body.get("intent_id")
    if not isinstance(intent_id, str):
        raise invalid("intentId is required")
    return await _review_with_body(request, intent_id, "reject", body)


async def _review_with_body(
    request: web.Request, intent_id: str, action: str, body: dict[str, Any]
) -> web.Response:
    principal = await caller(request)
    service = request.app[SERVICE]
    expected = body.get("reviewHash")
    if action == "approve":
        intent = await service.approve(
            principal, intent_id, note=body.get("note"), expected_hash=expected
        )
        return json_response(
            {
                "intentId": intent_id,
                "status": intent["status"],
                "approvedAt": intent.get("decided_at"),
            }
        )
    intent = await service.reject(
        principal, intent_id, reason=body.get("reason"), expected_hash=expected
    )
    return json_response({"intentId": intent_id, "status": intent["status"]})


def server_options(request_header_timeout_s: float) -> dict[str, Any]:
    """``web.AppRunner`` keyword arguments that close slow and idle connections (slowloris).

    aiohttp 3.14 has no option named for a request-head timeout, but its keep-alive timer
    is one: it is armed when a connection opens and again when a response is finished, bytes
    arriving do not re-arm it, and when it fires it closes the connection only if the
    handler is still waiting for a complete request head. So a client that dribbles a
    partial head is closed ``request_header_timeout_s`` after connecting, an idle keep-alive
    connection the same time after its last response, and a request being handled (a long
    dashboard event stream) is never cut. No extra timer is needed.
    """
    return {"keepalive_timeout": request_header_timeout_s}


def build_app(
    service: GateService,
    *,
    body_limit: int,
    extra_routes: Callable[[web.Application], None] | None = None,
    health_extra: dict[str, Callable[[], Any]] | None = None,
) -> web.Application:
    from gate_proxy.api.openapi import openapi_handler

    app = web.Application(middlewares=[errors_middleware], client_max_size=body_limit)
    app[SERVICE] = service
    app[EXTRA] = {"health": health_extra or {}}
    r = app.router
    r.add_get("/health", health)
    r.add_get("/metrics", prometheus)
    r.add_get("/v1/openapi.json", openapi_handler)
    r.add_get("/v1/keys/signing", signing_key)
    r.add_post("/v1/agents/register", register_agent)
    r.add_get("/v1/agents", list_agents)
    r.add_get("/v1/agents/{agent_id}", get_agent)
    r.add_post("/v1/agents/{agent_id}/suspend", _agent_status_handler("suspended"))
    r.add_post("/v1/agents/{agent_id}/reactivate", _agent_status_handler("active"))
    r.add_post("/v1/agents/{agent_id}/revoke", _agent_status_handler("revoked"))
    r.add_post("/v1/intents", create_intent)
    r.add_get("/v1/intents", list_intents)
    r.add_get("/v1/intents/{intent_id}", get_intent)
    r.add_get("/v1/intents/{intent_id}/decision", intent_decision)
    r.add_get("/v1/intents/{intent_id}/audit", intent_audit)
    r.add_post("/v1/intents/{intent_id}/approve", approve_intent)
    r.add_post("/v1/intents/{intent_id}/reject", reject_intent)
    r.add_post("/v1/intents/{intent_id}/execute", execute_intent)
    r.add_get("/v1/executions/{execution_id}", get_execution)
    r.add_post("/v1/executions/{execution_id}/report", report_execution)
    r.add_get("/v1/ledger", ledger)
    r.add_get("/v1/metrics", summary_metrics)
    # Legacy aliases from seed 004.
    r.add_post("/v1/propose", create_intent)
    r.add_get("/v1/proposals", list_intents)
    r.add_post("/v1/approve", legacy_approve)
    r.add_post("/v1/reject", legacy_reject)
    if extra_routes is not None:
        extra_routes(app)
    return app
