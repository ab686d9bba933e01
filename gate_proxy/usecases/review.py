"""Reading intents and reviewing them: approve (N-of-M), bulk approve, reject, the audit
trail."""

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from gate_proxy.clock import utc_iso, utc_now
from gate_proxy.core.intents import Event, Intent, Status
from gate_proxy.errors import (
    GateError,
    Unavailable,
    conflict,
    expired,
    invalid,
    not_found,
    not_permitted,
)
from gate_proxy.keys import keys_equal
from gate_proxy.metrics import GateMetrics
from gate_proxy.principal import Principal
from gate_proxy.store.base import Conflict, DuplicateKey, EventDraft, Row, Store
from gate_proxy.usecases.events import EventBus
from gate_proxy.usecases.expiry import Expiry
from gate_proxy.usecases.records import review_hash

log = logging.getLogger("gate.review")

# An approval stays usable at least this long (docs/security.md).
MIN_EXECUTION_WINDOW = timedelta(minutes=5)
# A bulk approve names at most this many intents (the API answers 413 past it), and works
# on at most BULK_CONCURRENCY of them at a time: enough concurrent writes for the store to
# commit them in a few group transactions, few enough not to starve proxied requests.
MAX_BULK_APPROVALS = 1000
BULK_CONCURRENCY = 64


@dataclass(frozen=True, slots=True)
class Approval:
    """What one approve did: the intent as it stands now and, while an N-of-M intent is
    still short of its quorum (it stays pending), the distinct approvals so far."""

    intent: Intent
    approvals: int | None = None  # None: this approval decided the intent


@dataclass(frozen=True, slots=True)
class BulkItem:
    """One intent of a bulk approve, with the review hash the reviewer saw (None: unbound)."""

    intent_id: str
    review_hash: str | None = None


@dataclass(frozen=True, slots=True)
class BulkOutcome:
    """What a bulk approve did to one intent: an `Approval` (approved, or still short of
    its quorum) or the refusal a single approve would have answered."""

    intent_id: str
    approval: Approval | None = None
    refusal: GateError | None = None


class Review:
    def __init__(
        self, store: Store, expiry: Expiry, events: EventBus, metrics: GateMetrics
    ) -> None:
        self.store = store
        self.expiry = expiry
        self.events = events
        self.metrics = metrics

    # -- reading -----------------------------------------------------------------------------

    async def get_intent(self, caller: Principal, intent_id: str) -> Intent:
        intent = await self.store.get_intent(intent_id)
        if intent is None or not caller.can_see(intent.agent_id):
            raise not_found("intent")  # an agent cannot even learn that others' intents exist
        return await self.expiry.expire_if_due(intent)

    async def list_intents(self, caller: Principal, status: str | None, limit: int) -> list[Intent]:
        if status is not None and status not in {s.value for s in Status}:
            raise invalid(f"unknown status {status!r}")
        agent_id = None if caller.can_review else caller.id
        return await self.store.list_intents(agent_id=agent_id, status=status, limit=limit)

    async def audit_trail(self, caller: Principal, intent_id: str) -> list[Row]:
        await self.get_intent(caller, intent_id)
        return await self.store.ledger_events(intent_id=intent_id)

    async def summary(self, caller: Principal) -> dict[str, Any]:
        row = await self.store.intent_metrics(None if caller.can_review else caller.id)
        latency = row["avg_approval_latency_ms"]
        return {
            "actions_attempted": row["attempted"],
            "actions_blocked": row["blocked"],
            "actions_pending": row["pending"],
            "actions_approved": row["approved"],
            "actions_succeeded": row["succeeded"],
            "actions_failed": row["failed"],
            "actions_duplicate": row["duplicate"],
            "actions_expired": row["expired"],
            "avg_approval_latency_ms": round(latency) if latency is not None else None,
        }

    # -- deciding ----------------------------------------------------------------------------

    async def approve(
        self,
        caller: Principal,
        intent_id: str,
        *,
        note: str | None = None,
        expected_hash: str | None = None,
    ) -> Approval:
        intent = await self._reviewable(caller, intent_id, expected_hash)
        required = intent.require_approvals or 1
        now = utc_iso()
        if required > 1:
            vote_event = EventDraft(
                Event.APPROVAL_VOTE,
                intent_id,
                caller.name,
                intent.agent_id,
                {"reviewer": caller.id, "vote": "approve", "required": required},
            )
            vote = {
                "intent_id": intent_id,
                "reviewer_id": caller.id,
                "vote": "approve",
                "reason": note,
                "created_at": now,
            }
            try:
                await self.store.add_vote(vote, vote_event)
            except DuplicateKey as exc:
                raise conflict("this reviewer has already voted", "already_voted") from exc
            votes = await self.store.list_votes(intent_id)
            approvals = len({v["reviewer_id"] for v in votes if v["vote"] == "approve"})
            if approvals < required:
                return Approval(intent, approvals)
        # The approval is usable until the intent's deadline, and for at least
        # MIN_EXECUTION_WINDOW after it (an approval in the last minute must be usable).
        deadline = max(intent.expires_at or now, utc_iso(utc_now() + MIN_EXECUTION_WINDOW))
        events = [
            EventDraft(
                Event.APPROVED,
                intent_id,
                caller.name,
                intent.agent_id,
                {"by": caller.id, "note": note, "execute_by": deadline},
            )
        ]
        fields = {
            "decided_at": now,
            "decided_by": caller.id,
            "decision_note": note,
            "expires_at": deadline,
        }
        try:
            await self.store.transition_intent(
                intent_id, (Status.PENDING,), Status.APPROVED, fields, events
            )
        except Conflict as exc:
            raise conflict("intent is no longer pending", "not_pending") from exc
        self.metrics.reviews.inc("approved")
        updated = intent.with_status(Status.APPROVED, **fields)
        self.events.transitioned(updated, Event.APPROVED, caller.name)
        return Approval(updated)

    async def approve_many(
        self, caller: Principal, items: Sequence[BulkItem], *, note: str | None = None
    ) -> list[BulkOutcome]:
        """Approve each intent as `approve` would, answering each one on its own.

        The same rules per intent (role, never one's own, N-of-M distinct reviewers, the
        review hash, the deadline); one refused intent does not stop the others. The
        approvals run concurrently so the store commits them in a few group transactions.
        An intent named twice is approved once; the repeat is refused.
        """
        if not caller.can_review:
            raise not_permitted("approving or rejecting needs a reviewer or admin key")
        if len(items) > MAX_BULK_APPROVALS:
            raise invalid(f"at most {MAX_BULK_APPROVALS} intents per bulk approve")
        slots = asyncio.Semaphore(BULK_CONCURRENCY)

        async def one(item: BulkItem) -> BulkOutcome:
            async with slots:
                try:
                    approval = await self.approve(
                        caller, item.intent_id, note=note, expected_hash=item.review_hash
                    )
                except GateError as refusal:
                    return BulkOutcome(item.intent_id, refusal=refusal)
                except Exception:
                    # Fail closed for this intent only; its state is whatever the store
                    # holds (a retry answers not_pending if the approval did land).
                    log.exception("bulk approve failed for one intent")
                    refusal = Unavailable(
                        "unavailable", "the approval could not be recorded; read the intent"
                    )
                    return BulkOutcome(item.intent_id, refusal=refusal)
                return BulkOutcome(item.intent_id, approval=approval)

        seen: set[str] = set()
        work: list[asyncio.Future[BulkOutcome]] = []
        for item in items:
            if item.intent_id in seen:
                work.append(_done(_repeated(item.intent_id)))
            else:
                seen.add(item.intent_id)
                work.append(asyncio.ensure_future(one(item)))
        return list(await asyncio.gather(*work))

    async def reject(
        self,
        caller: Principal,
        intent_id: str,
        *,
        reason: str | None,
        expected_hash: str | None = None,
    ) -> Intent:
        intent = await self._reviewable(caller, intent_id, expected_hash)
        now = utc_iso()
        events = [
            EventDraft(
                Event.REJECTED,
                intent_id,
                caller.name,
                intent.agent_id,
                {"by": caller.id, "reason": reason},
            )
        ]
        fields = {
            "decided_at": now,
            "decided_by": caller.id,
            "decision_note": reason,
            "block_reason": reason or "Rejected by reviewer",
        }
        try:
            await self.store.transition_intent(
                intent_id, (Status.PENDING,), Status.REJECTED, fields, events
            )
        except Conflict as exc:
            raise conflict("intent is no longer pending", "not_pending") from exc
        self.metrics.reviews.inc("rejected")
        updated = intent.with_status(Status.REJECTED, **fields)
        self.events.transitioned(updated, Event.REJECTED, caller.name)
        return updated

    async def _reviewable(
        self, caller: Principal, intent_id: str, expected_hash: str | None
    ) -> Intent:
        if not caller.can_review:
            raise not_permitted("approving or rejecting needs a reviewer or admin key")
        intent = await self.store.get_intent(intent_id)
        if intent is None:
            raise not_found("intent")
        if intent.agent_id == caller.id:
            raise not_permitted("nobody reviews an intent their own key proposed", "self_review")
        intent = await self.expiry.expire_if_due(intent)
        if intent.status == Status.EXPIRED:
            raise expired("the approval window has closed; the intent expired")
        agent = await self.store.get_agent(intent.agent_id)
        if agent is not None and agent["status"] != "active":
            raise conflict(
                f"the proposing agent is {agent['status']}; its intents cannot be approved",
                "agent_inactive",
            )
        if intent.status != Status.PENDING:
            raise conflict(
                f"intent is {intent.status}, not pending_approval",
                "not_pending",
                intentStatus=intent.status,
            )
        if expected_hash is not None and not keys_equal(expected_hash, review_hash(intent)):
            raise conflict("the intent differs from what was reviewed", "review_hash_mismatch")
        return intent


def _repeated(intent_id: str) -> BulkOutcome:
    refusal = conflict("this intent is named earlier in the same request", "duplicate_in_request")
    return BulkOutcome(intent_id, refusal=refusal)


def _done(outcome: BulkOutcome) -> "asyncio.Future[BulkOutcome]":
    future: asyncio.Future[BulkOutcome] = asyncio.get_running_loop().create_future()
    future.set_result(outcome)
    return future
