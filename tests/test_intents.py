"""The intent lifecycle table: every (from, to) pair of statuses, legal or not.

The expected moves are written out here by hand, from the lifecycle in the module
docstring, so a change to TRANSITIONS must be made twice on purpose.
"""

import dataclasses
import itertools

import pytest

from gate_proxy.core.intents import (
    TERMINAL,
    TRANSITIONS,
    IllegalTransition,
    Intent,
    Status,
    can_transition,
    transition,
)

S = Status
LEGAL: frozenset[tuple[Status, Status]] = frozenset(
    {
        (S.PENDING, S.APPROVED),
        (S.PENDING, S.REJECTED),
        (S.PENDING, S.EXPIRED),
        (S.APPROVED, S.SCHEDULED),
        (S.APPROVED, S.SUCCEEDED),
        (S.APPROVED, S.FAILED),
        (S.APPROVED, S.EXPIRED),
        (S.SCHEDULED, S.SUCCEEDED),
        (S.SCHEDULED, S.FAILED),
        (S.SCHEDULED, S.APPROVED),
    }
)
EVERY_PAIR = list(itertools.product(Status, repeat=2))

# The moves gate_proxy/service.py asks the store for (approve, reject, expire, claim a proxied
# execution, reconcile in-flight, record an outcome) and report_execution's completion.
CALL_SITE_MOVES = [
    (S.PENDING, S.APPROVED),
    (S.PENDING, S.REJECTED),
    (S.PENDING, S.EXPIRED),
    (S.APPROVED, S.EXPIRED),
    (S.APPROVED, S.SCHEDULED),
    (S.SCHEDULED, S.FAILED),
    (S.SCHEDULED, S.SUCCEEDED),
]


@pytest.mark.parametrize(("current", "target"), EVERY_PAIR, ids=lambda s: str(s))
def test_every_pair_of_statuses(current: Status, target: Status) -> None:
    if (current, target) in LEGAL:
        assert transition(current, target) is target
        assert transition(str(current), str(target)) is target  # store rows hold plain strings
        assert can_transition(current, target)
        return
    with pytest.raises(IllegalTransition) as caught:
        transition(current, target)
    assert isinstance(caught.value, ValueError)
    assert f"{current} -> {target}" in str(caught.value)
    assert not can_transition(current, target)


def test_the_table_holds_exactly_the_legal_moves() -> None:
    table = {(source, goal) for source, goals in TRANSITIONS.items() for goal in goals}
    assert table == LEGAL


@pytest.mark.parametrize("terminal", sorted(TERMINAL))
def test_nothing_leaves_a_terminal_status(terminal: Status) -> None:
    for target in Status:
        with pytest.raises(IllegalTransition):
            transition(terminal, target)


@pytest.mark.parametrize(("current", "target"), CALL_SITE_MOVES, ids=lambda s: str(s))
def test_every_move_the_service_makes_is_legal(current: Status, target: Status) -> None:
    assert transition(current, target) is target


@pytest.mark.parametrize(
    ("current", "target"),
    [("pending_approval", "bogus"), ("bogus", "approved"), ("", ""), ("APPROVED", "expired")],
)
def test_a_value_that_is_not_a_status_is_an_illegal_transition(current: str, target: str) -> None:
    with pytest.raises(IllegalTransition) as caught:
        transition(current, target)
    assert f"{current} -> {target}" in str(caught.value)


# -- the Intent value ------------------------------------------------------------------------


def intent(**fields: object) -> Intent:
    base: dict[str, object] = {
        "id": "int_1",
        "agent_id": "agt_1",
        "agent_name": "bot",
        "source": "api",
        "destination": "crm.contacts",
        "policy": "p",
        "status": Status.PENDING,
        "risk_score": 0.3,
        "risk_level": "low",
        "created_at": "2026-01-01T00:00:00.000Z",
    }
    return Intent(**{**base, **fields})  # type: ignore[arg-type]


def test_an_intent_holds_its_fields_in_their_immutable_forms() -> None:
    tags = ["pii"]
    metadata = {"ticket": "T-1", "nested": {"a": 1}}
    made = intent(status="approved", sensitivity_tags=tags, metadata=metadata, shadow=1)
    assert made.status is Status.APPROVED  # a row's plain text becomes the enum
    assert made.sensitivity_tags == ("pii",)
    assert made.shadow is True
    tags.append("later")
    metadata["ticket"] = "changed by the caller"
    assert made.sensitivity_tags == ("pii",) and made.metadata["ticket"] == "T-1"
    with pytest.raises(TypeError):
        made.metadata["ticket"] = "x"  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.status = Status.REJECTED  # type: ignore[misc]


def test_the_defaults_are_the_tables_defaults() -> None:
    made = intent()
    assert (made.payload_size, made.shadow, made.require_approvals) == (0, False, 1)
    assert made.sensitivity_tags == () and dict(made.metadata) == {}
    assert made.expires_at is None and made.duplicate_of is None


@pytest.mark.parametrize("status", ["bogus", "", "APPROVED", "passthrough"])
def test_an_intent_with_a_status_that_is_none_is_refused(status: str) -> None:
    with pytest.raises(ValueError):
        intent(status=status)


@pytest.mark.parametrize(("current", "target"), EVERY_PAIR, ids=lambda s: str(s))
def test_with_status_moves_only_along_the_table(current: Status, target: Status) -> None:
    before = intent(status=current)
    if (current, target) not in LEGAL:
        with pytest.raises(IllegalTransition):
            before.with_status(target, decided_by="someone")
        return
    after = before.with_status(target, decided_by="someone", decision_note="ok")
    assert after.status is target and after.decided_by == "someone"
    assert after.decision_note == "ok"
    assert before.status is current and before.decided_by is None  # a new value
    assert dataclasses.replace(after, status=current, decided_by=None, decision_note=None) == (
        before
    )


def test_with_status_refuses_a_field_that_does_not_exist() -> None:
    with pytest.raises(TypeError):
        intent().with_status(Status.APPROVED, approvals=2)
