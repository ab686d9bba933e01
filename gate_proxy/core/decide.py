"""Where a request is decided: one pure function, ``decide()``, that turns a described
request into a ``Verdict``.

Pure: no I/O, no mitmproxy, no clock. Both edges call it — the proxy for every request it
governs, the control API for every ``POST /v1/intents`` — and nothing else decides. The
proxy calls it inside the store's write transaction (``Store.insert_decided_intent``),
with counts read in that same transaction, so a limit holds under concurrency.

The order, first match wins (docs/architecture.md):

1. the registry blocks the destination, or the path is one no rule can be trusted with
   (``invalid_path``)                                            -> blocked
2. the edge found the request ambiguous (a method override where it is not allowed, a
   read with a body, a body whose charset or record path reads two ways) -> blocked
3. the registry says passthrough                                  -> passthrough (forward,
   no intent)
4. the agent's own scope (allowed_policies, allowed_destinations) -> blocked
5. the policy (core.policy.evaluate: content checks, analyzers, limits, budgets, the
   duplicate window, approval rules, risk)                        -> its decision
6. a review the registry or the edge forces (``require_approval: true``, a record count
   that could not be read) turns an approval into pending_approval
7. shadow mode (the gate, the destination or the policy says ``enforce: shadow``) marks
   the verdict: it is recorded as decided, and the request is forwarded anyway.

Modelled on Envoy's ext_authz ``CheckResponse`` and Smokescreen's single decision
function: a decision is a value, and an evaluation error is never a decision (it raises).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from gate_proxy.core.analyzers.base import Finding
from gate_proxy.core.intents import Intent, Status
from gate_proxy.core.policy import DEFAULT_EXPIRY_MINUTES, Analysis, IntentFacts, Policy
from gate_proxy.core.policy.evaluate import rule_intent

__all__ = [
    "PASSTHROUGH",
    "Action",
    "AgentScope",
    "Counts",
    "DescribedRequest",
    "Verdict",
    "decide",
]

PASSTHROUGH = "passthrough"


class Action(StrEnum):
    """What the edge must do with the request."""

    FORWARD = "forward"  # send it upstream (approved, passthrough, or shadow)
    PENDING = "pending"  # answer 202 with the intent id, or hold it (X-Gate-Wait)
    REFUSE = "refuse"  # answer 403/409 with the reason; nothing is sent


@dataclass(frozen=True, slots=True)
class AgentScope:
    """What the agent's key may reach (None: anything)."""

    allowed_policies: tuple[str, ...] | None = None
    allowed_destinations: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Counts:
    """Counts the policy's limits need, read in the transaction that records the intent."""

    last_hour: int | None = None
    last_day: int | None = None
    # (agent last hour, agent last day, policy last hour, policy last day)
    spent: tuple[float, float, float, float] | None = None
    duplicate_of: Intent | None = None  # the earlier intent in the window


@dataclass(frozen=True, slots=True)
class DescribedRequest:
    """One write as the decider sees it, from either edge."""

    destination: str
    policy: str
    facts: IntentFacts
    source: str = "api"  # "api" | "proxy"
    # From the registry (the proxy): a block with its reason, a passthrough, a review.
    registry_block: tuple[str, str] | None = None  # (reason_code, message)
    passthrough: bool = False
    require_approval: bool = False
    # From the edge: the request reads two ways (reason_code, message), or a fact the
    # policy needs could not be read (reason_code) and a human must look.
    refusal: tuple[str, str] | None = None
    review_reason: str | None = None
    # Shadow mode from the gate or the destination; the policy's own is read here.
    shadow: bool = False
    # Where the vault must inject a credential when this is forwarded (None: nowhere).
    credential_destination: str | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """The decision for one request: what it is, why, and what the edge must do."""

    status: str  # approved | blocked | pending_approval | duplicate_blocked | passthrough
    reason_code: str
    message: str | None  # human-readable reason (blocked/duplicate), else None
    rule: str  # the rule that decided ("agent_scope", "block_if_terms", "default", ...)
    risk_score: float = 0.0
    risk_level: str = "low"
    findings: tuple[Finding, ...] = ()
    tags: tuple[str, ...] = ()
    value_usd: float | None = None  # what the budgets counted
    expiry_minutes: int = 60
    require_approvals: int = 1
    shadow: bool = False
    inject_credentials_for: str | None = None
    duplicate_of: str | None = None

    @property
    def action(self) -> Action:
        if self.shadow or self.status in (Status.APPROVED, PASSTHROUGH):
            return Action.FORWARD
        if self.status == Status.PENDING:
            return Action.PENDING
        return Action.REFUSE

    @property
    def records_intent(self) -> bool:
        return self.status != PASSTHROUGH


def decide(
    request: DescribedRequest,
    policy: Policy | None,
    scope: AgentScope,
    counts: Counts = Counts(),
    analysis: Analysis | None = None,
) -> Verdict:
    """Decide one request. Pure and deterministic: same inputs, same verdict."""
    inject = request.credential_destination
    if request.registry_block is not None:
        return _refused(request.registry_block, "registry", inject)
    if request.refusal is not None:
        return _refused(request.refusal, "request", inject)
    if request.passthrough:
        return Verdict(PASSTHROUGH, PASSTHROUGH, None, "registry", inject_credentials_for=inject)

    facts = request.facts
    effective = policy.for_environment(facts.environment) if policy is not None else None
    duplicate = counts.duplicate_of
    # No duplicate found is a count like any other; only a policy with a window reads it.
    windowed = effective is not None and effective.dedupe_window_seconds is not None
    ev, status, reason_code, message, rule, value = rule_intent(
        policy,
        facts,
        None if counts.last_hour is None or counts.last_day is None
        else (counts.last_hour, counts.last_day),
        counts.spent,
        (duplicate is not None) if windowed else None,
        duplicate.id if duplicate is not None else None,
        analysis,
    )  # fmt: skip
    scope_block = _scope_block(request, scope)
    if scope_block is not None:
        status, (reason_code, message), rule = Status.BLOCKED, scope_block, "agent_scope"
    elif status == Status.APPROVED and request.require_approval:
        status, reason_code, message, rule = (
            Status.PENDING, "manual_review_required", None, "registry"
        )  # fmt: skip
    elif status == Status.APPROVED and request.review_reason is not None:
        status, reason_code, message, rule = Status.PENDING, request.review_reason, None, "request"
    if status not in (Status.BLOCKED, Status.DUPLICATE):
        message = None  # a human-readable reason only for a refusal
    score, level = ev.risk(value)
    return Verdict(
        status,
        reason_code,
        message,
        rule,
        score,
        level,
        ev.findings,
        ev.tags(),
        value,
        DEFAULT_EXPIRY_MINUTES if effective is None else effective.expiry_minutes,
        1 if effective is None else effective.require_approvals,
        request.shadow or (effective is not None and effective.enforce == "shadow"),
        inject,
        duplicate.id if duplicate is not None and status == Status.DUPLICATE else None,
    )


def _refused(reason: tuple[str, str], rule: str, inject: str | None) -> Verdict:
    code, message = reason
    return Verdict(Status.BLOCKED, code, message, rule, inject_credentials_for=inject)


def _scope_block(request: DescribedRequest, scope: AgentScope) -> tuple[str, str] | None:
    # The agent's own scope comes first: a key limited to some policies or destinations
    # can never reach others, whatever the policy says.
    if scope.allowed_policies is not None and request.policy not in scope.allowed_policies:
        return ("policy_not_allowed", f"Agent may not use policy {request.policy}")
    if (
        scope.allowed_destinations is not None
        and request.destination not in scope.allowed_destinations
    ):
        return (
            "destination_not_allowed",
            f"Agent may not write to destination {request.destination}",
        )
    return None
