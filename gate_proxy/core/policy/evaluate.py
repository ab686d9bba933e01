"""`evaluate()`: where every intent is decided, in the order documented in
``gate_proxy.core.policy`` (blocking checks first, then approval rules)."""

from typing import Final

from gate_proxy.core.analyzers import Finding, RecordCheck, analyze, finding_tags
from gate_proxy.core.policy.checks import (
    BUDGET_UNAVAILABLE,
    budget_failure_reason,
    budget_value,
    failed_field_check,
    rate_limit_failure,
)
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
            payload_type = normalize_type(facts.payload_type)
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
        failure = failed_field_check(policy.field_checks, ev.parsed)
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
        failure = rate_limit_failure(limits, rates)
        if failure is not None:
            return _decide(ev, BLOCKED, "rate_limited", failure, "rate_limits")

    value: float | None = None
    budget_failure: str | None = None
    budgets = policy.budgets
    if budgets is not None:
        value = budget_value(budgets, payload, ev.parsed, facts.estimated_value_usd)
        budget_failure = budget_failure_reason(budgets, value, counters)
        if budget_failure is not None and (
            budgets.on_exceed == "block" or budget_failure == BUDGET_UNAVAILABLE
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
