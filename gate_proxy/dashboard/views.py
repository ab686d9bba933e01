"""What the dashboard shows of an intent: the API's view, with PII masked for display.

Stored previews are already credential-redacted (``core/redact.py``); here SSNs and card
numbers are masked too, in every free-text field a page renders.
"""

from typing import Any

from gate_proxy.api.views import intent_view
from gate_proxy.core.intents import Intent, Status
from gate_proxy.core.pii import mask_pii
from gate_proxy.store.base import Row, Store


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask_pii(value)
    if isinstance(value, dict):
        return {key: _masked(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_masked(item) for item in value]
    return value


def dashboard_view(
    intent: Intent,
    *,
    held_until: str | None,
    voters: list[str] | None = None,
    approvals: int | None = None,
) -> dict[str, Any]:
    # approvals only keeps the key where an approve answer always had it; the count shown
    # is the voters' (below).
    view = intent_view(intent, approvals=approvals)
    # Agent-supplied metadata is neither redacted nor needed to decide: leave it out. A
    # proxied intent's metadata is the gate's own: it names the MCP tool of a tools/call.
    view.pop("metadata", None)
    view["tool"] = _masked(view["tool"])
    payload = dict(view["payload"])
    payload["preview"] = _masked(payload.get("preview"))
    view["payload"] = payload
    for key in ("url", "note", "blockReason", "on_behalf_of"):
        view[key] = _masked(view.get(key))
    view["held"] = held_until is not None
    # A held request waits until its hold ends (hold_timeout_ms), which may come long before
    # the intent's review deadline (expiresAt): the card shows both.
    view["heldUntil"] = held_until
    view["voters"] = voters or []
    view["approvals"] = len(view["voters"])
    return view


async def voters_of(store: Store, intent: Intent) -> list[str]:
    """Reviewers who already approved a pending N-of-M intent (empty otherwise)."""
    if intent.status != Status.PENDING or intent.require_approvals <= 1:
        return []
    votes = await store.list_votes(intent.id)
    return sorted({v["reviewer_id"] for v in votes if v["vote"] == "approve"})


def audit_view(events: list[Row]) -> list[dict[str, Any]]:
    return [
        {
            "seq": event["seq"],
            "eventType": event["type"],
            "actor": event["actor"],
            "createdAt": event["at"],
            "metadata": _masked(event["data"]),
            "hash": event["hash"],
        }
        for event in events
    ]
