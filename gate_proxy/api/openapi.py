"""The OpenAPI 3 document. A test checks that it lists exactly the routes the app serves."""

from typing import Any

from aiohttp import web

from gate_proxy import __version__

BEARER = [{"bearerAuth": []}]
ERROR = {"$ref": "#/components/responses/Error"}

# (method, path, summary, auth, request body schema name or None)
ROUTES: list[tuple[str, str, str, bool, str | None]] = [
    ("get", "/health", "Liveness and listener status", False, None),
    ("get", "/metrics", "Prometheus metrics (text format)", False, None),
    ("get", "/v1/openapi.json", "This document", False, None),
    (
        "get",
        "/v1/keys/signing",
        "Ed25519 public key for execution orders and checkpoints",
        False,
        None,
    ),
    (
        "post",
        "/v1/agents/register",
        "Register an agent (admin). The API key is shown once",
        True,
        "AgentRegistration",
    ),
    ("get", "/v1/agents", "List agents (reviewer, admin)", True, None),
    ("get", "/v1/agents/{agent_id}", "Get an agent (self, reviewer, admin)", True, None),
    ("post", "/v1/agents/{agent_id}/suspend", "Suspend an agent (admin)", True, None),
    (
        "post",
        "/v1/agents/{agent_id}/reactivate",
        "Reactivate a suspended agent (admin)",
        True,
        None,
    ),
    ("post", "/v1/agents/{agent_id}/revoke", "Revoke an agent for good (admin)", True, None),
    ("post", "/v1/intents", "Submit an intent; the policy decides at once", True, "Intent"),
    ("get", "/v1/intents", "List intents (agents see their own)", True, None),
    ("get", "/v1/intents/{intent_id}", "Get an intent", True, None),
    ("get", "/v1/intents/{intent_id}/decision", "The policy decision record", True, None),
    (
        "get",
        "/v1/intents/{intent_id}/audit",
        "The intent's audit trail (ledger events)",
        True,
        None,
    ),
    (
        "post",
        "/v1/intents/{intent_id}/approve",
        "Approve (reviewer, admin; never your own)",
        True,
        "Review",
    ),
    ("post", "/v1/intents/{intent_id}/reject", "Reject with a reason", True, "Review"),
    (
        "post",
        "/v1/intents/{intent_id}/execute",
        "Issue a signed one-time execution order",
        True,
        None,
    ),
    ("get", "/v1/executions/{execution_id}", "Execution status (no token)", True, None),
    (
        "post",
        "/v1/executions/{execution_id}/report",
        "Report an outcome once (gex_ token or key)",
        True,
        "Report",
    ),
    ("post", "/v1/webhooks/register", "Register a signed webhook for an intent", True, "Webhook"),
    ("get", "/v1/ledger", "Read ledger events in order (reviewer, admin)", True, None),
    ("get", "/v1/metrics", "Summary metrics (seed fields)", True, None),
    (
        "get",
        "/v1/proxy/ca.crt",
        "The gate's CA certificate (PEM) for clients to trust",
        False,
        None,
    ),
    (
        "get",
        "/v1/proxy/held",
        "Requests held open by X-Gate-Wait (scoped to the caller)",
        True,
        None,
    ),
    ("post", "/v1/propose", "Legacy alias of POST /v1/intents", True, "Intent"),
    ("get", "/v1/proposals", "Legacy alias of GET /v1/intents", True, None),
    ("get", "/v1/proposals/{intent_id}", "Legacy alias of GET /v1/intents/{id}", True, None),
    ("post", "/v1/deliver", "Legacy: gone (410), names the execution-order route", True, None),
    ("post", "/v1/approve", "Legacy: approve {intentId | proposalId}", True, "Review"),
    ("post", "/v1/reject", "Legacy: reject {intentId | proposalId, reason}", True, "Review"),
]

SCHEMAS: dict[str, Any] = {
    "AgentRegistration": {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string"},
            "role": {"type": "string", "enum": ["agent", "reviewer", "admin"]},
            "riskTier": {"type": "string", "enum": ["standard", "elevated", "restricted"]},
            "owner": {"type": "string"},
            "framework": {"type": "string"},
            "environment": {"type": "string"},
            "allowed_policies": {"type": "array", "items": {"type": "string"}},
            "allowed_destinations": {"type": "array", "items": {"type": "string"}},
            "metadata": {"type": "object"},
        },
    },
    "Intent": {
        "type": "object",
        "required": ["destination", "policy"],
        "properties": {
            "destination": {"type": "string"},
            "policy": {"type": "string"},
            "payload": {"oneOf": [{"type": "string"}, {"type": "object"}, {"type": "array"}]},
            "recordCount": {"type": "integer", "minimum": 0},
            "estimated_value_usd": {"type": "number"},
            "sensitivity_tags": {"type": "array", "items": {"type": "string"}},
            "idempotency_key": {"type": "string"},
            "on_behalf_of": {"type": "string"},
            "expiresIn": {"type": "string", "example": "30m"},
            "metadata": {"type": "object"},
        },
    },
    "Review": {
        "type": "object",
        "properties": {
            "intentId": {"type": "string", "description": "legacy routes only"},
            "reason": {"type": "string"},
            "note": {"type": "string"},
            "reviewHash": {"type": "string", "description": "binds the vote to what was shown"},
        },
    },
    "Report": {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"type": "string", "enum": ["succeeded", "failed"]},
            "report": {"type": "object"},
        },
    },
    "Webhook": {
        "type": "object",
        "required": ["intentId", "url"],
        "properties": {
            "intentId": {"type": "string"},
            "url": {"type": "string", "format": "uri"},
            "secret": {"type": "string", "minLength": 16},
        },
    },
    "Error": {
        "type": "object",
        "required": ["error", "message"],
        "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
    },
}


def build_openapi() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for method, path, summary, auth, body in ROUTES:
        operation: dict[str, Any] = {
            "summary": summary,
            "responses": {"200": {"description": "OK"}, "4XX": ERROR, "5XX": ERROR},
        }
        if auth:
            operation["security"] = BEARER
        if body:
            operation["requestBody"] = {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}
                },
            }
        params = [segment[1:-1] for segment in path.split("/") if segment.startswith("{")]
        if params:
            operation["parameters"] = [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in params
            ]
        paths.setdefault(path, {})[method] = operation
    return {
        "openapi": "3.0.3",
        "info": {"title": "Gate Proxy control API", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "responses": {
                "Error": {
                    "description": "Error",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                }
            },
        },
    }


async def openapi_handler(request: web.Request) -> web.Response:
    return web.json_response(build_openapi())
