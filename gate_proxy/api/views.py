"""How the control API shows intents, decisions and executions (seed 004's field names)."""

from typing import Any

from gate_proxy.store.base import Row
from gate_proxy.usecases import Outcome, review_hash


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
    assert intent is not None  # the API never proposes a passthrough
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
        **({"duplicateOf": intent["duplicate_of"]} if intent.get("duplicate_of") else {}),
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
