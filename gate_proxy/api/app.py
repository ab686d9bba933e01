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
    header_text,
    json_response,
    read_json,
)
from gate_proxy.api.inputs import (
    MAX_SEQ,
    bulk_approval_from_body,
    legacy_intent_id,
    proposal_from_body,
    query_int,
    registration_from_body,
    review_from_body,
    without_nulls,
)
from gate_proxy.api.views import (
    audit_view,
    bulk_approval_view,
    decision_record,
    decision_view,
    execution_view,
    intent_view,
)
from gate_proxy.errors import NotFound, NotPermitted, unauthenticated
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
    if not principal.is_admin:  # who may, before what they sent (403 before 400)
        raise NotPermitted("forbidden", "registering agents needs an admin key")
    body = registration_from_body(await read_json(request))
    result = await request.app[USECASES].agents.register(principal, body)
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
    header_key = header_text(request, "Idempotency-Key")  # Stripe's convention
    if proposal.idempotency_key is None and header_key is not None:
        proposal.idempotency_key = header_key
    started = time.perf_counter()
    outcome = await request.app[USECASES].proposals.propose(principal, proposal)
    log_verdict(principal, proposal, outcome, started)
    return json_response(decision_view(outcome), status=201)


async def list_intents(request: web.Request) -> web.Response:
    principal = await caller(request)
    limit = query_int(request, "limit", 50, lowest=1, highest=500, clamp=True)
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


async def _review(
    request: web.Request, principal: Principal, action: str, intent_id: str, body: dict[str, Any]
) -> web.Response:
    """Approve or reject, from the canonical route or a legacy one (same answers)."""
    review = request.app[USECASES].review
    vote = review_from_body(body)
    if action == "approve":
        approval = await review.approve(
            principal, intent_id, note=vote.note, expected_hash=vote.review_hash
        )
        view: dict[str, Any] = {
            "intentId": intent_id,
            "status": approval.intent.status,
            "approvedAt": approval.intent.decided_at,
        }
        if approval.approvals is not None:
            view.update(approvals=approval.approvals, required=approval.intent.require_approvals)
        return json_response(view)
    intent = await review.reject(
        principal, intent_id, reason=vote.reason, expected_hash=vote.review_hash
    )
    return json_response(
        {
            "intentId": intent_id,
            "status": intent.status,
            "rejectedAt": intent.decided_at,
            "reason": vote.reason,
        }
    )


def review_handler(action: str, *, legacy: bool = False) -> Handler:
    """POST /v1/intents/{id}/<action>, or seed 004's /v1/<action> naming the intent in the
    body."""

    async def handler(request: web.Request) -> web.Response:
        # Who is asking, then whether their role may ever do this, then what they sent.
        principal = await caller(request)
        if not principal.can_review:
            raise NotPermitted("forbidden", "approving or rejecting needs a reviewer or admin key")
        body = await read_json(request)
        intent_id = legacy_intent_id(body) if legacy else request.match_info["intent_id"]
        return await _review(request, principal, action, intent_id, body)

    return handler


async def bulk_approve(request: web.Request) -> web.Response:
    """POST /v1/intents/approve: approve a list of intents, each answered on its own."""
    principal = await caller(request)
    if not principal.can_review:  # who may, before what they sent (403 before 400/413)
        raise NotPermitted("forbidden", "approving or rejecting needs a reviewer or admin key")
    bulk = bulk_approval_from_body(await read_json(request))
    outcomes = await request.app[USECASES].review.approve_many(
        principal, bulk.items, note=bulk.note
    )
    return json_response(bulk_approval_view(outcomes))


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
    token = bearer(request)
    # A key is checked before anything else (401 before 404 or 400); an execution token
    # (gex_) can only be checked against its execution, which the use case does.
    if token is None:
        raise unauthenticated("an execution token (gex_...) or an API key is required")
    if not token.startswith("gex_"):
        await caller(request)
    body = without_nulls(await read_json(request))
    execution = await request.app[USECASES].orders.report(
        request.match_info["execution_id"], token, body
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
    after = query_int(request, "after", 0, lowest=0, highest=MAX_SEQ, clamp=False)
    limit = query_int(request, "limit", 100, lowest=1, highest=1000, clamp=True)
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
    # Not "register": GET /v1/agents/register is that route's 405 (Allow: POST), not a
    # lookup of an agent named "register" (which its id still finds).
    r.add_get("/v1/agents/{agent_id:(?!register$)[^{}/]+}", get_agent)
    r.add_post("/v1/agents/{agent_id}/suspend", _agent_status_handler("suspended"))
    r.add_post("/v1/agents/{agent_id}/reactivate", _agent_status_handler("active"))
    r.add_post("/v1/agents/{agent_id}/revoke", _agent_status_handler("revoked"))
    r.add_post("/v1/intents", create_intent)
    r.add_get("/v1/intents", list_intents)
    r.add_post("/v1/intents/approve", bulk_approve)
    # Not "approve": GET /v1/intents/approve is the bulk route's 405 (Allow: POST), not a
    # lookup of an intent with that id (ids are int_...).
    r.add_get("/v1/intents/{intent_id:(?!approve$)[^{}/]+}", get_intent)
    r.add_get("/v1/intents/{intent_id}/decision", intent_decision)
    r.add_get("/v1/intents/{intent_id}/audit", intent_audit)
    r.add_post("/v1/intents/{intent_id}/approve", review_handler("approve"))
    r.add_post("/v1/intents/{intent_id}/reject", review_handler("reject"))
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
    r.add_post("/v1/approve", review_handler("approve", legacy=True))
    r.add_post("/v1/reject", review_handler("reject", legacy=True))
    if extra_routes is not None:
        extra_routes(app)
    return app
