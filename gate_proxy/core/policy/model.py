"""The policy model: a parsed `Policy` and its parts, and the inputs and outputs of
`evaluate()` (`IntentFacts`, `RateCounts`, `Counters`, `Decision`).

Pure: no YAML here. ``gate_proxy.loaders.policy_file`` turns policy files into a `Policy`.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from gate_proxy.core.analyzers import AnalyzerConfig, FieldPath, Finding, RecordCheck
from gate_proxy.core.intents import Status
from gate_proxy.core.located import LocatedError
from gate_proxy.core.mcp.rules import ToolRules
from gate_proxy.core.terms import TermMatcher

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
    # MCP endpoints (`protocol: mcp` in the registry): which tools are reads, need a human,
    # are blocked or are the only ones allowed. The proxy edge applies it (docs/mcp.md).
    tools: ToolRules | None = None
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


def normalize_type(payload_type: str) -> str:
    """Payload types compare lower-case and without a dot ("CSV", ".csv" -> "csv")."""
    return payload_type.strip().lower().removeprefix(".")
