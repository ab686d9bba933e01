"""Policies: the `Policy` model (model.py) and `evaluate()` (evaluate.py), where every intent
is decided; content.py holds the rules the body alone decides (computed ahead by an
`Analysis`, outside the store's write), checks.py the limit checks. Policy files are read
by ``gate_proxy.loaders.policy_file``; no YAML in core.

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
"""

from gate_proxy.core.policy.checks import budget_value
from gate_proxy.core.policy.evaluate import Analysis, analyze_intent, detect_payload_type, evaluate
from gate_proxy.core.policy.model import (
    DEFAULT_EXPIRY_MINUTES,
    BudgetLimits,
    Budgets,
    Counters,
    Decision,
    FieldCheck,
    IntentFacts,
    Policy,
    PolicyError,
    RateCounts,
    RateLimits,
    SqlRules,
    validate_policy_id,
)

__all__ = [
    "DEFAULT_EXPIRY_MINUTES",
    "Analysis",
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
    "analyze_intent",
    "budget_value",
    "detect_payload_type",
    "evaluate",
    "validate_policy_id",
]
