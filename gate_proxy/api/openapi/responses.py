"""What the control API answers: one schema per response body (JSON Schema 2020-12).

Each mirrors the view that builds it (gate_proxy/api/views.py, usecases.agents.public_agent,
usecases.orders, webhooks, the proxy's held list). Objects list every field the view
writes as required; they stay open to new fields (additionalProperties is not false), so
adding a field is not a breaking change, while removing or retyping one fails the fuzz test.
"""

from typing import Any

from gate_proxy.core.intents import Status
from gate_proxy.principal import Role
from gate_proxy.usecases.agents import RISK_TIERS

STRING = {"type": "string"}
TEXT_OR_NULL = {"type": ["string", "null"]}
INTEGER = {"type": "integer"}
NUMBER = {"type": "number"}
TIMESTAMP = {"type": "string", "format": "date-time"}
TIMESTAMP_OR_NULL = {"type": ["string", "null"], "format": "date-time"}
OBJECT = {"type": "object"}
STRINGS_OR_NULL = {"type": ["array", "null"], "items": STRING}
INTENT_STATUS = {"type": "string", "enum": [status.value for status in Status]}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def record(properties: dict[str, Any], *, optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """An object whose properties are all required except ``optional``."""
    required = [name for name in properties if name not in optional]
    return {"type": "object", "required": required, "properties": properties}


def array_of(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": schema}


ERROR = {
    "type": "object",
    "required": ["error", "message"],
    "description": "Every refusal: a stable machine code and a message for humans; some "
    "carry more fields (intentStatus on a 409, egress on a refused webhook target, ...)",
    "properties": {"error": STRING, "message": STRING},
}

GONE = {
    "allOf": [
        ref("Error"),
        record({"canonical": {**STRING, "description": "The route that replaced this one"}}),
    ]
}

AGENT = record(
    {
        "agentId": STRING,
        "name": STRING,
        "role": {"type": "string", "enum": [role.value for role in Role]},
        "status": {"type": "string", "enum": ["active", "suspended", "revoked"]},
        "riskTier": {"type": "string", "enum": list(RISK_TIERS)},
        "owner": TEXT_OR_NULL,
        "framework": TEXT_OR_NULL,
        "environment": TEXT_OR_NULL,
        "allowed_policies": STRINGS_OR_NULL,
        "allowed_destinations": STRINGS_OR_NULL,
        "metadata": OBJECT,
        "keyPrefix": {**STRING, "description": "The key's first characters, to tell keys apart"},
        "createdAt": TIMESTAMP,
    }
)

AGENT_CREATED = {
    "allOf": [
        ref("Agent"),
        record({"apiKey": {**STRING, "description": "Shown once; only its hash is stored"}}),
    ]
}

DECISION = record(
    {
        "intentId": STRING,
        "status": INTENT_STATUS,
        "risk_score": NUMBER,
        "risk_level": STRING,
        "reason_code": TEXT_OR_NULL,
        "blockReason": TEXT_OR_NULL,
        "expiresAt": {**TIMESTAMP_OR_NULL, "description": "Review (or execution) deadline"},
        "destination": STRING,
        "policy": STRING,
        "reviewHash": {**STRING, "description": "What a reviewer approves (send it back)"},
        "duplicateOf": {**STRING, "description": "duplicate_blocked: the original intent"},
    },
    optional=("duplicateOf",),
)

PAYLOAD_SUMMARY = record(
    {
        "type": TEXT_OR_NULL,
        "size": INTEGER,
        "sha256": TEXT_OR_NULL,
        "preview": {**TEXT_OR_NULL, "description": "Redacted when stored"},
    }
)

INTENT = record(
    {
        "intentId": STRING,
        "status": INTENT_STATUS,
        "agentId": STRING,
        "agent": STRING,
        "on_behalf_of": TEXT_OR_NULL,
        "source": {"type": "string", "enum": ["api", "proxy"]},
        "destination": STRING,
        "policy": STRING,
        "reason_code": TEXT_OR_NULL,
        "blockReason": TEXT_OR_NULL,
        "risk_score": NUMBER,
        "risk_level": STRING,
        "recordCount": {"type": ["integer", "null"]},
        "estimated_value_usd": {"type": ["number", "null"]},
        "sensitivity_tags": array_of(STRING),
        "idempotency_key": TEXT_OR_NULL,
        "duplicateOf": TEXT_OR_NULL,
        "environment": TEXT_OR_NULL,
        "payload": PAYLOAD_SUMMARY,
        "method": {**TEXT_OR_NULL, "description": "Proxied requests only"},
        "url": {**TEXT_OR_NULL, "description": "Proxied requests only"},
        "tool": {**TEXT_OR_NULL, "description": "The MCP tool of a proxied tools/call"},
        "reviewHash": STRING,
        "requireApprovals": INTEGER,
        "shadow": {"type": "boolean"},
        "metadata": OBJECT,
        "createdAt": TIMESTAMP,
        "expiresAt": TIMESTAMP_OR_NULL,
        "decidedAt": TIMESTAMP_OR_NULL,
        "decidedBy": TEXT_OR_NULL,
        "note": TEXT_OR_NULL,
        "approvals": INTEGER,
    },
    optional=("approvals",),
)

DECISION_RECORD = record(
    {
        "intent_id": STRING,
        "decision": {**TEXT_OR_NULL, "description": "The policy's verdict when proposed"},
        "reason_code": TEXT_OR_NULL,
        "rule": TEXT_OR_NULL,
        "risk_score": {"type": ["number", "null"]},
        "risk_level": TEXT_OR_NULL,
        "evaluated_at": TIMESTAMP_OR_NULL,
    }
)

AUDIT_EVENT = record(
    {
        "eventType": STRING,
        "actor": TEXT_OR_NULL,
        "createdAt": TIMESTAMP,
        "metadata": OBJECT,
        "seq": INTEGER,
        "hash": STRING,
    }
)

EXECUTION = record(
    {
        "executionId": STRING,
        "intent_id": STRING,
        "mode": STRING,
        "status": {"type": "string", "enum": ["pending", "succeeded", "failed", "expired"]},
        "worker_report": {"description": "What the worker reported (any JSON value)"},
        "created_at": TIMESTAMP,
        "expires_at": TIMESTAMP,
        "completed_at": TIMESTAMP_OR_NULL,
    }
)

INTENT_RECORD = {
    "description": "The seed's `verify`: the intent, its decision record, its audit trail",
    "allOf": [
        ref("Intent"),
        record(
            {
                "executions": array_of(ref("Execution")),
                "decision": ref("DecisionRecord"),
                "audit": array_of(ref("AuditEvent")),
            }
        ),
    ],
}

SIGNED_ORDER = record(
    {
        "executionId": STRING,
        "intent_id": STRING,
        "agent_id": STRING,
        "destination": STRING,
        "policy": STRING,
        "payload_sha256": TEXT_OR_NULL,
        "mode": STRING,
        "issued_at": TIMESTAMP,
        "expires_at": TIMESTAMP,
        "key_id": STRING,
    }
)

EXECUTION_ORDER = record(
    {
        "executionId": STRING,
        "execution_token": {**STRING, "description": "gex_...: one report, shown once"},
        "intent_id": STRING,
        "expires_at": TIMESTAMP,
        "mode": STRING,
        "order": ref("SignedOrder"),
        "signature": {**STRING, "description": "Ed25519 over the order's canonical JSON"},
        "signature_alg": {"type": "string", "enum": ["Ed25519"]},
        "key_id": STRING,
    }
)

REVIEW_RESULT = record(
    {
        "intentId": STRING,
        "status": INTENT_STATUS,
        "approvedAt": {**TIMESTAMP_OR_NULL, "description": "Approve: null while short of N"},
        "approvals": {**INTEGER, "description": "N-of-M: distinct approvals so far"},
        "required": {**INTEGER, "description": "N-of-M: approvals needed"},
        "rejectedAt": TIMESTAMP_OR_NULL,
        "reason": TEXT_OR_NULL,
    },
    optional=("approvedAt", "approvals", "required", "rejectedAt", "reason"),
)

BULK_APPROVED = record(
    {
        "intentId": STRING,
        "result": {"type": "string", "const": "approved"},
        "status": INTENT_STATUS,
        "approvedAt": TIMESTAMP,
    }
)
BULK_SHORT_OF_QUORUM = record(
    {
        "intentId": STRING,
        "result": {"type": "string", "const": "pending_more_votes"},
        "status": INTENT_STATUS,
        "approvals": {**INTEGER, "description": "N-of-M: distinct approvals so far"},
        "required": {**INTEGER, "description": "N-of-M: approvals needed"},
    }
)
BULK_REFUSED = {
    "allOf": [
        ref("Error"),
        record(
            {
                "intentId": STRING,
                "result": {"type": "string", "const": "refused"},
            }
        ),
    ],
    "description": "The refusal a single approve would answer (error, message and its "
    "extra fields, e.g. intentStatus), or duplicate_in_request for a repeated intent",
}
BULK_APPROVAL_RESULT = record(
    {
        "results": {
            **array_of({"oneOf": [BULK_APPROVED, BULK_SHORT_OF_QUORUM, BULK_REFUSED]}),
            "description": "One per intent named, in the order given",
        },
        "approved": INTEGER,
        "pendingMoreVotes": INTEGER,
        "refused": INTEGER,
    }
)

LEDGER_EVENT = record(
    {
        "seq": INTEGER,
        "id": STRING,
        "type": STRING,
        "intent_id": TEXT_OR_NULL,
        "agent_id": TEXT_OR_NULL,
        "actor": TEXT_OR_NULL,
        "at": TIMESTAMP,
        "data": OBJECT,
        "prev": {**STRING, "description": "The previous event's hash"},
        "hash": STRING,
    }
)

HELD_REQUEST = record(
    {
        "intentId": STRING,
        "agentId": STRING,
        "agent": STRING,
        "destination": STRING,
        "method": STRING,
        "url": STRING,
        "heldSince": TIMESTAMP,
        "releaseAt": TIMESTAMP,
    }
)

HEALTH = {
    **record({"status": {"type": "string", "enum": ["ok"]}}),
    "description": "More fields say how the gate is (the number of policies loaded, ...)",
}

SUMMARY = record(
    {
        **{
            f"actions_{name}": INTEGER
            for name in (
                "attempted",
                "blocked",
                "pending",
                "approved",
                "succeeded",
                "failed",
                "duplicate",
                "expired",
            )
        },
        "avg_approval_latency_ms": {"type": ["integer", "null"]},
    }
)

RESPONSE_SCHEMAS: dict[str, dict[str, Any]] = {
    "Error": ERROR,
    "Gone": GONE,
    "Health": HEALTH,
    "SigningKey": record(
        {"key_id": STRING, "alg": {"type": "string", "enum": ["Ed25519"]}, "public_key_pem": STRING}
    ),
    "Agent": AGENT,
    "AgentCreated": AGENT_CREATED,
    "AgentList": record({"agents": array_of(ref("Agent"))}),
    "Decision": DECISION,
    "Intent": INTENT,
    "IntentList": record({"intents": array_of(ref("Intent"))}),
    "IntentRecord": INTENT_RECORD,
    "DecisionRecord": DECISION_RECORD,
    "AuditEvent": AUDIT_EVENT,
    "AuditTrail": array_of(ref("AuditEvent")),
    "ReviewResult": REVIEW_RESULT,
    "BulkApprovalResult": BULK_APPROVAL_RESULT,
    "SignedOrder": SIGNED_ORDER,
    "ExecutionOrder": EXECUTION_ORDER,
    "Execution": EXECUTION,
    "LedgerEvent": LEDGER_EVENT,
    "LedgerPage": record({"events": array_of(ref("LedgerEvent"))}),
    "Summary": SUMMARY,
    "HeldList": record({"held": array_of(ref("HeldRequest")), "count": INTEGER}),
    "HeldRequest": HELD_REQUEST,
    "WebhookCreated": record(
        {
            "webhookId": STRING,
            "intentId": STRING,
            "url": STRING,
            "events": array_of(STRING),
            "secret": {**STRING, "description": "Only when the gate generated it: shown once"},
        },
        optional=("secret",),
    ),
}
