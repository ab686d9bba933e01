"""The intent lifecycle table: every (from, to) pair of statuses, legal or not.

The expected moves are written out here by hand, from the lifecycle in the module
docstring, so a change to TRANSITIONS must be made twice on purpose.
"""

import itertools

import pytest

from gate_proxy.core.intents import (
    TERMINAL,
    TRANSITIONS,
    IllegalTransition,
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
