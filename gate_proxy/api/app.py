"""Control API routes. Thin: parse and authorise, call a use case, shape the answer."""

import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from gate_proxy.api.http import (
    EXTRA,
    USECASES,
    Handler,
    bearer,
    caller,
    errors_middleware,
    json_response,
    read_json,
)
from gate_proxy.api.inputs import proposal_from_body
from gate_proxy.api.views import decision_view, execution_view, intent_view
from gate_proxy.errors import NotFound, NotPermitted, invalid
from gate_proxy.logs import log_decision
from gate_proxy.principal import Principal
from gate_proxy.usecases import Outcome, Proposal, UseCases
from gate_proxy.usecases.agents import public_agent


def log_verdict(principal: Principal, proposal: Proposal, outcome: Outcome, started: float) -> None:
    """The API's canonical decision line (the proxy writes its own, one per request)."""
    intent = outcome.intent
    log_decision(
        decision=outcome.verdict.status,
        agent=principal.name,
        destination=proposal.destination,
        policy=proposal.policy,
        reason=outcome.verdict.reason_code,
        intent_id=intent.id if intent is not None else None,
        latency_ms=(time.perf_counter() - started) * 1000,
        source="api",
        risk=outcome.verdict.risk_level,
    )


# -- handlers ----------------------------------------------------------------------------------


async def health(request: web.Request) -> web.Response:
    extra = request.app[EXTRA]
    return json_response({"status": "ok", **{k: v() for k, v in extra.get("health", {}).items()}})


async def register_agent(request: web.Request) -> web.Response:
    principal = await caller(request)
    result = await request.app[USECASES].agents.register(principal, await read_json(request))
    return json_response(result, status=201)


async def list_agents(request: web.Request) -> web.Response:
    principal = await caller(request)
    if not principal.can_review:
        raise NotPermitted("forbidden", "listing agents needs a reviewer or admin key")
    agents = await request.app[USECASES].store.list_agents()
    return json_response({"agents": [public_agent(agent) for agent in agents]})


async def get_agent(request: web.Request) -> web.Response:
    principal = await caller(request)
    agent = await request.app[USECASES].agents.find(request.match_info["agent_id"])
    if not principal.can_see(agent["id"]):
        raise NotFound("not_found", "agent not found")
    return json_response(public_agent(agent))


def _agent_status_handler(status: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        principal = await caller(request)
        agent = await request.app[USECASES].agents.set_status(
            principal, request.match_info["agent_id"], status
        )
        return json_response(agent)

    return handler


async def create_intent(request: web.Request) -> web.Response:
    principal = await caller(request)
    proposal = proposal_from_body(await read_json(request))
    if proposal.idempotency_key is None and request.headers.get("Idempotency-Key"):
        proposal.idempotency_key = request.headers["Idempotency-Key"]  # Stripe's convention
    started = time.perf_counter()
    outcome = await request.app[USECASES].proposals.propose(principal, proposal)
    log_verdict(principal, proposal, outcome, started)
    return json_response(decision_view(outcome), status=201)


async def list_intents(request: web.Request) -> web.Response:
    principal = await caller(request)
    try:
        limit = max(1, min(int(request.query.get("limit", "50")), 500))
    except ValueError as exc:
        raise invalid("limit must be a number") from exc
    intents = await request.app[USECASES].review.list_intents(
        principal, request.query.get("status"), limit
    )
    return json_response({"intents": [intent_view(intent) for intent in intents]})


async def get_intent(request: web.Request) -> web.Response:
    """The intent, its decision record and its audit trail (the seed's `verify`)."""
    principal = await caller(request)
    usecases = request.app[USECASES]
    intent = await usecases.review.get_intent(principal, request.match_info["intent_id"])
    events = await usecases.store.ledger_events(intent_id=intent.id)
    view = intent_view(intent)
    executions = await usecases.store.list_executions(intent.id)
    view["executions"] = [execution_view(execution) for execution in executions]
    view["decision"] = decision_record(intent.id, events)
    view["audit"] = [audit_view(event) for event in events]
    return json_response(view)


def decision_record(intent_id: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    checked = next((e for e in events if e["type"] == "policy_checked"), None)
    data = checked["data"] if checked else {}
    return {
        "intent_id": intent_id,
        "decision": data.get("result"),
        "reason_code": data.get("reason_code"),
        "rule": data.get("rule"),
        "risk_score": data.get("risk_score"),
        "risk_level": data.get("risk_level"),
        "evaluated_at": checked["at"] if checked else None,
    }


def audit_view(event: dict[str, Any]) -> dict[str, Any]:
    return {
        "eventType": event["type"],
        "actor": event["actor"],
        "createdAt": event["at"],
        "metadata": event["data"],
        "seq": event["seq"],
        "hash": event["hash"],
    }


async def intent_decision(request: web.Request) -> web.Response:
    principal = await caller(request)
    usecases = request.app[USECASES]
    intent = await usecases.review.get_intent(principal, request.match_info["intent_id"])
    events = await usecases.store.ledger_events(intent_id=intent.id)
    return json_response(decision_record(intent.id, events))


async def intent_audit(request: web.Request) -> web.Response:
    principal = await caller(request)
    events = await request.app[USECASES].review.audit_trail(
        principal, request.match_info["intent_id"]
    )
    return json_response([audit_view(event) for event in events])


async def _review(request: web.Request, intent_id: str, action: str) -> web.Response:
    principal = await caller(request)
    body = await read_json(request)
    expected = body.get("reviewHash", body.get("fingerprint"))
    if expected is not None and not isinstance(expected, str):
        raise invalid("reviewHash must be a string")
    review = request.app[USECASES].review
    if action == "approve":
        note = body.get("note")
        approval = await review.approve(principal, intent_id, note=note, expected_hash=expected)
        view = {
            "intentId": intent_id,
            "status": approval.intent.status,
            "approvedAt": approval.intent.decided_at,
        }
        if approval.approvals is not None:
            view.update(approvals=approval.approvals, required=approval.intent.require_approvals)
        return json_response(view)
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise invalid("reason must be a string")
    intent = await review.reject(principal, intent_id, reason=reason, expected_hash=expected)
    return json_response(
        {
            "intentId": intent_id,
            "status": intent.status,
            "rejectedAt": intent.decided_at,
            "reason": reason,
        }
    )


async def approve_intent(request: web.Request) -> web.Response:
    return await _review(request, request.match_info["intent_id"], "approve")


async def reject_intent(request: web.Request) -> web.Response:
    return await _review(request, request.match_info["intent_id"], "reject")


async def execute_intent(request: web.Request) -> web.Response:
    principal = await caller(request)
    order = await request.app[USECASES].orders.execute(principal, request.match_info["intent_id"])
    return json_response(order, status=201)


async def get_execution(request: web.Request) -> web.Response:
    principal = await caller(request)
    execution = await request.app[USECASES].orders.get(
        principal, request.match_info["execution_id"]
    )
    return json_response(execution_view(execution))


async def report_execution(request: web.Request) -> web.Response:
    body = await read_json(request)
    execution = await request.app[USECASES].orders.report(
        request.match_info["execution_id"], bearer(request), body
    )
    return json_response(execution_view(execution))


async def signing_key(request: web.Request) -> web.Response:
    signer = request.app[USECASES].orders.signer
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
    events = await request.app[USECASES].store.ledger_events(after_seq=after, limit=limit)
    return json_response({"events": events})


async def summary_metrics(request: web.Request) -> web.Response:
    principal = await caller(request)
    return json_response(await request.app[USECASES].review.summary(principal))


async def prometheus(request: web.Request) -> web.Response:
    text = request.app[USECASES].metrics.registry.render()
    return web.Response(
        text=text,
        content_type="text/plain",
        charset="utf-8",
        headers={"X-Content-Type-Options": "nosniff"},
    )


# -- legacy aliases (seed 004) -------------------------------------------------------------------


def _legacy_intent_id(body: dict[str, Any]) -> str:
    # The seed's SDKs name it proposalId (V1) or intentId.
    intent_id = body.get("intentId") or body.get("proposalId") or body.get("intent_id")
    if not isinstance(intent_id, str) or not intent_id:
        raise invalid("intentId (or proposalId) is required")
    return intent_id


async def legacy_approve(request: web.Request) -> web.Response:
    await caller(request)  # who is asking comes before what they sent (401 before 400)
    body = await read_json(request)
    return await _review_with_body(request, _legacy_intent_id(body), "approve", body)


async def legacy_reject(request: web.Request) -> web.Response:
    await caller(request)
    body = await read_json(request)
    return await _review_with_body(request, _legacy_intent_id(body), "reject", body)


async def legacy_deliver(request: web.Request) -> web.Response:
    """Seed V1's delivery step is the execution order now: say where, don't guess."""
    await caller(request)
    return json_response(
        {
            "error": "gone",
            "message": "POST /v1/deliver was replaced by POST /v1/intents/{intentId}/execute "
            "(a signed one-time execution order) and POST /v1/executions/{executionId}/report",
            "canonical": "/v1/intents/{intentId}/execute",
        },
        status=410,
    )


async def _review_with_body(
    request: web.Request, intent_id: str, action: str, body: dict[str, Any]
) -> web.Response:
    principal = await caller(request)
    review = request.app[USECASES].review
    expected = body.get("reviewHash")
    if action == "approve":
        approval = await review.approve(
            principal, intent_id, note=body.get("note"), expected_hash=expected
        )
        return json_response(
            {
                "intentId": intent_id,
                "status": approval.intent.status,
                "approvedAt": approval.intent.decided_at,
            }
        )
    intent = await review.reject(
        principal, intent_id, reason=body.get("reason"), expected_hash=expected
    )
    return json_response({"intentId": intent_id, "status": intent.status})


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
    usecases: UseCases,
    *,
    body_limit: int,
    extra_routes: Callable[[web.Application], None] | None = None,
    health_extra: dict[str, Callable[[], Any]] | None = None,
) -> web.Application:
    from gate_proxy.api.openapi import openapi_handler

    app = web.Application(middlewares=[errors_middleware], client_max_size=body_limit)
    app[USECASES] = usecases
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
    r.add_get("/v1/proposals/{intent_id}", get_intent)
    r.add_post("/v1/deliver", legacy_deliver)
    r.add_post("/v1/approve", legacy_approve)
    r.add_post("/v1/reject", legacy_reject)
    if extra_routes is not None:
        extra_routes(app)
    return app
