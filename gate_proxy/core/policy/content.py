"""The rules a body alone decides, in evaluation order (no counts needed): the blocking
ones (terms, field checks, SQL, shell, paths, PII, record checks) and the review ones
(SQL, PII, templates, record checks). `evaluate()` asks for them lazily, an `Analysis`
computes them ahead. PURE."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gate_proxy.core.analyzers import Finding, RecordCheck
from gate_proxy.core.policy.checks import failed_field_check
from gate_proxy.core.policy.model import Policy

if TYPE_CHECKING:
    from gate_proxy.core.policy.evaluate import _Evaluation

# What a content rule decided: (reason_code, human reason, rule).
Ruling = tuple[str, str, str]


def content_block(policy: Policy, ev: _Evaluation) -> Ruling | None:
    term = ev.blocked_term()
    if term is not None:
        reason = f"Payload contains blocked term: {term}"
        return ("blocked_term_detected", reason, "block_if_terms")

    if policy.field_checks:
        failure = failed_field_check(policy.field_checks, ev.parsed)
        if failure is not None:
            return ("field_check_failed", failure, "field_checks")

    sql = policy.sql
    if sql is not None and sql.block:
        hit = _sql_hit(ev.of("sql"), sql.block)
        if hit is not None:
            return ("sql_blocked", f"SQL not allowed: {_describe(hit)}", "sql.block")

    for analyzer, rule, code in (
        ("shell", "shell_check_fields", "shell_injection_detected"),
        ("path", "path_check_fields", "path_traversal_detected"),
    ):
        if getattr(policy, rule):
            hits = ev.of(analyzer)
            if hits:
                label = "Shell injection" if analyzer == "shell" else "Path traversal"
                return (code, f"{label}: {_describe(hits[0])}", rule)

    if policy.block_if_pii:
        hit = _pii_hit(ev, policy.block_if_pii)
        if hit is not None:
            return ("pii_detected", _pii_reason(hit), "block_if_pii")

    for check, finding in _record_failures(policy, ev):
        if check.on_fail == "block":
            reason = f"Record check failed: {_describe(finding)}"
            return ("record_check_failed", reason, "record_checks")
    return None


def content_pending(policy: Policy, ev: _Evaluation) -> Ruling | None:
    sql = policy.sql
    if sql is not None and sql.require_approval:
        hit = _sql_hit(ev.of("sql"), sql.require_approval)
        if hit is not None:
            reason = f"SQL needs review: {_describe(hit)}"
            return ("sql_review_required", reason, "sql.require_approval")
    if policy.require_approval_if_pii:
        hit = _pii_hit(ev, policy.require_approval_if_pii)
        if hit is not None:
            return ("pii_review_required", _pii_reason(hit), "require_approval_if_pii")
    if policy.require_approval_if_template_error:
        hits = ev.of("template")
        if hits:
            reason = f"Unresolved template placeholder: {_describe(hits[0])}"
            return ("template_error", reason, "require_approval_if_template_error")
    failures = _record_failures(policy, ev)
    if failures:
        reason = f"Record check failed: {_describe(failures[0][1])}"
        return ("record_check_failed", reason, "record_checks")
    return None


def _describe(finding: Finding) -> str:
    where = "" if finding.location in ("", "payload") else f" at {finding.location}"
    return f"{finding.type}{where} ({finding.detail})"


def _sql_hit(findings: list[Finding], kinds: tuple[str, ...]) -> Finding | None:
    for finding in findings:
        # Text too large to parse counts as every kind: fail closed.
        if finding.kind in kinds or finding.kind == "too_large":
            return finding
    return None


def _pii_hit(ev: _Evaluation, kinds: tuple[str, ...]) -> Finding | None:
    """The first PII or secret finding of one of `kinds`, in the analyzer's order."""
    for finding in ev.findings:
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
    if not policy.record_checks:
        return []
    records = ev.of("record")
    if not records:
        return []
    by_path = {f.location: f for f in records}
    return [
        (check, by_path[check.path.text])
        for check in policy.record_checks
        if check.path.text in by_path
    ]
