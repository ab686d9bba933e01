"""What a decision writes: the intent and its ledger events. Pure builders."""

import dataclasses
import hashlib
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from gate_proxy.clock import utc_iso, utc_now
from gate_proxy.core.analyzers.pii import mask_pii
from gate_proxy.core.canonical import canonical_bytes
from gate_proxy.core.decide import Verdict
from gate_proxy.core.intents import Event, Intent, Status
from gate_proxy.core.policy import detect_payload_type
from gate_proxy.core.redact import redact_payload
from gate_proxy.keys import ordered_id
from gate_proxy.principal import Principal
from gate_proxy.store.base import EventDraft


@dataclass(slots=True)
class Proposal:
    """One intended write, from the API or from a proxied request."""

    destination: str
    policy: str
    payload: str | None = None
    record_count: int | None = None
    estimated_value_usd: float | None = None
    sensitivity_tags: tuple[str, ...] = ()
    idempotency_key: str | None = None
    on_behalf_of: str | None = None
    expires_in_seconds: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    payload_type: str | None = None
    source: str = "api"
    method: str | None = None
    url: str | None = None
    fingerprint: str | None = None
    payload_size: int | None = None
    payload_sha256: str | None = None
    # What the registry and the proxy edge found (see core.decide.DescribedRequest).
    registry_block: tuple[str, str] | None = None
    passthrough: bool = False
    require_approval: bool = False
    refusal: tuple[str, str] | None = None
    review_reason: str | None = None
    shadow: bool = False
    credential_destination: str | None = None
    # The proxy forwards an approved request at once: record the write-ahead
    # execution_requested event in the same commit as the decision.
    execute_if_approved: bool = False


def payload_bytes_of(payload: str | None) -> bytes:
    # A JSON string may hold a lone surrogate ("\ud800"); hash it rather than fail.
    return payload.encode("utf-8", "surrogatepass") if payload is not None else b""


def review_hash(intent: Intent) -> str:
    """What a reviewer approves: the exact request (proxy) or the exact payload (API)."""
    if intent.fingerprint:
        return intent.fingerprint
    return payload_review_hash(
        intent.destination, intent.policy, intent.payload_sha256, intent.record_count
    )


def payload_review_hash(
    destination: str, policy: str, payload_sha256: str | None, record_count: int | None
) -> str:
    """The review hash of an API intent: its destination, policy, payload and count."""
    return hashlib.sha256(
        canonical_bytes(
            {
                "destination": destination,
                "policy": policy,
                "payload_sha256": payload_sha256,
                "record_count": record_count,
            }
        )
    ).hexdigest()


def dedupe_fingerprint(proposal: Proposal) -> str:
    """The fingerprint new_intent will store: the proxied request's own (method, URL,
    body, bound headers), else the API payload's review hash."""
    if proposal.fingerprint:
        return proposal.fingerprint
    return payload_review_hash(
        proposal.destination,
        proposal.policy,
        proposal.payload_sha256 or hashlib.sha256(payload_bytes_of(proposal.payload)).hexdigest(),
        proposal.record_count,
    )


def new_intent(
    caller: Principal, proposal: Proposal, verdict: Verdict, environment: str | None
) -> Intent:
    """The intent a verdict records (not yet stored)."""
    now = utc_now()
    payload_bytes = payload_bytes_of(proposal.payload)
    expiry = verdict.expiry_minutes * 60
    if proposal.expires_in_seconds is not None:
        # An agent may shorten its approval window, never stretch the policy's.
        expiry = min(expiry, proposal.expires_in_seconds)
    status = Status(verdict.status)
    decided_by = "system" if status in (Status.APPROVED, Status.BLOCKED) else None
    payload_sha256 = proposal.payload_sha256 or hashlib.sha256(payload_bytes).hexdigest()
    return Intent(
        id=ordered_id("int_", 8),
        agent_id=caller.id,
        agent_name=caller.name,
        on_behalf_of=proposal.on_behalf_of,
        source=proposal.source,
        destination=proposal.destination,
        policy=proposal.policy,
        status=status,
        reason_code=verdict.reason_code,
        block_reason=verdict.message,
        risk_score=verdict.risk_score,
        risk_level=verdict.risk_level,
        record_count=proposal.record_count,
        # What the analyzers found and the value the budgets counted are part of the
        # record: the tags feed risk and the dashboard, the value later budget sums.
        estimated_value_usd=verdict.value_usd
        if verdict.value_usd is not None
        else proposal.estimated_value_usd,
        sensitivity_tags=verdict.tags or proposal.sensitivity_tags,
        idempotency_key=proposal.idempotency_key,
        environment=environment,
        payload_type=proposal.payload_type or detect_payload_type(proposal.payload),
        payload_size=proposal.payload_size
        if proposal.payload_size is not None
        else len(payload_bytes),
        payload_sha256=payload_sha256,
        payload_preview=redact_payload(proposal.payload, mask=mask_pii),
        method=proposal.method,
        url=proposal.url,
        fingerprint=proposal.fingerprint
        or payload_review_hash(
            proposal.destination, proposal.policy, payload_sha256, proposal.record_count
        ),
        shadow=verdict.shadow,
        require_approvals=verdict.require_approvals,
        metadata=proposal.metadata,
        created_at=utc_iso(now),
        # Pending: the review deadline. Approved: the execution deadline (an approval does
        # not stay usable forever; docs/security.md).
        expires_at=utc_iso(now + timedelta(seconds=expiry))
        if status in (Status.PENDING, Status.APPROVED)
        else None,
        decided_at=utc_iso(now) if decided_by else None,
        decided_by=decided_by,
    )


def decision_events(caller: Principal, intent: Intent, verdict: Verdict) -> list[EventDraft]:
    iid, aid = intent.id, caller.id
    proposed: dict[str, Any] = {
        "agent": caller.name,
        "on_behalf_of": intent.on_behalf_of,
        "destination": intent.destination,
        "policy": intent.policy,
        "source": intent.source,
        "record_count": intent.record_count,
        "payload_sha256": intent.payload_sha256,
        "payload_size": intent.payload_size,
        "fingerprint": intent.fingerprint,
    }
    if intent.method:
        proposed.update(method=intent.method, url=intent.url)
    checked = {
        "result": verdict.status,
        "reason_code": verdict.reason_code,
        "rule": verdict.rule,
        "risk_score": verdict.risk_score,
        "risk_level": verdict.risk_level,
        "environment": intent.environment,
        "shadow": intent.shadow,
    }
    events = [
        EventDraft(Event.PROPOSED, iid, caller.name, aid, proposed),
        EventDraft(Event.POLICY_CHECKED, iid, "system", aid, checked),
    ]
    if verdict.status == Status.BLOCKED:
        events.append(
            EventDraft(
                Event.BLOCKED,
                iid,
                "system",
                aid,
                {"reason_code": verdict.reason_code, "reason": verdict.message},
            )
        )
    elif verdict.status == Status.APPROVED:
        events.append(EventDraft(Event.APPROVED, iid, "system", aid, {"by": "policy"}))
    return events


def duplicate_record(
    caller: Principal,
    proposal: Proposal,
    original: Intent,
    environment: str | None,
    reason_code: str = "duplicate_idempotency_key",
    rule: str = "idempotency_key",
) -> tuple[Intent, list[EventDraft], Verdict]:
    matched = "idempotency_key matched" if rule == "idempotency_key" else "same request"
    verdict = Verdict(
        status=Status.DUPLICATE,
        reason_code=reason_code,
        message=f"Duplicate of {original.id} ({matched})",
        rule=rule,
        risk_score=original.risk_score,
        risk_level=original.risk_level,
        expiry_minutes=0,
        duplicate_of=original.id,
    )
    intent = new_intent(caller, proposal, verdict, environment)
    intent = dataclasses.replace(
        intent, duplicate_of=original.id, decided_by="system", decided_at=intent.created_at
    )
    events = [
        EventDraft(
            Event.PROPOSED,
            intent.id,
            caller.name,
            caller.id,
            {
                "destination": intent.destination,
                "policy": intent.policy,
                "idempotency_key": proposal.idempotency_key,
                "source": proposal.source,
            },
        ),
        EventDraft(
            Event.DUPLICATE_BLOCKED,
            intent.id,
            "system",
            caller.id,
            {"duplicate_of": original.id},
        ),
    ]
    return intent, events, verdict


def execution_requested(intent: Intent, actor: str, instance: str) -> EventDraft:
    """The write-ahead record of a proxied execution: durable before the request leaves.
    ``instance``: the gate process carrying it (usecases/fleet.py)."""
    return EventDraft(
        Event.EXECUTION_REQUESTED,
        intent.id,
        actor,
        intent.agent_id,
        {
            "mode": "proxy",
            "method": intent.method,
            "url": intent.url,
            "fingerprint": intent.fingerprint,
            "instance": instance,
        },
    )
