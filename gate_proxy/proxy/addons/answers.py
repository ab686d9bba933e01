"""The answers the gate gives on a proxied request itself, as JSON (never forwarded)."""

from typing import Any

from mitmproxy import http

from gate_proxy.api.errors import http_status
from gate_proxy.core.intents import Intent, Status
from gate_proxy.errors import GateError
from gate_proxy.proxy.addons.guard import gate_response

RETRY_AFTER_SECONDS = 10


def answer_for(intent: Intent, *, held_timeout: bool = False) -> http.Response:
    """What the agent is told about an intent that is not (or not yet) forwarded."""
    status = intent.status
    common: dict[str, Any] = {
        "intent_id": intent.id,
        "destination": intent.destination,
        "policy": intent.policy,
        "risk_score": intent.risk_score,
        "risk_level": intent.risk_level,
    }
    if status == Status.PENDING:
        return gate_response(
            202,
            status="pending_approval",
            reason_code="hold_timeout" if held_timeout else intent.reason_code,
            message=None,
            expiresAt=intent.expires_at,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            **common,
        )
    if status == Status.DUPLICATE:
        return gate_response(
            409,
            status="duplicate_blocked",
            reason_code=intent.reason_code,
            message=intent.block_reason,
            duplicateOf=intent.duplicate_of,
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
            message=intent.decision_note or "rejected by a reviewer",
            **common,
        )
    return gate_response(
        403,
        status="blocked",
        reason_code=intent.reason_code or "blocked",
        message=intent.block_reason,
        **common,
    )


def retry_refusal(
    intent_id: str, reason_code: str, message: str, intent: Intent | None = None
) -> http.Response:
    return gate_response(
        409,
        status="conflict",
        reason_code=reason_code,
        message=message,
        intent_id=intent_id,
        destination=intent.destination if intent else None,
        policy=intent.policy if intent else None,
        intentStatus=intent.status if intent else None,
    )


def error_answer(exc: GateError, intent: Intent | None = None, **fields: Any) -> http.Response:
    """A domain error on a proxied request, as the gate's JSON answer."""
    status = http_status(exc)
    if intent is not None:
        fields = {
            "intent_id": intent.id,
            "destination": intent.destination,
            "policy": intent.policy,
            **fields,
        }
    return gate_response(
        status,
        status="error" if status >= 500 else "blocked",
        reason_code=exc.error,
        message=exc.message,
        **fields,
    )


def bad_request(error: str, message: str) -> http.Response:
    return gate_response(
        400,
        status="blocked",
        reason_code=error,
        message=message,
        error=error,
        headers={"Connection": "close"},
    )
