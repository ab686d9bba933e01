"""What the control API accepts: request bodies and parameters (JSON Schema 2020-12).

These schemas say exactly what gate_proxy/api/inputs.py and the use cases behind it
accept: tests/test_api_contract.py holds the two together, in process (the schema and the
parser agree on generated bodies) and against the real gate (schemathesis). Conventions:
null is the same as leaving an optional field out; unknown fields are ignored; "blank"
means ASCII whitespace only.
"""

from typing import Any

from gate_proxy.api.inputs import MAX_COUNT, MAX_SEQ, MAX_VALUE_USD
from gate_proxy.core.intents import Status
from gate_proxy.principal import Role
from gate_proxy.usecases.agents import NAME_PATTERN, RISK_TIERS
from gate_proxy.usecases.review import MAX_BULK_APPROVALS

# A string with at least one character outside inputs.BLANK (a search, as JSON Schema's
# `pattern` is): the one notion of "blank" every regex dialect agrees on.
NON_BLANK = {"type": "string", "pattern": "[^ \\t\\n\\r\\f\\v]"}
ANY_JSON: dict[str, Any] = {}  # any JSON value, null included
STRINGS = {"type": "array", "items": {"type": "string"}}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` or JSON null (null = absent for every optional field)."""
    kind = schema["type"]
    types = [*kind, "null"] if isinstance(kind, list) else [kind, "null"]
    extra = {"enum": [*schema["enum"], None]} if "enum" in schema else {}
    return {**schema, "type": types, **extra}


def described(schema: dict[str, Any], description: str, **extra: Any) -> dict[str, Any]:
    return {**schema, "description": description, **extra}


COUNT = {"type": "integer", "minimum": 0, "maximum": MAX_COUNT}
OPTIONAL_TEXT = nullable({"type": "string"})

INTENT_REQUEST = {
    "type": "object",
    "required": ["destination", "policy"],
    "properties": {
        "destination": described(NON_BLANK, "Logical destination, e.g. stripe.refund"),
        "policy": described(NON_BLANK, "Policy id (a file in policies/)"),
        "payload": described(
            ANY_JSON, "What will be written: a string, or any JSON value (kept as its JSON text)"
        ),
        "recordCount": nullable(COUNT),
        "record_count": described(nullable(COUNT), "Alias of recordCount", deprecated=True),
        "estimated_value_usd": nullable({"type": "number", "minimum": 0, "maximum": MAX_VALUE_USD}),
        "sensitivity_tags": nullable(STRINGS),
        "idempotency_key": described(
            OPTIONAL_TEXT, "A repeat with the same key is recorded as duplicate_blocked"
        ),
        "on_behalf_of": OPTIONAL_TEXT,
        "expiresIn": described(
            nullable({"type": "string", "pattern": "^[0-9]{1,5}[smhd]$"}),
            "Review window asked for (the policy's expiry caps it), e.g. 30m, 1h, 2d",
        ),
        "metadata": nullable({"type": "object"}),
    },
}

INTENT_EXAMPLE = {
    "destination": "stripe.refund",
    "policy": "finance-high-risk",
    "payload": '{"charge": "ch_123", "amount": 4200}',
    "recordCount": 1,
    "estimated_value_usd": 42.0,
}

AGENT_REGISTRATION = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": NAME_PATTERN.pattern},
        "role": nullable({"type": "string", "enum": [role.value for role in Role]}),
        "riskTier": nullable({"type": "string", "enum": list(RISK_TIERS)}),
        "risk_tier": described(
            nullable({"type": "string", "enum": list(RISK_TIERS)}),
            "Alias of riskTier (read when riskTier is absent)",
            deprecated=True,
        ),
        "owner": OPTIONAL_TEXT,
        "framework": OPTIONAL_TEXT,
        "environment": described(OPTIONAL_TEXT, "Pins the agent's policy environment"),
        "allowed_policies": described(nullable(STRINGS), "null: any policy"),
        "allowed_destinations": described(nullable(STRINGS), "null: any destination"),
        "metadata": nullable({"type": "object"}),
    },
}

REVIEW = {
    "type": "object",
    "properties": {
        "reviewHash": described(
            OPTIONAL_TEXT, "The intent's reviewHash as shown; a different intent answers 409"
        ),
        "fingerprint": described(OPTIONAL_TEXT, "Alias of reviewHash", deprecated=True),
        "note": described(OPTIONAL_TEXT, "Approve: kept with the decision"),
        "reason": described(OPTIONAL_TEXT, "Reject: kept with the decision"),
    },
}

BULK_APPROVAL = {
    "type": "object",
    "description": "Each intent is approved as by POST /v1/intents/{intent_id}/approve (the "
    "same role, self-review, N-of-M and review-hash rules) and answered on its own",
    "required": ["intents"],
    "properties": {
        "intents": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_BULK_APPROVALS,
            "description": f"1 to {MAX_BULK_APPROVALS} intents (more answers 413); an intent "
            "named twice is approved once",
            "items": {
                "type": "object",
                "required": ["intentId"],
                "properties": {
                    "intentId": NON_BLANK,
                    "reviewHash": described(
                        OPTIONAL_TEXT,
                        "The intent's reviewHash as shown; a different intent is refused",
                    ),
                },
            },
        },
        "note": described(OPTIONAL_TEXT, "Kept with each decision"),
    },
}

LEGACY_ID = described(NON_BLANK, "The intent to decide (seed 004)")
LEGACY_REVIEW = {
    "type": "object",
    "description": "Seed 004's form: the intent is named in the body",
    "properties": {
        **REVIEW["properties"],
        "intentId": nullable(LEGACY_ID),
        "proposalId": described(nullable(LEGACY_ID), "Seed V1's name for intentId"),
        "intent_id": described(nullable(LEGACY_ID), "Alias of intentId", deprecated=True),
    },
    "anyOf": [
        {"required": [name], "properties": {name: {"type": "string"}}}
        for name in ("intentId", "proposalId", "intent_id")
    ],
}

REPORT = {
    "type": "object",
    "required": ["status"],
    "properties": {
        "status": {"type": "string", "enum": ["succeeded", "failed"]},
        "report": described(ANY_JSON, "What the worker did (an object by convention)"),
    },
}

WEBHOOK = {
    "type": "object",
    "required": ["intentId", "url"],
    "properties": {
        "intentId": {"type": "string", "minLength": 1},
        "url": described(
            {"type": "string", "format": "uri", "pattern": "^https?://"},
            "Checked like proxied traffic (egress policy): a denied address answers 400",
        ),
        "secret": described(
            nullable({"type": "string", "minLength": 16}),
            "At least 16 characters; leave it out and the gate generates one (shown once)",
        ),
    },
}

REQUEST_SCHEMAS: dict[str, dict[str, Any]] = {
    "IntentRequest": INTENT_REQUEST,
    "AgentRegistration": AGENT_REGISTRATION,
    "Review": REVIEW,
    "BulkApproval": BULK_APPROVAL,
    "LegacyReview": LEGACY_REVIEW,
    "Report": REPORT,
    "WebhookRegistration": WEBHOOK,
}

# -- parameters ---------------------------------------------------------------------------------


def path_parameter(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


PARAMETERS: dict[str, dict[str, Any]] = {
    "IntentStatus": query(
        "status",
        {"type": "string", "enum": [status.value for status in Status]},
        "Only intents in this status",
    ),
    "IntentLimit": query("limit", {"type": "integer"}, "How many (clamped to 1..500)"),
    "LedgerAfter": query(
        "after",
        {"type": "integer", "minimum": 0, "maximum": MAX_SEQ},
        "Events after this sequence number",
    ),
    "LedgerLimit": query("limit", {"type": "integer"}, "How many (clamped to 1..1000)"),
    "IdempotencyKey": {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": "Same as the body's idempotency_key (which wins when both are given)",
    },
}
