"""`evaluate()`: where every intent is decided, in the order documented in
``gate_proxy.core.policy`` (blocking checks first, then approval rules)."""

from typing import Final

from gate_proxy.core.analyzers import Finding, analyze, finding_tags
from gate_proxy.core.policy.checks import (
    BUDGET_UNAVAILABLE,
    budget_failure_reason,
    budget_value,
    rate_limit_failure,
)
from gate_proxy.core.policy.content import Ruling, content_block, content_pending
from gate_proxy.core.policy.model import (
    ALWAYS,
    APPROVED,
    BLOCKED,
    DEFAULT_EXPIRY_MINUTES,
    DUPLICATE,
    NEVER,
    PENDING,
    Counters,
    Decision,
    IntentFacts,
    Policy,
    RateCounts,
    normalize_type,
)
from gate_proxy.core.risk import cached_risk_score
from gate_proxy.core.terms import NOT_JSON, decode_json, json_strings


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


# --------------------------------------------------------------------------------------
# evaluate()
# --------------------------------------------------------------------------------------

_NOT_PARSED: Final = object()
_NOT_YET: Final = object()


class _Evaluation:
    """One evaluate() call: the payload is decoded and analysed at most once, on demand.

    Everything here depends on the policy and the facts only, never on the counts, so an
    `Analysis` computes it all ahead and evaluate() inside the store's write transaction
    only compares numbers.
    """

    __slots__ = (
        "_block",
        "_findings",
        "_parsed",
        "_pending",
        "_tags",
        "_term",
        "_type",
        "_value",
        "by_analyzer",
        "facts",
        "policy",
    )

    def __init__(self, policy: Policy | None, facts: IntentFacts) -> None:
        self.policy = policy
        self.facts = facts
        self._parsed: object = _NOT_PARSED
        self._findings: tuple[Finding, ...] | None = None
        self.by_analyzer: dict[str, list[Finding]] = {}
        self._term: object = _NOT_YET
        self._type: object = _NOT_YET
        self._block: object = _NOT_YET
        self._pending: object = _NOT_YET
        self._value: object = _NOT_YET
        self._tags: tuple[str, ...] | None = None

    def prepare(self) -> None:
        """Compute every content ruling now (an `Analysis`), in evaluation order."""
        _ = self.findings
        self.blocked_term()
        policy = self.policy
        if policy is None:
            return
        if policy._type_set is not None:
            self.payload_type()
        if self.content_block() is None:
            self.content_pending()
        if policy.budgets is not None:
            self.value()
        self.tags()

    def blocked_term(self) -> str | None:
        """The first `block_if_terms` term in the payload (None if none or no terms)."""
        if self._term is _NOT_YET:
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
                findings: tuple[Finding, ...] = ()
            else:
                findings = analyze(
                    self.facts.payload,
                    self.parsed if self._parsed is not _NOT_PARSED or _wants_structure(policy)
                    else None,
                    destination_tags=self.facts.destination_tags,
                    config=policy.analyzer_config,
                )  # fmt: skip
            grouped: dict[str, list[Finding]] = {}
            for finding in findings:
                grouped.setdefault(finding.analyzer, []).append(finding)
            self.by_analyzer = grouped
            self._findings = findings
        return self._findings

    def of(self, analyzer: str) -> list[Finding]:
        _ = self.findings
        return self.by_analyzer.get(analyzer, [])

    def tags(self) -> tuple[str, ...]:
        """The facts' sensitivity tags plus the findings' (for the risk score)."""
        if self._tags is None:
            tags = self.facts.sensitivity_tags
            findings = self.findings
            if findings:
                extra = [tag for tag in finding_tags(findings) if tag not in tags]
                tags = (*tags, *extra)
            self._tags = tags
        return self._tags

    def payload_type(self) -> str:
        if self._type is _NOT_YET:
            facts = self.facts
            if facts.payload_type is not None:
                self._type = normalize_type(facts.payload_type)
            elif facts.payload is None:
                self._type = "text"
            else:
                self._type = _payload_type(facts.payload, self.parsed)
        return self._type  # type: ignore[return-value]

    def value(self) -> float | None:
        """The intent's value for the budgets (the policy has budgets)."""
        if self._value is _NOT_YET:
            budgets = self.policy.budgets  # type: ignore[union-attr]
            assert budgets is not None
            facts = self.facts
            parsed = self.parsed if budgets.value_path is not None and facts.payload else None
            self._value = budget_value(budgets, facts.payload, parsed, facts.estimated_value_usd)
        return self._value  # type: ignore[return-value]

    def content_block(self) -> Ruling | None:
        """The first blocking rule the content alone decides: terms, field checks, SQL,
        shell, paths, PII, record checks (in that order)."""
        if self._block is _NOT_YET:
            self._block = content_block(self.policy, self)  # type: ignore[arg-type]
        return self._block  # type: ignore[return-value]

    def risk(self, value: float | None) -> tuple[float, str]:
        """The risk score and level (the value the budgets counted, else the estimate)."""
        policy, facts = self.policy, self.facts
        return cached_risk_score(
            facts.destination,
            facts.record_count,
            None if policy is None else policy.record_threshold,
            value if value is not None else facts.estimated_value_usd,
            self.tags(),
        )

    def decision(
        self,
        status: str,
        reason_code: str,
        block_reason: str | None,
        rule: str,
        value: float | None = None,
    ) -> Decision:
        policy = self.policy
        score, level = self.risk(value)
        return Decision(
            status=status,
            reason_code=reason_code,
            block_reason=block_reason if status in (BLOCKED, DUPLICATE) else None,
            risk_score=score,
            risk_level=level,
            expiry_minutes=DEFAULT_EXPIRY_MINUTES if policy is None else policy.expiry_minutes,
            require_approvals=1 if policy is None else policy.require_approvals,
            rule=rule,
            findings=self.findings,
            tags=self.tags(),
            value_usd=value,
        )

    def content_pending(self) -> Ruling | None:
        """The first review rule the content alone decides: SQL, PII, templates, records."""
        if self._pending is _NOT_YET:
            self._pending = content_pending(self.policy, self)  # type: ignore[arg-type]
        return self._pending  # type: ignore[return-value]


def _wants_structure(policy: Policy) -> bool:
    config = policy.analyzer_config
    return bool(
        config.record_checks or config.shell_fields or config.path_fields or config.sql_fields
    )


class Analysis:
    """The content work of one decision (parse, analyzers, term scan, field checks, the
    budget value: every rule the content alone decides), done ahead.

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
            self._evaluation.prepare()


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
    ev, status, reason_code, block_reason, rule, value = rule_intent(
        policy,
        facts,
        None if rates is None else (rates.last_hour, rates.last_day),
        None
        if counters is None
        else (
            counters.agent_spent_hour_usd,
            counters.agent_spent_day_usd,
            counters.policy_spent_hour_usd,
            counters.policy_spent_day_usd,
        ),
        None if counters is None else counters.duplicate_within_window,
        None if counters is None else counters.duplicate_of,
        analysis,
    )
    return ev.decision(status, reason_code, block_reason, rule, value)


# (the evaluation, status, reason_code, block_reason, rule, value_usd)
Ruled = tuple["_Evaluation", str, str, str | None, str, float | None]


def rule_intent(
    policy: Policy | None,
    facts: IntentFacts,
    rates: tuple[int, int] | None,
    spent: tuple[float | None, float | None, float | None, float | None] | None,
    duplicate: bool | None,
    duplicate_of: str | None,
    analysis: Analysis | None = None,
) -> Ruled:
    """`evaluate()` without building the `Decision`: the counts as plain values, so the
    decider (core/decide.py) builds its verdict with no intermediate objects.

    `rates` is (last hour, last day) and `spent` (agent hour, agent day, policy hour,
    policy day), None where not counted; `duplicate` None means the duplicate window
    could not be checked. Whatever a rule needs and lacks blocks (fail closed).
    """
    if policy is None:
        return (
            _Evaluation(None, facts),
            BLOCKED,
            "policy_not_found",
            "No policy found",
            "policy",
            None,
        )
    policy = policy.for_environment(facts.environment)
    if analysis is not None:
        ev = analysis._evaluation
        if ev.policy is not policy or ev.facts is not facts:
            raise ValueError("analysis was made for another policy or facts")
    else:
        ev = _Evaluation(policy, facts)

    if policy._destination_set is not None and facts.destination not in policy._destination_set:
        reason = f"Destination not allowed by policy: {facts.destination}"
        return ev, BLOCKED, "destination_not_allowed", reason, "destinations", None

    if policy._type_set is not None:
        payload_type = ev.payload_type()
        if payload_type not in policy._type_set:
            reason = f"Payload type not allowed: {payload_type}"
            return ev, BLOCKED, "payload_type_not_allowed", reason, "allowed_types", None

    window = policy.dedupe_window_seconds
    if window is not None:
        if duplicate is None:
            reason = "duplicate check unavailable"  # fail closed: no count, no write
            return ev, BLOCKED, "duplicate_check_unavailable", reason, "dedupe_window_seconds", None
        if duplicate:
            original = duplicate_of or "an earlier intent"
            reason = (
                f"Duplicate of {original}: same agent, destination and request within {window} s"
            )
            return ev, DUPLICATE, "duplicate_within_window", reason, "dedupe_window_seconds", None

    block = ev.content_block()
    if block is not None:
        return ev, BLOCKED, block[0], block[1], block[2], None

    limits = policy.rate_limits
    if limits is not None:
        failure = rate_limit_failure(limits, rates)
        if failure is not None:
            return ev, BLOCKED, "rate_limited", failure, "rate_limits", None

    value: float | None = None
    budget_failure: str | None = None
    budgets = policy.budgets
    if budgets is not None:
        value = ev.value()
        budget_failure = budget_failure_reason(budgets, value, spent)
        if budget_failure is not None and (
            budgets.on_exceed == "block" or budget_failure == BUDGET_UNAVAILABLE
        ):
            return ev, BLOCKED, "budget_exceeded", budget_failure, "budgets", value

    # -- approval rules: every blocking check above has passed --
    pending = ev.content_pending()
    if pending is not None:
        return ev, PENDING, pending[0], pending[1], pending[2], value
    if budget_failure is not None:
        return ev, PENDING, "budget_exceeded", budget_failure, "budgets", value

    approval = policy.require_approval
    if approval == ALWAYS:
        return ev, PENDING, "manual_review_required", None, "require_approval", value
    if approval == NEVER:
        return ev, APPROVED, "approved_by_policy", None, "require_approval", value
    record_count = 1 if facts.record_count is None else facts.record_count
    if policy.auto_approve_under is not None and record_count <= policy.auto_approve_under:
        return ev, APPROVED, "approved_by_policy", None, "auto_approve_under", value
    if policy.require_approval_over is not None and record_count > policy.require_approval_over:
        return ev, PENDING, "record_threshold_exceeded", None, "require_approval_over", value
    return ev, PENDING, "manual_review_required", None, "default", value
