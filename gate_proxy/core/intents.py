"""Intent lifecycle: statuses, audit event types and the allowed transitions (seed 004).

proposed -> policy_checked -> blocked | duplicate_blocked | approved | pending_approval
pending_approval -> approved | rejected | expired
approved -> scheduled (execution order issued) -> succeeded | failed
approved -> expired (not executed before its deadline)
approved -> succeeded | failed (the proxy executes directly)

Every status change in the store goes through transition(): a change the table does not
allow is a programming error raised before anything is written (the h11 pattern).

``Intent`` is one row of the intents table as a typed, immutable value: the store returns
it and takes it (the SQLite rows stay inside gate_proxy/store/sqlite/), and the edges map
it to JSON (api/views.py).
"""

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any


class Status(StrEnum):
    APPROVED = "approved"
    BLOCKED = "blocked"
    PENDING = "pending_approval"
    DUPLICATE = "duplicate_blocked"
    REJECTED = "rejected"
    EXPIRED = "expired"
    SCHEDULED = "scheduled"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Event(StrEnum):
    PROPOSED = "proposed"
    POLICY_CHECKED = "policy_checked"
    APPROVED = "approved"
    REJECTED = "rejected"
    BLOCKED = "blocked"
    EXPIRED = "expired"
    DUPLICATE_BLOCKED = "duplicate_blocked"
    EXECUTION_REQUESTED = "execution_requested"
    EXECUTION_SUCCEEDED = "execution_succeeded"
    EXECUTION_FAILED = "execution_failed"
    # scheduled -> approved: the request never left the gate (DNS failure, refused
    # connection, egress denial), so the one execution it authorises is still unspent.
    EXECUTION_NOT_SENT = "execution_not_sent"
    # Not a transition: a client held with X-Gate-Wait disconnected before the decision.
    # The intent stays as it is; the agent re-sends with X-Gate-Intent-Id.
    HOLD_CLIENT_LEFT = "hold_client_left"
    # Not an intent transition: records a single reviewer's vote when N-of-M applies.
    APPROVAL_VOTE = "approval_vote"


TERMINAL: frozenset[Status] = frozenset(
    {
        Status.BLOCKED,
        Status.DUPLICATE,
        Status.REJECTED,
        Status.EXPIRED,
        Status.SUCCEEDED,
        Status.FAILED,
    }
)

TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.PENDING: frozenset({Status.APPROVED, Status.REJECTED, Status.EXPIRED}),
    # An approval not executed before its deadline expires.
    Status.APPROVED: frozenset({Status.SCHEDULED, Status.SUCCEEDED, Status.FAILED, Status.EXPIRED}),
    Status.SCHEDULED: frozenset({Status.SUCCEEDED, Status.FAILED, Status.APPROVED}),
}

# The event that records each transition into a status.
EVENT_FOR_STATUS: dict[Status, Event] = {
    Status.APPROVED: Event.APPROVED,
    Status.REJECTED: Event.REJECTED,
    Status.EXPIRED: Event.EXPIRED,
    Status.BLOCKED: Event.BLOCKED,
    Status.DUPLICATE: Event.DUPLICATE_BLOCKED,
    Status.SCHEDULED: Event.EXECUTION_REQUESTED,
    Status.SUCCEEDED: Event.EXECUTION_SUCCEEDED,
    Status.FAILED: Event.EXECUTION_FAILED,
}


class IllegalTransition(ValueError):
    """A status change the lifecycle does not allow: a bug in the caller, not a lost race."""

    def __init__(self, current: Status | str, target: Status | str) -> None:
        super().__init__(f"illegal intent transition {current} -> {target}")
        self.current = current
        self.target = target


def transition(current: Status | str, target: Status | str) -> Status:
    """The target status if ``current -> target`` is in TRANSITIONS; else IllegalTransition."""
    try:
        source, goal = Status(current), Status(target)
    except ValueError:  # not a status at all: as illegal as any change the table lacks
        raise IllegalTransition(current, target) from None
    if goal not in TRANSITIONS.get(source, frozenset()):
        raise IllegalTransition(source, goal)
    return goal


def can_transition(current: Status | str, target: Status | str) -> bool:
    return Status(target) in TRANSITIONS.get(Status(current), frozenset())


def is_terminal(status: Status | str) -> bool:
    return Status(status) in TERMINAL


@dataclass(frozen=True, slots=True, kw_only=True)
class Intent:
    """One recorded intent: every column of the ``intents`` table, typed.

    Timestamps stay ISO 8601 UTC text (gate_proxy/clock.py): they sort and compare as
    text, and the API shows them as stored. Frozen: a change is a new value
    (``with_status``, ``dataclasses.replace``), and the store is what records it.
    """

    id: str
    agent_id: str
    agent_name: str
    source: str  # "api" | "proxy"
    destination: str
    policy: str
    status: Status
    risk_score: float
    risk_level: str
    created_at: str
    on_behalf_of: str | None = None
    reason_code: str | None = None
    block_reason: str | None = None
    record_count: int | None = None
    estimated_value_usd: float | None = None
    sensitivity_tags: tuple[str, ...] = ()
    idempotency_key: str | None = None
    duplicate_of: str | None = None  # the original's id (duplicate_blocked only)
    environment: str | None = None
    payload_type: str | None = None
    payload_size: int = 0
    payload_sha256: str | None = None
    payload_preview: str | None = None  # redacted at write time (core/redact.py)
    method: str | None = None  # proxied requests only
    url: str | None = None
    fingerprint: str | None = None
    shadow: bool = False
    require_approvals: int = 1
    metadata: Mapping[str, Any] = field(default_factory=dict)
    expires_at: str | None = None  # pending: review deadline; approved: execution deadline
    decided_at: str | None = None
    decided_by: str | None = None
    decision_note: str | None = None
    executed_at: str | None = None
    completed_at: str | None = None

    def __post_init__(self) -> None:
        # The canonical forms: a status that is one (ValueError otherwise), a bool, a
        # tuple of tags, and a read-only copy of the metadata a caller may still hold.
        object.__setattr__(self, "status", Status(self.status))
        object.__setattr__(self, "shadow", bool(self.shadow))
        object.__setattr__(self, "sensitivity_tags", tuple(self.sensitivity_tags))
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))

    def with_status(self, status: Status, **changes: Any) -> "Intent":
        """This intent moved to ``status``, with ``changes`` (field -> value) applied.

        IllegalTransition if TRANSITIONS lacks the move. A value only: recording it is the
        store's ``transition_intent``, which checks the stored status again.
        """
        return dataclasses.replace(self, status=transition(self.status, status), **changes)


# The intents table's columns, in the dataclass's order (a test holds them to the schema).
INTENT_COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Intent))
