"""How the control API shows intents, decisions and executions (seed 004's field names)."""

from typing import Any

from gate_proxy.core.intents import Intent
from gate_proxy.core.mcp.record import intent_tool
from gate_proxy.store.base import Row
from gate_proxy.usecases import Outcome, review_hash
from gate_proxy.usecases.review import BulkOutcome


def intent_view(intent: Intent, *, approvals: int | None = None) -> dict[str, Any]:
    """An intent as the API shows it. ``approvals``: the votes so far of an N-of-M intent
    still short of its quorum (only an approve answer knows them)."""
    return {
        "intentId": intent.id,
        "status": intent.status,
        "agentId": intent.agent_id,
        "agent": intent.agent_name,
        "on_behalf_of": intent.on_behalf_of,
        "source": intent.source,
        "destination": intent.destination,
        "policy": intent.policy,
        "reason_code": intent.reason_code,
        "blockReason": intent.block_reason,
        "risk_score": intent.risk_score,
        "risk_level": intent.risk_level,
        "recordCount": intent.record_count,
        "estimated_value_usd": intent.estimated_value_usd,
        "sensitivity_tags": list(intent.sensitivity_tags),
        "idempotency_key": intent.idempotency_key,
        "duplicateOf": intent.duplicate_of,
        "environment": intent.environment,
        "payload": {
            "type": intent.payload_type,
            "size": intent.payload_size,
            "sha256": intent.payload_sha256,
            "preview": intent.payload_preview,
        },
        "method": intent.method,
        "url": intent.url,
        "tool": intent_tool(intent),
        "reviewHash": review_hash(intent),
        "requireApprovals": intent.require_approvals,
        "shadow": intent.shadow,
        "metadata": dict(intent.metadata),
        "createdAt": intent.created_at,
        "expiresAt": intent.expires_at,
        "decidedAt": intent.decided_at,
        "decidedBy": intent.decided_by,
        "note": intent.decision_note,
        **({"approvals": approvals} if approvals is not None else {}),
    }


def decision_view(outcome: Outcome) -> dict[str, Any]:
    intent = outcome.intent
    assert intent is not None  # the API never proposes a passthrough
    return {
        "intentId": intent.id,
        "status": intent.status,
        "risk_score": intent.risk_score,
        "risk_level": intent.risk_level,
        "reason_code": intent.reason_code,
        "blockReason": intent.block_reason,
        "expiresAt": intent.expires_at,
        "destination": intent.destination,
        "policy": intent.policy,
        "reviewHash": review_hash(intent),
        **({"duplicateOf": intent.duplicate_of} if intent.duplicate_of else {}),
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


def decision_record(intent_id: str, events: list[Row]) -> dict[str, Any]:
    """The policy's decision as the ledger recorded it (the seed's `decision` object)."""
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


def audit_view(event: Row) -> dict[str, Any]:
    """One ledger event in an intent's audit trail (the seed's field names)."""
    return {
        "eventType": event["type"],
        "actor": event["actor"],
        "createdAt": event["at"],
        "metadata": event["data"],
        "seq": event["seq"],
        "hash": event["hash"],
    }


def bulk_approval_view(outcomes: list[BulkOutcome]) -> dict[str, Any]:
    """A bulk approve's answer: one entry per intent named, in the order given, and counts."""
    results = [bulk_item_view(outcome) for outcome in outcomes]
    counts = {name: 0 for name in BULK_RESULTS}
    for result in results:
        counts[result["result"]] += 1
    return {
        "results": results,
        "approved": counts["approved"],
        "pendingMoreVotes": counts["pending_more_votes"],
        "refused": counts["refused"],
    }


BULK_RESULTS = ("approved", "pending_more_votes", "refused")


def bulk_item_view(outcome: BulkOutcome) -> dict[str, Any]:
    if outcome.approval is None:
        assert outcome.refusal is not None
        # The refusal a single approve would answer: its code, message and extra fields.
        return {"intentId": outcome.intent_id, "result": "refused", **outcome.refusal.body()}
    intent = outcome.approval.intent
    if outcome.approval.approvals is None:
        return {
            "intentId": intent.id,
            "result": "approved",
            "status": intent.status,
            "approvedAt": intent.decided_at,
        }
    return {
        "intentId": intent.id,
        "result": "pending_more_votes",
        "status": intent.status,
        "approvals": outcome.approval.approvals,
        "required": intent.require_approvals,
    }
