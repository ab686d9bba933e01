"""core/decide.py: the one decider, table-driven. Pure: no store, no proxy, no clock."""

import pytest

from gate_proxy.core.decide import (
    Action,
    AgentScope,
    Counts,
    DescribedRequest,
    Verdict,
    decide,
)
from gate_proxy.core.intents import Intent, Status
from gate_proxy.core.policy import IntentFacts, Policy
from gate_proxy.loaders.policy_file import parse_policy

POLICIES: dict[str, Policy] = {
    "auto": parse_policy("id: auto\nrequire_approval: never\n", "auto.yaml"),
    "review": parse_policy("id: review\nrequire_approval: always\n", "review.yaml"),
    "terms": parse_policy("id: terms\nblock_if_terms: [sue]\nrequire_approval: never\n", "t.yaml"),
    "rate": parse_policy(
        "id: rate\nrequire_approval: never\nrate_limits: {per_agent_per_hour: 2}\n", "r.yaml"
    ),
    "dedupe": parse_policy(
        "id: dedupe\nrequire_approval: never\ndedupe_window_seconds: 60\n", "d.yaml"
    ),
    "shadow": parse_policy(
        "id: shadow\nenforce: shadow\nblock_if_terms: [sue]\nrequire_approval: never\n", "s.yaml"
    ),
}


def request(policy: str = "auto", payload: str = "{}", **fields: object) -> DescribedRequest:
    facts = IntentFacts(destination="crm.contacts", payload=payload)
    return DescribedRequest(destination="crm.contacts", policy=policy, facts=facts, **fields)  # type: ignore[arg-type]


def earlier(intent_id: str) -> Intent:
    """The intent a duplicate window found (the store reads it inside the write)."""
    return Intent(
        id=intent_id,
        agent_id="agt_1",
        agent_name="a",
        source="api",
        destination="crm.contacts",
        policy="dedupe",
        status=Status.APPROVED,
        risk_score=0.1,
        risk_level="low",
        created_at="2026-01-01T00:00:00.000Z",
    )


CASES: list[tuple[str, DescribedRequest, AgentScope, Counts, str, str, str, Action]] = [
    # (name, request, scope, counts, status, reason_code, rule, action)
    ("policy approves", request(), AgentScope(), Counts(), "approved", "approved_by_policy",
     "require_approval", Action.FORWARD),
    ("policy asks a human", request("review"), AgentScope(), Counts(), "pending_approval",
     "manual_review_required", "require_approval", Action.PENDING),
    ("unknown policy blocks", request("nope"), AgentScope(), Counts(), "blocked",
     "policy_not_found", "policy", Action.REFUSE),
    ("registry block wins over everything", request(registry_block=("destination_blocked", "x"),
     passthrough=True), AgentScope(), Counts(), "blocked", "destination_blocked", "registry",
     Action.REFUSE),
    ("an ambiguous request is refused before passthrough",
     request(passthrough=True, refusal=("not_a_read", "a GET with a body")), AgentScope(),
     Counts(), "blocked", "not_a_read", "request", Action.REFUSE),
    ("passthrough", request(passthrough=True), AgentScope(), Counts(), "passthrough",
     "passthrough", "registry", Action.FORWARD),
    ("scope: policy not allowed", request(), AgentScope(allowed_policies=("review",)), Counts(),
     "blocked", "policy_not_allowed", "agent_scope", Action.REFUSE),
    ("scope: destination not allowed", request(), AgentScope(allowed_destinations=("other",)),
     Counts(), "blocked", "destination_not_allowed", "agent_scope", Action.REFUSE),
    ("scope beats an approving policy", request("auto"), AgentScope(allowed_policies=()),
     Counts(), "blocked", "policy_not_allowed", "agent_scope", Action.REFUSE),
    ("registry forces a review", request(require_approval=True), AgentScope(), Counts(),
     "pending_approval", "manual_review_required", "registry", Action.PENDING),
    ("an unread record count forces a review", request(review_reason="record_count_unknown"),
     AgentScope(), Counts(), "pending_approval", "record_count_unknown", "request",
     Action.PENDING),
    ("a forced review never unblocks", request("terms", '{"m": "we sue"}', require_approval=True),
     AgentScope(), Counts(), "blocked", "blocked_term_detected", "block_if_terms",
     Action.REFUSE),
    ("rate limit under", request("rate"), AgentScope(), Counts(last_hour=1, last_day=1),
     "approved", "approved_by_policy", "require_approval", Action.FORWARD),
    ("rate limit reached", request("rate"), AgentScope(), Counts(last_hour=2, last_day=2),
     "blocked", "rate_limited", "rate_limits", Action.REFUSE),
    ("rate counts missing: fail closed", request("rate"), AgentScope(), Counts(), "blocked",
     "rate_limited", "rate_limits", Action.REFUSE),
    ("duplicate in window", request("dedupe"), AgentScope(), Counts(duplicate_of=earlier("int_1")),
     "duplicate_blocked", "duplicate_within_window", "dedupe_window_seconds", Action.REFUSE),
    ("no duplicate", request("dedupe"), AgentScope(), Counts(), "approved", "approved_by_policy",
     "require_approval", Action.FORWARD),
    ("shadow from the policy forwards a block", request("shadow", '{"m": "sue"}'), AgentScope(),
     Counts(), "blocked", "blocked_term_detected", "block_if_terms", Action.FORWARD),
    ("shadow from the registry forwards a review", request("review", shadow=True), AgentScope(),
     Counts(), "pending_approval", "manual_review_required", "require_approval", Action.FORWARD),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "described", "scope", "counts", "status", "reason", "rule", "action"),
    CASES,
    ids=[case[0] for case in CASES],
)
def test_decide(
    name: str,
    described: DescribedRequest,
    scope: AgentScope,
    counts: Counts,
    status: str,
    reason: str,
    rule: str,
    action: Action,
) -> None:
    verdict = decide(described, POLICIES.get(described.policy), scope, counts)
    assert (verdict.status, verdict.reason_code, verdict.rule) == (status, reason, rule)
    assert verdict.action is action


def test_the_verdict_is_a_value() -> None:
    verdict = decide(request(), POLICIES["auto"], AgentScope())
    assert isinstance(verdict, Verdict)
    with pytest.raises(AttributeError):
        verdict.status = "blocked"  # type: ignore[misc]
    assert decide(request(), POLICIES["auto"], AgentScope()) == verdict


def test_the_verdict_names_where_credentials_go() -> None:
    verdict = decide(
        request(credential_destination="stripe.refund"), POLICIES["auto"], AgentScope()
    )
    assert verdict.inject_credentials_for == "stripe.refund"


def test_duplicates_name_the_original() -> None:
    verdict = decide(
        request("dedupe"), POLICIES["dedupe"], AgentScope(), Counts(duplicate_of=earlier("int_9"))
    )
    assert verdict.duplicate_of == "int_9"
