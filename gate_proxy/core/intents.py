"""Intent lifecycle: statuses, audit event types and the allowed transitions (seed 004).

proposed -> policy_checked -> blocked | duplicate_blocked | approved | pending_approval
pending_approval -> approved | rejected | expired
approved -> scheduled (execution order issued) -> succeeded | failed
approved -> expired (not executed before its deadline)
approved -> succeeded | failed (the proxy executes directly)

Every status change in the store goes through transition(): a change the table does not
allow is a programming error raised before anything is written (the h11 pattern).
"""

from enum import StrEnum


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
