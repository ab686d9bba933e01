"""Every control API operation: its route, who may call it, what it takes and answers.

A test checks this table against the routes the app really serves (tests/test_api.py) and
the fuzz test checks every answer against it (tests/test_api_contract.py). Routes outside
/v1 other than /health and /metrics (the dashboard's HTML, cookie and event-stream routes)
are not part of this API and are not listed.
"""

from typing import NamedTuple

# Every call with a key can be refused for the key itself: 401 unknown or missing, 403 the
# agent behind it is suspended or revoked (or the role may not do this).
AUTH = (401, 403)
BODY = (400, 413)


class Route(NamedTuple):
    method: str
    path: str
    summary: str
    auth: bool
    body: str | None = None  # request schema (components.schemas)
    status: int = 200  # the success status
    answer: str | None = None  # its schema (components.schemas); None: not JSON
    errors: tuple[int, ...] = ()  # statuses answered with an Error body
    params: tuple[str, ...] = ()  # components.parameters
    media: str = "application/json"  # the success answer's media type
    tag: str = "intents"
    name: str | None = None  # operationId, when the one made from the path would clash


ROUTES: list[Route] = [
    Route("get", "/health", "Liveness and listener status", False, answer="Health", tag="gate"),
    Route(
        "get", "/metrics", "Prometheus metrics (text exposition format)", False,
        media="text/plain", tag="gate", name="getPrometheusMetrics",
    ),
    Route("get", "/v1/openapi.json", "This document", False, answer=None, tag="gate"),
    Route(
        "get", "/v1/keys/signing", "Ed25519 public key for execution orders and checkpoints",
        False, answer="SigningKey", tag="gate",
    ),
    Route(
        "post", "/v1/agents/register", "Register an agent (admin). The API key is shown once",
        True, "AgentRegistration", 201, "AgentCreated", (*BODY, *AUTH, 409), tag="agents",
    ),
    Route(
        "get", "/v1/agents", "List agents (reviewer, admin)", True,
        answer="AgentList", errors=AUTH, tag="agents",
    ),
    Route(
        "get", "/v1/agents/{agent_id}", "Get an agent by id or name (itself, reviewer, admin)",
        True, answer="Agent", errors=(*AUTH, 404), tag="agents",
    ),
    *(
        Route(
            "post", f"/v1/agents/{{agent_id}}/{action}", summary, True,
            answer="Agent", errors=(*AUTH, 404, 409), tag="agents",
        )
        for action, summary in (
            ("suspend", "Suspend an agent (admin)"),
            ("reactivate", "Reactivate a suspended agent (admin)"),
            ("revoke", "Revoke an agent for good (admin)"),
        )
    ),
    Route(
        "post", "/v1/intents", "Submit an intent; the policy decides at once", True,
        "IntentRequest", 201, "Decision", (*BODY, *AUTH, 409, 503), ("IdempotencyKey",),
    ),
    Route(
        "get", "/v1/intents", "List intents, newest first (agents see their own)", True,
        answer="IntentList", errors=(400, *AUTH), params=("IntentStatus", "IntentLimit"),
    ),
    Route(
        "get", "/v1/intents/{intent_id}", "An intent with its decision and audit trail", True,
        answer="IntentRecord", errors=(*AUTH, 404),
    ),
    Route(
        "get", "/v1/intents/{intent_id}/decision", "The policy decision record", True,
        answer="DecisionRecord", errors=(*AUTH, 404),
    ),
    Route(
        "get", "/v1/intents/{intent_id}/audit", "The intent's audit trail (ledger events)",
        True, answer="AuditTrail", errors=(*AUTH, 404),
    ),
    Route(
        "post", "/v1/intents/{intent_id}/approve", "Approve (reviewer, admin; never your own)",
        True, "Review", answer="ReviewResult", errors=(*BODY, *AUTH, 404, 409, 410),
    ),
    Route(
        "post", "/v1/intents/approve",
        "Approve a list of intents (reviewer, admin), each answered on its own; at most "
        "1000 (413 past it)", True, "BulkApproval", answer="BulkApprovalResult",
        errors=(*BODY, *AUTH),
    ),
    Route(
        "post", "/v1/intents/{intent_id}/reject", "Reject, with a reason", True, "Review",
        answer="ReviewResult", errors=(*BODY, *AUTH, 404, 409, 410),
    ),
    Route(
        "post", "/v1/intents/{intent_id}/execute", "Issue a signed one-time execution order",
        True, status=201, answer="ExecutionOrder", errors=(*AUTH, 404, 409),
        tag="executions",
    ),
    Route(
        "get", "/v1/executions/{execution_id}", "Execution status (never the token)", True,
        answer="Execution", errors=(*AUTH, 404), tag="executions",
    ),
    Route(
        "post", "/v1/executions/{execution_id}/report",
        "Report the outcome once (the gex_ token, the owning agent's key or an admin key)",
        True, "Report", answer="Execution", errors=(*BODY, *AUTH, 404, 409, 410),
        tag="executions",
    ),
    Route(
        "post", "/v1/webhooks/register", "Register a signed webhook for an intent", True,
        "WebhookRegistration", 201, "WebhookCreated", (*BODY, *AUTH, 404), tag="webhooks",
    ),
    Route(
        "get", "/v1/ledger", "Ledger events in order (reviewer, admin)", True,
        answer="LedgerPage", errors=(400, *AUTH), params=("LedgerAfter", "LedgerLimit"),
        tag="ledger",
    ),
    Route(
        "get", "/v1/metrics", "Summary counts (seed 004's fields)", True,
        answer="Summary", errors=AUTH, tag="gate",
    ),
    Route(
        "get", "/v1/proxy/ca.crt", "The gate's CA certificate (PEM) for clients to trust",
        False, errors=(404,), media="application/x-pem-file", tag="proxy",
    ),
    Route(
        "get", "/v1/proxy/held", "Requests held open by X-Gate-Wait (the caller's own)", True,
        answer="HeldList", errors=AUTH, tag="proxy",
    ),
    Route(
        "post", "/v1/propose", "Legacy alias of POST /v1/intents", True, "IntentRequest",
        201, "Decision", (*BODY, *AUTH, 409, 503), ("IdempotencyKey",), tag="legacy",
    ),
    Route(
        "get", "/v1/proposals", "Legacy alias of GET /v1/intents", True,
        answer="IntentList", errors=(400, *AUTH), params=("IntentStatus", "IntentLimit"),
        tag="legacy",
    ),
    Route(
        "get", "/v1/proposals/{intent_id}", "Legacy alias of GET /v1/intents/{intent_id}",
        True, answer="IntentRecord", errors=(*AUTH, 404), tag="legacy",
    ),
    Route(
        "post", "/v1/deliver",
        "Legacy: gone. Answers 410 naming POST /v1/intents/{intentId}/execute", True,
        status=410, answer="Gone", errors=AUTH, tag="legacy",
    ),
    Route(
        "post", "/v1/approve", "Legacy: approve the intent named in the body", True,
        "LegacyReview", answer="ReviewResult", errors=(*BODY, *AUTH, 404, 409, 410),
        tag="legacy",
    ),
    Route(
        "post", "/v1/reject", "Legacy: reject the intent named in the body", True,
        "LegacyReview", answer="ReviewResult", errors=(*BODY, *AUTH, 404, 409, 410),
        tag="legacy",
    ),
]  # fmt: skip
