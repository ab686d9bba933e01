"""The 0-1 risk score shown to reviewers (seed 004, "Risk score").

The score informs triage only; it never changes a policy decision.

    destination category        financial 0.4, messaging/data-write 0.3, anything else 0.2
    record count vs threshold   0 for a single record, else 0.3 * min(count / threshold, 1)
    estimated_value_usd > 1000  +0.2
    each sensitivity tag        +0.1 (distinct tags, case-insensitive)

The sum is capped at 1.0 and rounded to two decimals. Levels: < 0.25 low, < 0.5 medium,
< 0.75 high, else critical.
"""

import math
import re
from collections.abc import Iterable
from functools import lru_cache

__all__ = [
    "NOMINAL_RECORD_THRESHOLD",
    "cached_risk_score",
    "destination_category",
    "record_count_factor",
    "risk_level",
    "risk_score",
]

_FINANCIAL = frozenset(
    {
        "stripe",
        "refund",
        "payment",
        "payout",
        "transfer",
        "bank",
        "quickbooks",
        "netsuite",
        "journal",
        "invoice",
        "charge",
        "wire",
        "ach",
    }
)
_MESSAGING_OR_DATA_WRITE = frozenset(
    {
        "email",
        "send",
        "sendgrid",
        "loops",
        "mail",
        "sms",
        "salesforce",
        "hubspot",
        "import",
        "contacts",
        "crm",
        "database",
        "db",
        "delete",
        "publish",
    }
)
_CATEGORIES: tuple[tuple[str, float, frozenset[str]], ...] = (
    ("financial", 0.4, _FINANCIAL),
    ("messaging", 0.3, _MESSAGING_OR_DATA_WRITE),
)
_DEFAULT_CATEGORY = ("general", 0.2)

_SEGMENT_SEPARATORS = re.compile(r"[.\-_/:\s]+")
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")

# Used when a policy sets neither auto_approve_under nor require_approval_over.
NOMINAL_RECORD_THRESHOLD = 100
_HIGH_VALUE_USD = 1000.0


@lru_cache(maxsize=4096)
def destination_category(destination: str) -> tuple[str, float]:
    """Category and base score of a destination, by whole name segments.

    Segments are split on . - _ / : (and camelCase humps), compared case-insensitively;
    a trailing plural "s" is ignored ("payments" counts as "payment"). Substrings never
    count: "coaching.email" is messaging, not financial, although "coaching" contains "ach".
    The riskiest matching category wins.
    """
    segments: set[str] = set()
    for part in _SEGMENT_SEPARATORS.split(_CAMEL_BOUNDARY.sub(".", destination)):
        segment = part.casefold()
        if segment:
            segments.add(segment)
            if len(segment) > 2 and segment.endswith("s"):
                segments.add(segment[:-1])
    for name, score, words in _CATEGORIES:
        if not words.isdisjoint(segments):
            return name, score
    return _DEFAULT_CATEGORY


def record_count_factor(record_count: int | None, threshold: int | None) -> float:
    """0 for a single record, rising linearly to 0.3 when the count reaches the threshold."""
    count = 1 if record_count is None else record_count
    if count <= 1:
        return 0.0
    limit = NOMINAL_RECORD_THRESHOLD if threshold is None else max(threshold, 1)
    return 0.3 * min(count / limit, 1.0)


def risk_level(score: float) -> str:
    if score < 0.25:
        return "low"
    if score < 0.5:
        return "medium"
    if score < 0.75:
        return "high"
    return "critical"


@lru_cache(maxsize=4096)
def cached_risk_score(
    destination: str,
    record_count: int | None,
    threshold: int | None,
    estimated_value_usd: float | None,
    sensitivity_tags: tuple[str, ...],
) -> tuple[float, str]:
    """`risk_score` memoised on its (hashable) arguments, for the evaluate() hot path."""
    return risk_score(destination, record_count, threshold, estimated_value_usd, sensitivity_tags)


def risk_score(
    destination: str,
    record_count: int | None,
    threshold: int | None,
    estimated_value_usd: float | None,
    sensitivity_tags: Iterable[str],
) -> tuple[float, str]:
    """Return (score rounded to 2 decimals, level). `record_count` None means 1."""
    score = destination_category(destination)[1]
    score += record_count_factor(record_count, threshold)
    if estimated_value_usd is not None and (
        # A non-finite value is malformed input: count it as high rather than ignore it.
        not math.isfinite(estimated_value_usd) or estimated_value_usd > _HIGH_VALUE_USD
    ):
        score += 0.2
    if sensitivity_tags:
        distinct_tags = {tag.strip().casefold() for tag in sensitivity_tags} - {""}
        score += 0.1 * len(distinct_tags)
    score = round(min(score, 1.0), 2)
    return score, risk_level(score)
