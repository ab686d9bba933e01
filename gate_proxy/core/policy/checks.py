"""The limit checks of `evaluate()`: field checks, rate limits and budgets (pure)."""

import math
from dataclasses import dataclass
from typing import Final

from gate_proxy.core.analyzers.fields import form_pairs, select_values
from gate_proxy.core.policy.model import Budgets, FieldCheck, RateLimits
from gate_proxy.core.terms import NOT_JSON, decode_json

_MISSING: Final = object()

BUDGET_UNAVAILABLE: Final = "budget counters unavailable"


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
            selection = select_values(root, path.segments)
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


def budget_failure_reason(
    budgets: Budgets,
    value: float | None,
    spent: tuple[float | None, float | None, float | None, float | None] | None,
) -> str | None:
    """Why the intent's value is over a budget, or None.

    `spent` is (agent last hour, agent last day, policy last hour, policy last day), None
    where not counted: a limit whose count is missing fails closed (BUDGET_UNAVAILABLE).
    """
    agent_hour, agent_day, policy_hour, policy_day = spent or (None, None, None, None)
    needed = [
        (scope, limits, hour, day)
        for scope, limits, hour, day in (
            ("agent", budgets.per_agent, agent_hour, agent_day),
            ("policy", budgets.per_policy, policy_hour, policy_day),
        )
        if limits is not None
    ]
    for _, limits, hour, day in needed:
        if (limits.hourly_max_value_usd is not None and hour is None) or (
            limits.daily_max_value_usd is not None and day is None
        ):
            return BUDGET_UNAVAILABLE  # fail closed: no counts, no write
    if value is None:
        where = budgets.value_path.text if budgets.value_path else "value_path"
        return f"Budget needs the intent's value: no number at {where} and no estimated_value_usd"
    for scope, limits, hour, day in needed:
        for window, limit, used in (
            ("hour", limits.hourly_max_value_usd, hour),
            ("day", limits.daily_max_value_usd, day),
        ):
            if limit is not None and used is not None and used + value > limit:
                return (
                    f"Budget exceeded: {_usd(used)} spent by this {scope} in the last "
                    f"{window} + {_usd(value)} is over {_usd(limit)}"
                )
    return None


def _usd(amount: float) -> str:
    return f"${amount:,.2f}"


def rate_limit_failure(limits: RateLimits, rates: tuple[int, int] | None) -> str | None:
    """Why the agent is over a rate limit, or None; `rates` is (last hour, last day)."""
    if rates is None:
        return "rate counts unavailable"  # fail closed: no counts, no write
    last_hour, last_day = rates
    hourly = limits.per_agent_per_hour
    if hourly is not None and last_hour >= hourly:
        return f"Rate limit exceeded: {last_hour} intents in the last hour (limit {hourly})"
    daily = limits.per_agent_per_day
    if daily is not None and last_day >= daily:
        return f"Rate limit exceeded: {last_day} intents in the last day (limit {daily})"
    return None


def failed_field_check(checks: tuple[FieldCheck, ...], parsed: object) -> str | None:
    """The block reason of the first failing check, or None when all pass."""
    if not isinstance(parsed, tuple | list):
        # Skipping the checks here would let any non-JSON body through unvalidated.
        return "field_checks require a JSON payload"
    objects: dict[int, dict[str, object]] = {}  # id(pairs) -> dict, shared by all checks
    for check in checks:
        value = _lookup(parsed, check.segments, objects)
        if isinstance(value, _DuplicateKey):
            return f"Field check failed: {check.path}: duplicate key {value.key!r}"
        if value is _JSON_IN_STRING:
            # Some servers (FastMCP's argument pre-parsing, lenient binders) decode such a
            # string and act on the structure the check could not see: refuse to guess.
            return (
                f"Field check failed: {check.path}: the path runs through a string that "
                "holds JSON; send the structure itself"
            )
        failure = _check_value(check, value)
        if failure is not None:
            return f"Field check failed: {check.path}: {failure}"
    return None


@dataclass(frozen=True, slots=True)
class _DuplicateKey:
    key: str


_JSON_IN_STRING: Final = object()


def _holds_json(text: str) -> bool:
    stripped = text.strip()
    return stripped[:1] in ("{", "[") and isinstance(decode_json(stripped), tuple | list)


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
        elif isinstance(current, str) and _holds_json(current):
            return _JSON_IN_STRING
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
