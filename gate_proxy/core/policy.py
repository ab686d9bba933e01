"""Policies: parsing YAML text into a `Policy`, and `evaluate()`, where every intent is decided.

Evaluation order (the first rule that decides wins; see docs/policies.md, docs/analyzers.md):

    policy missing              -> blocked  policy_not_found
    destinations                -> blocked  destination_not_allowed
    allowed_types               -> blocked  payload_type_not_allowed
    dedupe_window_seconds       -> duplicate_blocked duplicate_within_window
    block_if_terms              -> blocked  blocked_term_detected
    field_checks                -> blocked  field_check_failed
    sql.block                   -> blocked  sql_blocked
    shell_check_fields          -> blocked  shell_injection_detected
    path_check_fields           -> blocked  path_traversal_detected
    block_if_pii                -> blocked  pii_detected
    record_checks (block)       -> blocked  record_check_failed
    rate_limits                 -> blocked  rate_limited
    budgets (block)             -> blocked  budget_exceeded
    sql.require_approval        -> pending  sql_review_required
    require_approval_if_pii     -> pending  pii_review_required
    require_approval_if_template_error -> pending template_error
    record_checks               -> pending  record_check_failed
    budgets                     -> pending  budget_exceeded
    require_approval: always    -> pending  manual_review_required
    require_approval: never     -> approved approved_by_policy
    auto_approve_under          -> approved approved_by_policy
    require_approval_over       -> pending  record_threshold_exceeded
    default                     -> pending  manual_review_required

Every blocking check runs before any approval rule, so an auto-approve can never skip one.
The content analyzers (``core/analyzers``) run once per evaluation; their findings decide
the analyzer rules above and add sensitivity tags to the risk score. Budgets and the
duplicate window need counts only storage has: the caller passes them as `Counters`, and
missing counts block (fail closed), as for rate limits.
Parsing is strict: unknown keys, duplicate keys and wrong types are errors with file, line
and field, because a typo must never make a policy laxer than it reads.
"""

import difflib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from gate_proxy.core.analyzers import (
    AnalyzerConfig,
    FieldPath,
    Finding,
    RecordCheck,
    analyze,
    finding_tags,
    parse_field_path,
)
from gate_proxy.core.analyzers import pii as pii_analyzer
from gate_proxy.core.analyzers import sql as sql_analyzer
from gate_proxy.core.analyzers.fields import form_pairs, select
from gate_proxy.core.intents import Status
from gate_proxy.core.located import LocatedError
from gate_proxy.core.risk import cached_risk_score
from gate_proxy.core.terms import NOT_JSON, TermMatcher, decode_json, json_strings

__all__ = [
    "DEFAULT_EXPIRY_MINUTES",
    "BudgetLimits",
    "Budgets",
    "Counters",
    "Decision",
    "FieldCheck",
    "IntentFacts",
    "Policy",
    "PolicyError",
    "RateCounts",
    "RateLimits",
    "SqlRules",
    "budget_value",
    "detect_payload_type",
    "evaluate",
    "parse_policy",
    "validate_policy_id",
]

DEFAULT_EXPIRY_MINUTES: Final = 60
MAX_EXPIRY_MINUTES: Final = 525_600  # one year; keeps expiry arithmetic far from overflow
MAX_REQUIRE_APPROVALS: Final = 100
MAX_DEDUPE_WINDOW_SECONDS: Final = 7 * 86_400

APPROVED: Final = Status.APPROVED.value
BLOCKED: Final = Status.BLOCKED.value
PENDING: Final = Status.PENDING.value
DUPLICATE: Final = Status.DUPLICATE.value

ALWAYS: Final = "always"
NEVER: Final = "never"


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------


class PolicyError(LocatedError):
    """A policy file that cannot be used. str(e) == "file:line: field: message"."""


# --------------------------------------------------------------------------------------
# Inputs and outputs of evaluate()
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IntentFacts:
    """What the gate knows about one intended write.

    `record_count` None means 1: one intent is one record unless the caller says otherwise.
    `payload_type` None means `detect_payload_type(payload)`.
    `environment` must come from the server side (agent registration or the gate's
    --environment), never from the request, or an agent could pick its laxest block.
    """

    destination: str
    payload: str | None = None
    record_count: int | None = None
    payload_type: str | None = None
    estimated_value_usd: float | None = None
    sensitivity_tags: tuple[str, ...] = ()
    environment: str | None = None
    # Tags of the destination itself (e.g. "sql": its bodies are SQL), from the caller's
    # registry. A policy with a `sql:` block tags its own destinations.
    destination_tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Malformed facts must fail loudly: a negative count would satisfy any threshold.
        count = self.record_count
        if count is not None and (type(count) is not int or count < 0):
            raise ValueError(f"record_count must be a non-negative integer, got {count!r}")
        value = self.estimated_value_usd
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float) or value < 0
        ):
            raise ValueError(f"estimated_value_usd must be a number >= 0, got {value!r}")
        tags = self.sensitivity_tags
        if not isinstance(tags, tuple):
            # A bare string would otherwise become one tag per character.
            tags = (tags,) if isinstance(tags, str) else tuple(tags)
            object.__setattr__(self, "sensitivity_tags", tags)


@dataclass(frozen=True, slots=True)
class RateCounts:
    """Intents by the same agent in the trailing windows, excluding the one being decided."""

    last_hour: int
    last_day: int


@dataclass(frozen=True, slots=True)
class Counters:
    """Counts for budgets and the duplicate window, read from storage by the caller.

    Spend is the value of this policy's intents that were or may still be executed
    (pending, approved, scheduled, succeeded, failed), excluding the one being decided;
    `agent_*` for the same agent, `policy_*` for every agent. None means "not counted":
    a policy that needs the number then blocks (fail closed).
    """

    agent_spent_hour_usd: float | None = None
    agent_spent_day_usd: float | None = None
    policy_spent_hour_usd: float | None = None
    policy_spent_day_usd: float | None = None
    # Same agent, destination and request/payload fingerprint within the policy's
    # dedupe_window_seconds (blocked and duplicate intents do not count).
    duplicate_within_window: bool | None = None
    duplicate_of: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    status: str  # "approved" | "blocked" | "pending_approval" | "duplicate_blocked"
    reason_code: str
    block_reason: str | None  # human-readable, only when blocked
    risk_score: float  # 0..1, two decimals
    risk_level: str  # low | medium | high | critical
    expiry_minutes: int
    require_approvals: int  # distinct reviewer approvals needed
    rule: str  # the rule that decided, e.g. "block_if_terms", "default"
    findings: tuple[Finding, ...] = ()  # what the content analyzers found
    tags: tuple[str, ...] = ()  # facts' sensitivity tags plus the findings' tags
    # The value the budgets counted (value_path or estimated_value_usd); None when the
    # policy has no budgets or the value is unknown. The caller stores it for later sums.
    value_usd: float | None = None


# --------------------------------------------------------------------------------------
# The policy model
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldCheck:
    """One `field_checks` entry; `segments` is `path` split on dots."""

    path: str
    segments: tuple[str, ...]
    required: bool = False
    min: float | None = None
    max: float | None = None
    max_length: int | None = None
    pattern: re.Pattern[str] | None = None


@dataclass(frozen=True, slots=True)
class RateLimits:
    per_agent_per_hour: int | None = None
    per_agent_per_day: int | None = None


@dataclass(frozen=True, slots=True)
class SqlRules:
    """`sql:` - which SQL kinds block or need approval (see analyzers/sql.py for kinds)."""

    fields: tuple[FieldPath, ...] = ()  # empty: the whole body, or every JSON string
    block: tuple[str, ...] = ()
    require_approval: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BudgetLimits:
    hourly_max_value_usd: float | None = None
    daily_max_value_usd: float | None = None


@dataclass(frozen=True, slots=True)
class Budgets:
    """`budgets:` - value limits per agent and per policy over the last hour and day."""

    per_agent: BudgetLimits | None = None
    per_policy: BudgetLimits | None = None
    value_path: FieldPath | None = None  # where the value is in the body
    value_scale: float = 1.0  # e.g. 0.01 when the body counts cents
    on_exceed: str = "require_approval"  # or "block"


@dataclass(frozen=True)
class Policy:
    """A parsed policy. `environments` holds fully merged policies, one per environment."""

    id: str
    source: str = ""
    description: str = ""
    destinations: tuple[str, ...] | None = None  # None: any destination
    allowed_types: tuple[str, ...] | None = None  # None: any payload type
    block_if_terms: tuple[str, ...] = ()
    require_approval: str | None = None  # "always" | "never" | None
    auto_approve_under: int | None = None
    require_approval_over: int | None = None
    expiry_minutes: int = DEFAULT_EXPIRY_MINUTES
    require_approvals: int = 1
    field_checks: tuple[FieldCheck, ...] = ()
    rate_limits: RateLimits | None = None
    sql: SqlRules | None = None
    block_if_pii: tuple[str, ...] = ()
    require_approval_if_pii: tuple[str, ...] = ()
    require_approval_if_template_error: bool = False
    record_checks: tuple[RecordCheck, ...] = ()
    shell_check_fields: tuple[FieldPath, ...] = ()
    path_check_fields: tuple[FieldPath, ...] = ()
    dedupe_window_seconds: int | None = None
    budgets: Budgets | None = None
    # "shadow": the proxy records the decision it would have made and forwards anyway.
    enforce: str = "enforce"
    # Top level only: header names (lower-case) that are part of a proxied request's
    # fingerprint, which binds an approval to one exact request (addons/decision.py).
    fingerprint_headers: tuple[str, ...] | None = None
    environments: Mapping[str, "Policy"] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )
    # Derived in __post_init__ so evaluate() does no per-call preparation.
    term_matcher: TermMatcher | None = field(init=False, repr=False, compare=False)
    analyzer_config: AnalyzerConfig = field(init=False, repr=False, compare=False)
    _destination_set: frozenset[str] | None = field(init=False, repr=False, compare=False)
    _type_set: frozenset[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        matcher = TermMatcher(self.block_if_terms) if self.block_if_terms else None
        object.__setattr__(self, "term_matcher", matcher)
        destinations = None if self.destinations is None else frozenset(self.destinations)
        object.__setattr__(self, "_destination_set", destinations)
        types = None if self.allowed_types is None else frozenset(self.allowed_types)
        object.__setattr__(self, "_type_set", types)
        config = AnalyzerConfig(
            sql=self.sql is not None,
            sql_fields=self.sql.fields if self.sql is not None else (),
            shell_fields=self.shell_check_fields,
            path_fields=self.path_check_fields,
            record_checks=self.record_checks,
        )
        object.__setattr__(self, "analyzer_config", config)

    def for_environment(self, environment: str | None) -> "Policy":
        """The policy with `environments[environment]` merged over it (self if none applies)."""
        if environment is None or not self.environments:
            return self
        return self.environments.get(environment, self)

    @property
    def uses_rate_limits(self) -> bool:
        """True if the base or any environment sets rate_limits (the caller queries counts)."""
        return self.rate_limits is not None or any(
            env.rate_limits is not None for env in self.environments.values()
        )

    @property
    def uses_counters(self) -> bool:
        """True if the base or any environment sets budgets or dedupe_window_seconds."""
        return any(
            p.budgets is not None or p.dedupe_window_seconds is not None
            for p in (self, *self.environments.values())
        )

    @property
    def record_threshold(self) -> int | None:
        """The record count the risk score compares against."""
        if self.require_approval_over is not None:
            return self.require_approval_over
        return self.auto_approve_under


# --------------------------------------------------------------------------------------
# Small pure helpers
# --------------------------------------------------------------------------------------

_POLICY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def validate_policy_id(policy_id: str) -> bool:
    """True for ids that are safe as file stems: no separators, no "..", 1-128 chars."""
    return (
        isinstance(policy_id, str)
        and _POLICY_ID.fullmatch(policy_id) is not None
        and ".." not in policy_id
    )


def detect_payload_type(payload: str | None) -> str:
    """ "json" for a JSON object/array, a file extension for a file path, else "text".

    A file path is one token without whitespace whose extension has 1-16 ASCII letters or
    digits, at least one a letter ("./leads.csv" -> "csv"); prose and "v1.2" stay "text".
    """
    if payload is None:
        return "text"
    return _payload_type(payload, decode_json(payload))


def _payload_type(payload: str, parsed: object) -> str:
    if isinstance(parsed, tuple | list):
        return "json"
    candidate = payload.strip()
    if not candidate or len(candidate) > 4096 or len(candidate.split(maxsplit=1)) != 1:
        return "text"
    stem, dot, extension = candidate.rpartition(".")
    if (
        dot
        and stem
        and stem[-1] not in "/\\."
        and 1 <= len(extension) <= 16
        and extension.isascii()
        and extension.isalnum()
        and not extension.isdigit()
    ):
        return extension.lower()
    return "text"


def _normalize_type(payload_type: str) -> str:
    return payload_type.strip().lower().removeprefix(".")


# --------------------------------------------------------------------------------------
# evaluate()
# --------------------------------------------------------------------------------------

_MISSING: Final = object()
_NOT_PARSED: Final = object()


class _Evaluation:
    """One evaluate() call: the payload is decoded and analysed at most once, on demand."""

    __slots__ = ("_findings", "_parsed", "_term", "facts", "policy")

    def __init__(self, policy: Policy | None, facts: IntentFacts) -> None:
        self.policy = policy
        self.facts = facts
        self._parsed: object = _NOT_PARSED
        self._findings: tuple[Finding, ...] | None = None
        self._term: object = _NOT_PARSED

    def blocked_term(self) -> str | None:
        """The first `block_if_terms` term in the payload (None if none or no terms)."""
        if self._term is _NOT_PARSED:
            matcher = self.policy.term_matcher if self.policy is not None else None
            payload = self.facts.payload
            term = None
            if matcher is not None and payload:
                parsed = self.parsed
                text = payload if parsed is NOT_JSON else json_strings(payload, parsed)
                term = matcher.first_match_in_text(text)
            self._term = term
        return self._term  # type: ignore[return-value]

    @property
    def parsed(self) -> object:
        if self._parsed is _NOT_PARSED:
            payload = self.facts.payload
            self._parsed = NOT_JSON if payload is None else decode_json(payload)
        return self._parsed

    @property
    def findings(self) -> tuple[Finding, ...]:
        if self._findings is None:
            policy = self.policy
            if policy is None or (not self.facts.payload and not policy.record_checks):
                self._findings = ()
            else:
                self._findings = analyze(
                    self.facts.payload,
                    self.parsed if self._parsed is not _NOT_PARSED or _wants_structure(policy)
                    else None,
                    destination_tags=self.facts.destination_tags,
                    config=policy.analyzer_config,
                )  # fmt: skip
        return self._findings

    def of(self, analyzer: str) -> list[Finding]:
        return [f for f in self.findings if f.analyzer == analyzer]


def _wants_structure(policy: Policy) -> bool:
    config = policy.analyzer_config
    return bool(
        config.record_checks or config.shell_fields or config.path_fields or config.sql_fields
    )


class Analysis:
    """The content work of one decision (parse, analyzers, term scan), done ahead.

    It costs what the body costs; the rest of evaluate() costs microseconds. Done once
    outside the store's write, it lets evaluate() run again *inside* it with counts read
    in the same transaction, so limits hold under concurrency without holding the write
    lock for the analysis.
    """

    __slots__ = ("_evaluation",)

    def __init__(self, policy: Policy | None, facts: IntentFacts) -> None:
        effective = policy.for_environment(facts.environment) if policy is not None else None
        self._evaluation = _Evaluation(effective, facts)
        if effective is not None:
            _ = self._evaluation.findings
            self._evaluation.blocked_term()


def analyze_intent(policy: Policy | None, facts: IntentFacts) -> Analysis:
    return Analysis(policy, facts)


def evaluate(
    policy: Policy | None,
    facts: IntentFacts,
    rates: RateCounts | None = None,
    counters: Counters | None = None,
    *,
    analysis: Analysis | None = None,
) -> Decision:
    """Decide one intent. Pure and deterministic: same inputs, same decision.

    `analysis` (from analyze_intent with the same policy and facts) skips the content work.
    """
    if policy is None:
        return _decide(
            _Evaluation(None, facts), BLOCKED, "policy_not_found", "No policy found", "policy"
        )
    policy = policy.for_environment(facts.environment)
    ev = _Evaluation(policy, facts)
    if analysis is not None:
        prepared = analysis._evaluation
        if prepared.policy is not policy or prepared.facts is not facts:
            raise ValueError("analysis was made for another policy or facts")
        ev = prepared

    if policy._destination_set is not None and facts.destination not in policy._destination_set:
        reason = f"Destination not allowed by policy: {facts.destination}"
        return _decide(ev, BLOCKED, "destination_not_allowed", reason, "destinations")

    payload = facts.payload

    if policy._type_set is not None:
        if facts.payload_type is not None:
            payload_type = _normalize_type(facts.payload_type)
        elif payload is None:
            payload_type = "text"
        else:
            payload_type = _payload_type(payload, ev.parsed)
        if payload_type not in policy._type_set:
            reason = f"Payload type not allowed: {payload_type}"
            return _decide(ev, BLOCKED, "payload_type_not_allowed", reason, "allowed_types")

    window = policy.dedupe_window_seconds
    if window is not None:
        if counters is None or counters.duplicate_within_window is None:
            reason = "duplicate check unavailable"  # fail closed: no count, no write
            return _decide(
                ev, BLOCKED, "duplicate_check_unavailable", reason, "dedupe_window_seconds"
            )
        if counters.duplicate_within_window:
            original = counters.duplicate_of or "an earlier intent"
            reason = (
                f"Duplicate of {original}: same agent, destination and request within {window} s"
            )
            return _decide(
                ev, DUPLICATE, "duplicate_within_window", reason, "dedupe_window_seconds"
            )

    term = ev.blocked_term()
    if term is not None:
        reason = f"Payload contains blocked term: {term}"
        return _decide(ev, BLOCKED, "blocked_term_detected", reason, "block_if_terms")

    if policy.field_checks:
        failure = _failed_field_check(policy.field_checks, ev.parsed)
        if failure is not None:
            return _decide(ev, BLOCKED, "field_check_failed", failure, "field_checks")

    sql = policy.sql
    sql_findings = ev.of("sql") if sql is not None else []
    if sql is not None and sql.block:
        hit = _sql_hit(sql_findings, sql.block)
        if hit is not None:
            reason = f"SQL not allowed: {_describe(hit)}"
            return _decide(ev, BLOCKED, "sql_blocked", reason, "sql.block")

    for analyzer, rule, code in (
        ("shell", "shell_check_fields", "shell_injection_detected"),
        ("path", "path_check_fields", "path_traversal_detected"),
    ):
        if getattr(policy, rule):
            hits = ev.of(analyzer)
            if hits:
                label = "Shell injection" if analyzer == "shell" else "Path traversal"
                return _decide(ev, BLOCKED, code, f"{label}: {_describe(hits[0])}", rule)

    if policy.block_if_pii:
        hit = _pii_hit(ev.findings, policy.block_if_pii)
        if hit is not None:
            reason = _pii_reason(hit)
            return _decide(ev, BLOCKED, "pii_detected", reason, "block_if_pii")

    record_failures = _record_failures(policy, ev) if policy.record_checks else []
    for check, finding in record_failures:
        if check.on_fail == "block":
            reason = f"Record check failed: {_describe(finding)}"
            return _decide(ev, BLOCKED, "record_check_failed", reason, "record_checks")

    limits = policy.rate_limits
    if limits is not None:
        failure = _rate_limit_failure(limits, rates)
        if failure is not None:
            return _decide(ev, BLOCKED, "rate_limited", failure, "rate_limits")

    value: float | None = None
    budget_failure: str | None = None
    budgets = policy.budgets
    if budgets is not None:
        value = budget_value(budgets, payload, ev.parsed, facts.estimated_value_usd)
        budget_failure = _budget_failure(budgets, value, counters)
        if budget_failure is not None and (
            budgets.on_exceed == "block" or budget_failure == _BUDGET_UNAVAILABLE
        ):
            return _decide(ev, BLOCKED, "budget_exceeded", budget_failure, "budgets", value)

    # -- approval rules: every blocking check above has passed --
    if sql is not None and sql.require_approval:
        hit = _sql_hit(sql_findings, sql.require_approval)
        if hit is not None:
            reason = f"SQL needs review: {_describe(hit)}"
            return _decide(
                ev, PENDING, "sql_review_required", reason, "sql.require_approval", value
            )
    if policy.require_approval_if_pii:
        hit = _pii_hit(ev.findings, policy.require_approval_if_pii)
        if hit is not None:
            reason = _pii_reason(hit)
            return _decide(
                ev, PENDING, "pii_review_required", reason, "require_approval_if_pii", value
            )
    if policy.require_approval_if_template_error:
        hits = ev.of("template")
        if hits:
            reason = f"Unresolved template placeholder: {_describe(hits[0])}"
            return _decide(
                ev, PENDING, "template_error", reason, "require_approval_if_template_error", value
            )
    if record_failures:
        reason = f"Record check failed: {_describe(record_failures[0][1])}"
        return _decide(ev, PENDING, "record_check_failed", reason, "record_checks", value)
    if budget_failure is not None:
        return _decide(ev, PENDING, "budget_exceeded", budget_failure, "budgets", value)

    if policy.require_approval == ALWAYS:
        return _decide(ev, PENDING, "manual_review_required", None, "require_approval", value)
    if policy.require_approval == NEVER:
        return _decide(ev, APPROVED, "approved_by_policy", None, "require_approval", value)
    record_count = 1 if facts.record_count is None else facts.record_count
    if policy.auto_approve_under is not None and record_count <= policy.auto_approve_under:
        return _decide(ev, APPROVED, "approved_by_policy", None, "auto_approve_under", value)
    if policy.require_approval_over is not None and record_count > policy.require_approval_over:
        return _decide(
            ev, PENDING, "record_threshold_exceeded", None, "require_approval_over", value
        )
    return _decide(ev, PENDING, "manual_review_required", None, "default", value)


def _decide(
    ev: _Evaluation,
    status: str,
    reason_code: str,
    block_reason: str | None,
    rule: str,
    value: float | None = None,
) -> Decision:
    policy, facts = ev.policy, ev.facts
    threshold = None if policy is None else policy.record_threshold
    findings = ev.findings
    tags = facts.sensitivity_tags
    if findings:
        extra = [tag for tag in finding_tags(findings) if tag not in tags]
        tags = (*tags, *extra)
    score, level = cached_risk_score(
        facts.destination,
        facts.record_count,
        threshold,
        value if value is not None else facts.estimated_value_usd,
        tags,
    )
    return Decision(
        status=status,
        reason_code=reason_code,
        block_reason=block_reason if status in (BLOCKED, DUPLICATE) else None,
        risk_score=score,
        risk_level=level,
        expiry_minutes=DEFAULT_EXPIRY_MINUTES if policy is None else policy.expiry_minutes,
        require_approvals=1 if policy is None else policy.require_approvals,
        rule=rule,
        findings=findings,
        tags=tags,
        value_usd=value,
    )


def _describe(finding: Finding) -> str:
    where = "" if finding.location in ("", "payload") else f" at {finding.location}"
    return f"{finding.type}{where} ({finding.detail})"


def _sql_hit(findings: list[Finding], kinds: tuple[str, ...]) -> Finding | None:
    for finding in findings:
        # Text too large to parse counts as every kind: fail closed.
        if finding.kind in kinds or finding.kind == "too_large":
            return finding
    return None


def _pii_hit(findings: tuple[Finding, ...], kinds: tuple[str, ...]) -> Finding | None:
    for finding in findings:
        # A body past the scan limit counts as every kind: fail closed.
        if finding.analyzer in ("pii", "secret") and (
            finding.kind in kinds or finding.kind == "too_large"
        ):
            return finding
    return None


def _pii_reason(hit: Finding) -> str:
    if hit.kind == "too_large":
        return f"Payload too large for the PII check: {_describe(hit)}"
    return f"Payload contains {hit.kind.replace('_', ' ')}: {_describe(hit)}"


def _record_failures(policy: Policy, ev: _Evaluation) -> list[tuple[RecordCheck, Finding]]:
    by_path = {f.location: f for f in ev.of("record")}
    return [
        (check, by_path[check.path.text])
        for check in policy.record_checks
        if check.path.text in by_path
    ]


_BUDGET_UNAVAILABLE: Final = "budget counters unavailable"


def budget_value(
    budgets: Budgets, payload: str | None, parsed: object, estimated_value_usd: float | None
) -> float | None:
    """The intent's value in USD for budgets; None when it cannot be known.

    With `value_path` the numbers found there (JSON numbers or numeric strings; every
    element of a `[*]` list, summed) times `value_scale`; without a match, or without a
    value_path, `estimated_value_usd`. A duplicate key, a non-numeric or negative value
    makes the value unknown: upstream might read a different number than we counted.
    """
    path = budgets.value_path
    if path is not None and payload:
        root = parsed if parsed is not NOT_JSON else form_pairs(payload)
        if root is not None:
            selection = select(root, path)
            if selection.duplicate_key is not None:
                return None
            if selection.matches:
                total = 0.0
                for _, raw in selection.matches:
                    number = _number(raw)
                    if number is None:
                        return None
                    total += number
                return total * budgets.value_scale
    return estimated_value_usd


def _number(raw: object) -> float | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        value = float(raw)
    elif isinstance(raw, str) and raw.strip() and len(raw) <= 64:
        try:
            value = float(raw.strip())
        except ValueError:
            return None
    else:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _budget_failure(budgets: Budgets, value: float | None, counters: Counters | None) -> str | None:
    scopes = (
        ("agent", budgets.per_agent, "agent_spent_hour_usd", "agent_spent_day_usd"),
        ("policy", budgets.per_policy, "policy_spent_hour_usd", "policy_spent_day_usd"),
    )
    needed = [
        (scope, limits, getattr(counters, hour_field, None), getattr(counters, day_field, None))
        for scope, limits, hour_field, day_field in scopes
        if limits is not None
    ]
    for _, limits, hour, day in needed:
        if (limits.hourly_max_value_usd is not None and hour is None) or (
            limits.daily_max_value_usd is not None and day is None
        ):
            return _BUDGET_UNAVAILABLE  # fail closed: no counts, no write
    if value is None:
        where = budgets.value_path.text if budgets.value_path else "value_path"
        return f"Budget needs the intent's value: no number at {where} and no estimated_value_usd"
    for scope, limits, hour, day in needed:
        for window, limit, spent in (
            ("hour", limits.hourly_max_value_usd, hour),
            ("day", limits.daily_max_value_usd, day),
        ):
            if limit is not None and spent is not None and spent + value > limit:
                return (
                    f"Budget exceeded: {_usd(spent)} spent by this {scope} in the last "
                    f"{window} + {_usd(value)} is over {_usd(limit)}"
                )
    return None


def _usd(amount: float) -> str:
    return f"${amount:,.2f}"


def _rate_limit_failure(limits: RateLimits, rates: RateCounts | None) -> str | None:
    if rates is None:
        return "rate counts unavailable"  # fail closed: no counts, no write
    hourly = limits.per_agent_per_hour
    if hourly is not None and rates.last_hour >= hourly:
        return f"Rate limit exceeded: {rates.last_hour} intents in the last hour (limit {hourly})"
    daily = limits.per_agent_per_day
    if daily is not None and rates.last_day >= daily:
        return f"Rate limit exceeded: {rates.last_day} intents in the last day (limit {daily})"
    return None


def _failed_field_check(checks: tuple[FieldCheck, ...], parsed: object) -> str | None:
    """The block reason of the first failing check, or None when all pass."""
    if not isinstance(parsed, tuple | list):
        # Skipping the checks here would let any non-JSON body through unvalidated.
        return "field_checks require a JSON payload"
    objects: dict[int, dict[str, object]] = {}  # id(pairs) -> dict, shared by all checks
    for check in checks:
        value = _lookup(parsed, check.segments, objects)
        if isinstance(value, _DuplicateKey):
            return f"Field check failed: {check.path}: duplicate key {value.key!r}"
        failure = _check_value(check, value)
        if failure is not None:
            return f"Field check failed: {check.path}: {failure}"
    return None


@dataclass(frozen=True, slots=True)
class _DuplicateKey:
    key: str


def _lookup(
    root: object, segments: tuple[str, ...], objects: dict[int, dict[str, object]]
) -> object:
    """Follow a dot path; numeric segments index lists. `_MISSING` if absent."""
    current = root
    for segment in segments:
        if isinstance(current, tuple):  # JSON object as (key, value) pairs
            as_dict = objects.get(id(current))
            if as_dict is None:
                as_dict = objects[id(current)] = dict(current)
            if len(as_dict) != len(current) and sum(key == segment for key, _ in current) > 1:
                # Upstream parsers disagree on which duplicate wins; refuse to guess.
                return _DuplicateKey(segment)
            current = as_dict.get(segment, _MISSING)
        elif isinstance(current, list):
            # ASCII digits only: no sign (no negative indexing), no other scripts' digits.
            if not (segment.isascii() and segment.isdigit()):
                return _MISSING
            index = int(segment)
            if index >= len(current):
                return _MISSING
            current = current[index]
        else:
            return _MISSING
        if current is _MISSING:
            return _MISSING
    return current


def _check_value(check: FieldCheck, value: object) -> str | None:
    if value is _MISSING or value is None:
        # Other checks apply only to present values; `required` demands presence.
        return "is required" if check.required else None
    if check.min is not None or check.max is not None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "must be a number"
        if not math.isfinite(value):
            return "must be a finite number"
        if check.min is not None and value < check.min:
            return f"{value} is below the minimum {_format_number(check.min)}"
        if check.max is not None and value > check.max:
            return f"{value} is above the maximum {_format_number(check.max)}"
    if check.max_length is not None:
        if not isinstance(value, str | list):
            return "must be a string or list"
        length = len(value)
        if length > check.max_length:
            return f"length {length} exceeds max_length {check.max_length}"
    if check.pattern is not None:
        if not isinstance(value, str):
            return "must be a string"
        if check.pattern.search(value) is None:
            return "does not match pattern"
    return None


def _format_number(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


# --------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------

_TAG_STR = "tag:yaml.org,2002:str"
_TAG_INT = "tag:yaml.org,2002:int"
_TAG_FLOAT = "tag:yaml.org,2002:float"
_TAG_BOOL = "tag:yaml.org,2002:bool"
_TAG_MERGE = "tag:yaml.org,2002:merge"
_TAG_SEQ = "tag:yaml.org,2002:seq"
_TAG_MAP = "tag:yaml.org,2002:map"
_TAG_NAMES = {
    _TAG_STR: "a string",
    _TAG_INT: "an integer",
    _TAG_FLOAT: "a number",
    _TAG_BOOL: "a boolean",
    "tag:yaml.org,2002:null": "null",
    "tag:yaml.org,2002:timestamp": "a date",
    "tag:yaml.org,2002:binary": "binary data",
}
_BOOLEAN_HINT = " (YAML reads unquoted yes/no/on/off/true/false as booleans: quote it)"


@dataclass(frozen=True, slots=True)
class _Parsed:
    """A validated field value and the line of its key (for cross-field errors)."""

    value: Any
    line: int


class _Parser:
    """Walks the YAML node tree (which keeps line numbers) and validates as it goes."""

    def __init__(self, filename: str, loader: yaml.SafeLoader) -> None:
        self.filename = filename
        self._loader = loader

    def error(self, node: Node | None, field: str | None, message: str) -> PolicyError:
        line = None if node is None else node.start_mark.line + 1
        return PolicyError(self.filename, line, field or None, message)

    def describe(self, node: Node) -> str:
        if isinstance(node, MappingNode) and node.tag == _TAG_MAP:
            return "a mapping"
        if isinstance(node, SequenceNode) and node.tag == _TAG_SEQ:
            return "a list"
        return _TAG_NAMES.get(node.tag, f"a value tagged {node.tag}")

    def expected(self, node: Node, field: str, what: str) -> PolicyError:
        hint = _BOOLEAN_HINT if node.tag == _TAG_BOOL else ""
        return self.error(node, field, f"expected {what}, got {self.describe(node)}{hint}")

    def mapping(
        self, node: Node, field: str, allowed: frozenset[str] | None
    ) -> dict[str, tuple[ScalarNode, Node]]:
        """Keys -> (key node, value node); rejects non-string, duplicate and unknown keys."""
        if not isinstance(node, MappingNode) or node.tag != _TAG_MAP:
            raise self.expected(node, field, "a mapping")
        entries: dict[str, tuple[ScalarNode, Node]] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _TAG_MERGE:
                raise self.error(key_node, field, "YAML merge keys (<<) are not supported")
            if not isinstance(key_node, ScalarNode) or key_node.tag != _TAG_STR:
                raise self.error(key_node, field, "keys must be strings")
            key = key_node.value
            key_field = f"{field}.{key}" if field else key
            if key in entries:
                first_line = entries[key][0].start_mark.line + 1
                raise self.error(
                    key_node, key_field, f"duplicate key (first set on line {first_line})"
                )
            if allowed is not None and key not in allowed:
                raise self.error(key_node, key_field, _unknown_key_message(key, allowed))
            entries[key] = (key_node, value_node)
        return entries

    def sequence(self, node: Node, field: str) -> list[Node]:
        if not isinstance(node, SequenceNode) or node.tag != _TAG_SEQ:
            raise self.expected(node, field, "a list")
        return list(node.value)

    def string(self, node: Node, field: str, *, allow_empty: bool = False) -> str:
        if not isinstance(node, ScalarNode) or node.tag != _TAG_STR:
            raise self.expected(node, field, "a string")
        value: str = node.value
        if not allow_empty and not value.strip():
            raise self.error(node, field, "must not be empty")
        return value

    def identifier(self, node: Node, field: str) -> str:
        """A string compared exactly (destination, type): surrounding spaces are a mistake."""
        value = self.string(node, field)
        if value != value.strip():
            raise self.error(node, field, f"{value!r} has leading or trailing whitespace")
        return value

    def integer(self, node: Node, field: str, minimum: int, maximum: int | None = None) -> int:
        if not isinstance(node, ScalarNode) or node.tag != _TAG_INT:
            raise self.expected(node, field, "an integer")
        value: int = self._loader.construct_object(node)
        if value < minimum:
            raise self.error(node, field, f"must be >= {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise self.error(node, field, f"must be <= {maximum}, got {value}")
        return value

    def number(self, node: Node, field: str) -> int | float:
        if not isinstance(node, ScalarNode) or node.tag not in (_TAG_INT, _TAG_FLOAT):
            raise self.expected(node, field, "a number")
        value: int | float = self._loader.construct_object(node)
        if not math.isfinite(value):
            raise self.error(node, field, "must be a finite number")
        return value

    def boolean(self, node: Node, field: str) -> bool:
        if not isinstance(node, ScalarNode) or node.tag != _TAG_BOOL:
            raise self.expected(node, field, "true or false")
        value: bool = self._loader.construct_object(node)
        return value

    def identifier_list(self, node: Node, field: str) -> tuple[str, ...]:
        items = self.sequence(node, field)
        return tuple(self.identifier(item, f"{field}[{i}]") for i, item in enumerate(items))


def _unknown_key_message(key: str, allowed: frozenset[str]) -> str:
    message = f"unknown field {key!r}"
    close = difflib.get_close_matches(key, sorted(allowed), n=1)
    if close:
        message += f" (did you mean {close[0]!r}?)"
    return message + f"; allowed: {', '.join(sorted(allowed))}"


# -- one parser per policy field (shared by the base policy and environment blocks) --


def _parse_description(parser: _Parser, node: Node, field: str) -> str:
    return parser.string(node, field, allow_empty=True)


def _parse_destinations(parser: _Parser, node: Node, field: str) -> tuple[str, ...]:
    return parser.identifier_list(node, field)


def _parse_allowed_types(parser: _Parser, node: Node, field: str) -> tuple[str, ...]:
    items = parser.identifier_list(node, field)
    # Extensions are compared lower-case and without the dot ("CSV", ".csv" -> "csv").
    return tuple(dict.fromkeys(_normalize_type(item) for item in items))


def _parse_block_if_terms(parser: _Parser, node: Node, field: str) -> tuple[str, ...]:
    terms: list[str] = []
    for i, item in enumerate(parser.sequence(node, field)):
        term = parser.string(item, f"{field}[{i}]")
        try:
            TermMatcher([term])
        except ValueError as exc:
            raise parser.error(item, f"{field}[{i}]", str(exc)) from None
        terms.append(term)
    return tuple(terms)


def _parse_require_approval(parser: _Parser, node: Node, field: str) -> str:
    if not isinstance(node, ScalarNode) or node.tag != _TAG_STR:
        raise parser.expected(node, field, '"always" or "never"')
    if node.value not in (ALWAYS, NEVER):
        raise parser.error(node, field, f'must be "always" or "never", got {node.value!r}')
    return str(node.value)


def _parse_enforce(parser: _Parser, node: Node, field: str) -> str:
    if not isinstance(node, ScalarNode) or node.tag != _TAG_STR:
        raise parser.expected(node, field, '"enforce" or "shadow"')
    if node.value not in ("enforce", "shadow"):
        raise parser.error(node, field, f'must be "enforce" or "shadow", got {node.value!r}')
    return str(node.value)


def _parse_count(parser: _Parser, node: Node, field: str) -> int:
    return parser.integer(node, field, minimum=0)


def _parse_expiry_minutes(parser: _Parser, node: Node, field: str) -> int:
    return parser.integer(node, field, minimum=1, maximum=MAX_EXPIRY_MINUTES)


def _parse_require_approvals(parser: _Parser, node: Node, field: str) -> int:
    return parser.integer(node, field, minimum=1, maximum=MAX_REQUIRE_APPROVALS)


_FIELD_CHECK_KEYS = frozenset({"path", "required", "min", "max", "max_length", "pattern"})


def _parse_field_checks(parser: _Parser, node: Node, field: str) -> tuple[FieldCheck, ...]:
    checks: list[FieldCheck] = []
    for i, item in enumerate(parser.sequence(node, field)):
        checks.append(_parse_field_check(parser, item, f"{field}[{i}]"))
    return tuple(checks)


def _parse_field_check(parser: _Parser, node: Node, field: str) -> FieldCheck:
    entries = parser.mapping(node, field, _FIELD_CHECK_KEYS)
    if "path" not in entries:
        raise parser.error(node, f"{field}.path", "required field is missing")
    path_node = entries["path"][1]
    path = parser.identifier(path_node, f"{field}.path")
    segments = tuple(path.split("."))
    if any(not segment for segment in segments):
        raise parser.error(path_node, f"{field}.path", f"{path!r} has an empty path segment")

    def value_of(key: str, parse: Callable[[Node, str], Any]) -> Any:
        return parse(entries[key][1], f"{field}.{key}") if key in entries else None

    required = value_of("required", parser.boolean) or False
    minimum = value_of("min", parser.number)
    maximum = value_of("max", parser.number)
    max_length = value_of("max_length", lambda n, f: parser.integer(n, f, minimum=0))
    pattern = None
    if "pattern" in entries:
        pattern_node = entries["pattern"][1]
        source = parser.string(pattern_node, f"{field}.pattern")
        try:
            pattern = re.compile(source)
        except re.error as exc:
            raise parser.error(
                pattern_node, f"{field}.pattern", f"invalid regular expression: {exc}"
            ) from None
    if not required and all(v is None for v in (minimum, maximum, max_length, pattern)):
        raise parser.error(
            node, field, "needs at least one of required: true, min, max, max_length, pattern"
        )
    if minimum is not None and maximum is not None and minimum > maximum:
        raise parser.error(entries["min"][1], f"{field}.min", f"min {minimum} > max {maximum}")
    return FieldCheck(
        path=path,
        segments=segments,
        required=required,
        min=minimum,
        max=maximum,
        max_length=max_length,
        pattern=pattern,
    )


_RATE_LIMIT_KEYS = frozenset({"per_agent_per_hour", "per_agent_per_day"})


def _parse_rate_limits(parser: _Parser, node: Node, field: str) -> RateLimits:
    entries = parser.mapping(node, field, _RATE_LIMIT_KEYS)
    if not entries:
        raise parser.error(node, field, "set per_agent_per_hour and/or per_agent_per_day")
    limits = {
        key: parser.integer(value_node, f"{field}.{key}", minimum=0)
        for key, (_, value_node) in entries.items()
    }
    return RateLimits(**limits)


def _parse_field_paths(parser: _Parser, node: Node, field: str) -> tuple[FieldPath, ...]:
    paths: list[FieldPath] = []
    for i, item in enumerate(parser.sequence(node, field)):
        paths.append(_field_path(parser, item, f"{field}[{i}]"))
    if not paths:
        raise parser.error(node, field, "list at least one field path")
    return tuple(dict.fromkeys(paths))


def _field_path(parser: _Parser, node: Node, field: str) -> FieldPath:
    text = parser.string(node, field)
    try:
        return parse_field_path(text)
    except ValueError as exc:
        raise parser.error(node, field, f"invalid field path: {exc}") from None


def _kind_list(
    parser: _Parser,
    node: Node,
    field: str,
    kinds: tuple[str, ...],
    groups: Mapping[str, tuple[str, ...]] | None = None,
) -> tuple[str, ...]:
    """A list of kind names; group names expand to their kinds. Unknown names are errors."""
    allowed = frozenset(kinds) | frozenset(groups or {})
    result: list[str] = []
    for i, item in enumerate(parser.sequence(node, field)):
        name = parser.identifier(item, f"{field}[{i}]")
        if name not in allowed:
            raise parser.error(item, f"{field}[{i}]", _unknown_key_message(name, allowed))
        result.extend((groups or {}).get(name, (name,)))
    return tuple(dict.fromkeys(result))


_SQL_KEYS = frozenset({"fields", "block", "require_approval"})


def _parse_sql(parser: _Parser, node: Node, field: str) -> SqlRules:
    entries = parser.mapping(node, field, _SQL_KEYS)
    if "block" not in entries and "require_approval" not in entries:
        raise parser.error(node, field, "set block and/or require_approval (lists of SQL kinds)")
    fields = (
        _parse_field_paths(parser, entries["fields"][1], f"{field}.fields")
        if "fields" in entries
        else ()
    )
    lists = {
        key: _kind_list(parser, entries[key][1], f"{field}.{key}", sql_analyzer.KINDS)
        for key in ("block", "require_approval")
        if key in entries
    }
    both = set(lists.get("block", ())) & set(lists.get("require_approval", ()))
    if both:
        key_node = entries["require_approval"][1]
        raise parser.error(
            key_node,
            f"{field}.require_approval",
            f"{', '.join(sorted(both))} already blocks (listed in block too)",
        )
    return SqlRules(fields, lists.get("block", ()), lists.get("require_approval", ()))


def _parse_pii_kinds(parser: _Parser, node: Node, field: str) -> tuple[str, ...]:
    return _kind_list(parser, node, field, pii_analyzer.KINDS, pii_analyzer.GROUPS)


def _parse_flag(parser: _Parser, node: Node, field: str) -> bool:
    return parser.boolean(node, field)


_RECORD_CHECK_KEYS = frozenset({"path", "max_empty_ratio", "on_fail"})
_ON_FAIL = ("require_approval", "block")


def _parse_record_checks(parser: _Parser, node: Node, field: str) -> tuple[RecordCheck, ...]:
    checks: list[RecordCheck] = []
    seen: set[str] = set()
    for i, item in enumerate(parser.sequence(node, field)):
        where = f"{field}[{i}]"
        entries = parser.mapping(item, where, _RECORD_CHECK_KEYS)
        for required in ("path", "max_empty_ratio"):
            if required not in entries:
                raise parser.error(item, f"{where}.{required}", "required field is missing")
        path_node = entries["path"][1]
        path = _field_path(parser, path_node, f"{where}.path")
        if path.text in seen:
            raise parser.error(path_node, f"{where}.path", f"{path.text!r} is checked twice")
        seen.add(path.text)
        ratio_node = entries["max_empty_ratio"][1]
        ratio = parser.number(ratio_node, f"{where}.max_empty_ratio")
        if not 0 <= ratio <= 1:
            raise parser.error(
                ratio_node, f"{where}.max_empty_ratio", f"must be between 0 and 1, got {ratio}"
            )
        on_fail = "require_approval"
        if "on_fail" in entries:
            on_fail = _choice(parser, entries["on_fail"][1], f"{where}.on_fail", _ON_FAIL)
        checks.append(RecordCheck(path, float(ratio), on_fail))
    if not checks:
        raise parser.error(node, field, "list at least one check")
    return tuple(checks)


def _choice(parser: _Parser, node: Node, field: str, choices: tuple[str, ...]) -> str:
    quoted = " or ".join(f'"{c}"' for c in choices)
    if not isinstance(node, ScalarNode) or node.tag != _TAG_STR:
        raise parser.expected(node, field, quoted)
    if node.value not in choices:
        raise parser.error(node, field, f"must be {quoted}, got {node.value!r}")
    return str(node.value)


def _parse_dedupe_window(parser: _Parser, node: Node, field: str) -> int:
    return parser.integer(node, field, minimum=1, maximum=MAX_DEDUPE_WINDOW_SECONDS)


_BUDGET_KEYS = frozenset({"per_agent", "per_policy", "value_path", "value_scale", "on_exceed"})
_BUDGET_LIMIT_KEYS = frozenset({"hourly_max_value_usd", "daily_max_value_usd"})


def _parse_budgets(parser: _Parser, node: Node, field: str) -> Budgets:
    entries = parser.mapping(node, field, _BUDGET_KEYS)
    if "per_agent" not in entries and "per_policy" not in entries:
        raise parser.error(node, field, "set per_agent and/or per_policy")
    scopes: dict[str, BudgetLimits] = {}
    for scope in ("per_agent", "per_policy"):
        if scope not in entries:
            continue
        scope_node = entries[scope][1]
        limits = parser.mapping(scope_node, f"{field}.{scope}", _BUDGET_LIMIT_KEYS)
        if not limits:
            raise parser.error(
                scope_node,
                f"{field}.{scope}",
                "set hourly_max_value_usd and/or daily_max_value_usd",
            )
        values: dict[str, float] = {}
        for key, (_, value_node) in limits.items():
            number = parser.number(value_node, f"{field}.{scope}.{key}")
            if number < 0:
                raise parser.error(
                    value_node, f"{field}.{scope}.{key}", f"must be >= 0, got {number}"
                )
            values[key] = float(number)
        scopes[scope] = BudgetLimits(**values)
    value_path = None
    if "value_path" in entries:
        value_path = _field_path(parser, entries["value_path"][1], f"{field}.value_path")
    scale = 1.0
    if "value_scale" in entries:
        scale_node = entries["value_scale"][1]
        scale = float(parser.number(scale_node, f"{field}.value_scale"))
        if scale <= 0:
            raise parser.error(scale_node, f"{field}.value_scale", f"must be > 0, got {scale:g}")
    on_exceed = "require_approval"
    if "on_exceed" in entries:
        on_exceed = _choice(parser, entries["on_exceed"][1], f"{field}.on_exceed", _ON_FAIL)
    return Budgets(
        per_agent=scopes.get("per_agent"),
        per_policy=scopes.get("per_policy"),
        value_path=value_path,
        value_scale=scale,
        on_exceed=on_exceed,
    )


# RFC 9110 token characters: what a header name may contain.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _parse_fingerprint_headers(parser: _Parser, node: Node, field: str) -> tuple[str, ...]:
    names: list[str] = []
    for i, item in enumerate(parser.sequence(node, field)):
        name = parser.identifier(item, f"{field}[{i}]")
        if not _HEADER_NAME.fullmatch(name):
            raise parser.error(item, f"{field}[{i}]", f"{name!r} is not a valid header name")
        names.append(name.lower())
    if not names:
        raise parser.error(node, field, "list at least one header name (default: content-type)")
    return tuple(dict.fromkeys(names))


_FieldParser = Callable[[_Parser, Node, str], Any]
_BLOCK_FIELDS: dict[str, _FieldParser] = {
    "description": _parse_description,
    "destinations": _parse_destinations,
    "allowed_types": _parse_allowed_types,
    "block_if_terms": _parse_block_if_terms,
    "require_approval": _parse_require_approval,
    "auto_approve_under": _parse_count,
    "require_approval_over": _parse_count,
    "expiry_minutes": _parse_expiry_minutes,
    "require_approvals": _parse_require_approvals,
    "field_checks": _parse_field_checks,
    "rate_limits": _parse_rate_limits,
    "sql": _parse_sql,
    "block_if_pii": _parse_pii_kinds,
    "require_approval_if_pii": _parse_pii_kinds,
    "require_approval_if_template_error": _parse_flag,
    "record_checks": _parse_record_checks,
    "shell_check_fields": _parse_field_paths,
    "path_check_fields": _parse_field_paths,
    "dedupe_window_seconds": _parse_dedupe_window,
    "budgets": _parse_budgets,
    "enforce": _parse_enforce,
}
_BLOCK_KEYS = frozenset(_BLOCK_FIELDS)
_TOP_LEVEL_KEYS = _BLOCK_KEYS | {"id", "environments", "fingerprint_headers"}


def _parse_block(
    parser: _Parser, entries: dict[str, tuple[ScalarNode, Node]], prefix: str
) -> dict[str, _Parsed]:
    block: dict[str, _Parsed] = {}
    for key, (key_node, value_node) in entries.items():
        if key in _BLOCK_FIELDS:
            value = _BLOCK_FIELDS[key](parser, value_node, prefix + key)
            block[key] = _Parsed(value, key_node.start_mark.line + 1)
    return block


def _merge(base: dict[str, _Parsed], override: dict[str, _Parsed]) -> dict[str, _Parsed]:
    """Environment fields replace base fields; rate_limits merge key by key."""
    merged = dict(base)
    for key, parsed in override.items():
        if key == "rate_limits" and key in base:
            below: RateLimits = base[key].value
            above: RateLimits = parsed.value
            parsed = _Parsed(
                RateLimits(
                    per_agent_per_hour=_first_set(
                        above.per_agent_per_hour, below.per_agent_per_hour
                    ),
                    per_agent_per_day=_first_set(above.per_agent_per_day, below.per_agent_per_day),
                ),
                parsed.line,
            )
        merged[key] = parsed
    return merged


def _first_set(preferred: int | None, fallback: int | None) -> int | None:
    return fallback if preferred is None else preferred


def _check_thresholds(
    parser: _Parser, fields: dict[str, _Parsed], override: dict[str, _Parsed], prefix: str
) -> None:
    """auto_approve_under above require_approval_over would auto-approve counts in between."""
    auto = fields.get("auto_approve_under")
    over = fields.get("require_approval_over")
    if auto is None or over is None or auto.value <= over.value:
        return
    # Point at the environment's own setting when it caused the conflict.
    key = "require_approval_over" if "require_approval_over" in override else "auto_approve_under"
    field_name = prefix + key if key in override else key
    raise PolicyError(
        parser.filename,
        fields[key].line,
        field_name,
        f"auto_approve_under ({auto.value}) is greater than require_approval_over "
        f"({over.value}): record counts between them would be auto-approved",
    )


def _build(policy_id: str, source: str, fields: dict[str, _Parsed], **extra: Any) -> Policy:
    return Policy(id=policy_id, source=source, **{k: v.value for k, v in fields.items()}, **extra)


def parse_policy(text: str, filename: str, *, expected_id: str | None = None) -> Policy:
    """Parse one policy document. Raises PolicyError naming file, line and field.

    `expected_id` (the loader passes the file stem) makes a different `id` an error.
    """
    loader = yaml.SafeLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = None if mark is None else mark.line + 1
            detail = " ".join(part for part in (exc.context, exc.problem) if part)
            raise PolicyError(filename, line, None, f"invalid YAML: {detail}") from None
        except yaml.YAMLError as exc:
            raise PolicyError(filename, None, None, f"invalid YAML: {exc}") from None
        if root is None:
            raise PolicyError(filename, None, None, "policy file is empty")
        parser = _Parser(filename, loader)
        if not isinstance(root, MappingNode) or root.tag != _TAG_MAP:
            raise parser.error(
                root, None, f"a policy must be a mapping, got {parser.describe(root)}"
            )
        return _parse_root(parser, root, expected_id)
    finally:
        loader.dispose()


def _parse_root(parser: _Parser, root: MappingNode, expected_id: str | None) -> Policy:
    entries = parser.mapping(root, "", _TOP_LEVEL_KEYS)
    if "id" not in entries:
        raise parser.error(root, "id", "required field is missing")
    id_node = entries["id"][1]
    policy_id = parser.string(id_node, "id")
    if not validate_policy_id(policy_id):
        raise parser.error(
            id_node,
            "id",
            f"invalid policy id {policy_id!r}: use 1-128 letters, digits, '_', '.', '-', "
            "starting with a letter or digit, without '..'",
        )
    if expected_id is not None and policy_id != expected_id:
        raise parser.error(
            id_node, "id", f"id {policy_id!r} must match the file name {expected_id!r}"
        )

    base = _parse_block(parser, entries, "")
    _check_thresholds(parser, base, {}, "")
    # Top level only: the proxy fingerprints a request before any environment applies.
    top: dict[str, Any] = {}
    if "fingerprint_headers" in entries:
        top["fingerprint_headers"] = _parse_fingerprint_headers(
            parser, entries["fingerprint_headers"][1], "fingerprint_headers"
        )

    environments: dict[str, Policy] = {}
    if "environments" in entries:
        env_entries = parser.mapping(entries["environments"][1], "environments", None)
        for name, (name_node, block_node) in env_entries.items():
            prefix = f"environments.{name}."
            if not name.strip():
                raise parser.error(name_node, "environments", "environment names must not be empty")
            block_entries = parser.mapping(block_node, prefix[:-1], _BLOCK_KEYS)
            override = _parse_block(parser, block_entries, prefix)
            merged = _merge(base, override)
            _check_thresholds(parser, merged, override, prefix)
            environments[name] = _build(policy_id, parser.filename, merged, **top)

    return _build(
        policy_id, parser.filename, base, environments=MappingProxyType(environments), **top
    )
