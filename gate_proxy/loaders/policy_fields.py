"""One parser per policy field, on plain data from the located YAML reader.

Strict on purpose: unknown keys and wrong types are errors naming file, line and field,
because a typo must never make a policy laxer than it reads. Shared by the base policy and
its environment blocks (``policy_file.py`` assembles them).
"""

import difflib
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from gate_proxy.core.analyzers import FieldPath, RecordCheck, parse_field_path
from gate_proxy.core.analyzers import pii as pii_analyzer
from gate_proxy.core.analyzers import sql as sql_analyzer
from gate_proxy.core.located import FieldPath as Location
from gate_proxy.core.located import format_field
from gate_proxy.core.policy.model import (
    ALWAYS,
    MAX_DEDUPE_WINDOW_SECONDS,
    MAX_EXPIRY_MINUTES,
    MAX_REQUIRE_APPROVALS,
    NEVER,
    BudgetLimits,
    Budgets,
    FieldCheck,
    PolicyError,
    RateLimits,
    SqlRules,
    normalize_type,
)
from gate_proxy.core.terms import TermMatcher
from gate_proxy.loaders.policy_tools import parse_tools
from gate_proxy.loaders.yaml_reader import YamlDocument, expected

__all__ = ["BLOCK_FIELDS", "BLOCK_KEYS", "PolicyReader", "parse_fingerprint_headers"]


def field_text(path: Location) -> str | None:
    """``("environments", "prod", "sql")`` -> ``environments.prod.sql``; None for the root."""
    return format_field(path) if path else None


class PolicyReader:
    """Typed access to one policy document's values, raising located PolicyErrors.

    A value error points at the line where the value starts; a key error (unknown field)
    at the line of the key.
    """

    def __init__(self, document: YamlDocument) -> None:
        self.document = document
        self.filename = document.source

    def error(
        self, at: Location, message: str, *, field: Location | None = None, key: bool = False
    ) -> PolicyError:
        """An error on the line of `at` (its key line if `key`), naming `field` (default `at`)."""
        line = self.document.key_line(at) if key else self.document.value_line(at)
        return PolicyError(self.filename, line, field_text(at if field is None else field), message)

    def key_line(self, path: Location) -> int | None:
        return self.document.key_line(path)

    def expected(self, value: object, path: Location, what: str) -> PolicyError:
        return self.error(path, expected(what, value))

    def mapping(
        self, value: object, path: Location, allowed: frozenset[str] | None
    ) -> dict[str, Any]:
        """The mapping at `path`; unknown keys are errors (the reader refuses duplicates)."""
        if not isinstance(value, dict):
            raise self.expected(value, path, "a mapping")
        if allowed is not None:
            for key in value:
                if key not in allowed:
                    raise self.error((*path, key), unknown_key_message(key, allowed), key=True)
        return value

    def sequence(self, value: object, path: Location) -> list[Any]:
        if not isinstance(value, list):
            raise self.expected(value, path, "a list")
        return value

    def string(self, value: object, path: Location, *, allow_empty: bool = False) -> str:
        if not isinstance(value, str):
            raise self.expected(value, path, "a string")
        if not allow_empty and not value.strip():
            raise self.error(path, "must not be empty")
        return value

    def identifier(self, value: object, path: Location) -> str:
        """A string compared exactly (destination, type): surrounding spaces are a mistake."""
        text = self.string(value, path)
        if text != text.strip():
            raise self.error(path, f"{text!r} has leading or trailing whitespace")
        return text

    def integer(
        self, value: object, path: Location, minimum: int, maximum: int | None = None
    ) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.expected(value, path, "an integer")
        if value < minimum:
            raise self.error(path, f"must be >= {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise self.error(path, f"must be <= {maximum}, got {value}")
        return value

    def number(self, value: object, path: Location) -> int | float:
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise self.expected(value, path, "a number")
        if not math.isfinite(value):
            raise self.error(path, "must be a finite number")
        return value

    def boolean(self, value: object, path: Location) -> bool:
        if not isinstance(value, bool):
            raise self.expected(value, path, "true or false")
        return value

    def choice(self, value: object, path: Location, choices: tuple[str, ...]) -> str:
        quoted = " or ".join(f'"{c}"' for c in choices)
        if not isinstance(value, str):
            raise self.expected(value, path, quoted)
        if value not in choices:
            raise self.error(path, f"must be {quoted}, got {value!r}")
        return value

    def identifier_list(self, value: object, path: Location) -> tuple[str, ...]:
        items = self.sequence(value, path)
        return tuple(self.identifier(item, (*path, i)) for i, item in enumerate(items))


def unknown_key_message(key: str, allowed: frozenset[str]) -> str:
    message = f"unknown field {key!r}"
    close = difflib.get_close_matches(key, sorted(allowed), n=1)
    if close:
        message += f" (did you mean {close[0]!r}?)"
    return message + f"; allowed: {', '.join(sorted(allowed))}"


# -- one parser per policy field ---------------------------------------------------------


def _parse_description(reader: PolicyReader, value: object, path: Location) -> str:
    return reader.string(value, path, allow_empty=True)


def _parse_destinations(reader: PolicyReader, value: object, path: Location) -> tuple[str, ...]:
    return reader.identifier_list(value, path)


def _parse_allowed_types(reader: PolicyReader, value: object, path: Location) -> tuple[str, ...]:
    items = reader.identifier_list(value, path)
    return tuple(dict.fromkeys(normalize_type(item) for item in items))


def _parse_block_if_terms(reader: PolicyReader, value: object, path: Location) -> tuple[str, ...]:
    terms: list[str] = []
    for i, item in enumerate(reader.sequence(value, path)):
        term = reader.string(item, (*path, i))
        try:
            TermMatcher([term])
        except ValueError as exc:
            raise reader.error((*path, i), str(exc)) from None
        terms.append(term)
    return tuple(terms)


def _parse_require_approval(reader: PolicyReader, value: object, path: Location) -> str:
    return reader.choice(value, path, (ALWAYS, NEVER))


def _parse_enforce(reader: PolicyReader, value: object, path: Location) -> str:
    return reader.choice(value, path, ("enforce", "shadow"))


def _parse_count(reader: PolicyReader, value: object, path: Location) -> int:
    return reader.integer(value, path, minimum=0)


def _parse_expiry_minutes(reader: PolicyReader, value: object, path: Location) -> int:
    return reader.integer(value, path, minimum=1, maximum=MAX_EXPIRY_MINUTES)


def _parse_require_approvals(reader: PolicyReader, value: object, path: Location) -> int:
    return reader.integer(value, path, minimum=1, maximum=MAX_REQUIRE_APPROVALS)


def _parse_dedupe_window(reader: PolicyReader, value: object, path: Location) -> int:
    return reader.integer(value, path, minimum=1, maximum=MAX_DEDUPE_WINDOW_SECONDS)


def _parse_flag(reader: PolicyReader, value: object, path: Location) -> bool:
    return reader.boolean(value, path)


_FIELD_CHECK_KEYS = frozenset({"path", "required", "min", "max", "max_length", "pattern"})


def _parse_field_checks(
    reader: PolicyReader, value: object, path: Location
) -> tuple[FieldCheck, ...]:
    items = reader.sequence(value, path)
    return tuple(_parse_field_check(reader, item, (*path, i)) for i, item in enumerate(items))


def _parse_field_check(reader: PolicyReader, value: object, path: Location) -> FieldCheck:
    entries = reader.mapping(value, path, _FIELD_CHECK_KEYS)
    if "path" not in entries:
        raise reader.error(path, "required field is missing", field=(*path, "path"))
    text = reader.identifier(entries["path"], (*path, "path"))
    segments = tuple(text.split("."))
    if any(not segment for segment in segments):
        raise reader.error((*path, "path"), f"{text!r} has an empty path segment")

    def value_of(key: str, parse: Callable[[object, Location], Any]) -> Any:
        return parse(entries[key], (*path, key)) if key in entries else None

    required = value_of("required", reader.boolean) or False
    minimum = value_of("min", reader.number)
    maximum = value_of("max", reader.number)
    max_length = value_of("max_length", lambda v, p: reader.integer(v, p, minimum=0))
    pattern = None
    if "pattern" in entries:
        source = reader.string(entries["pattern"], (*path, "pattern"))
        try:
            pattern = re.compile(source)
        except re.error as exc:
            raise reader.error((*path, "pattern"), f"invalid regular expression: {exc}") from None
    if not required and all(v is None for v in (minimum, maximum, max_length, pattern)):
        raise reader.error(
            path, "needs at least one of required: true, min, max, max_length, pattern"
        )
    if minimum is not None and maximum is not None and minimum > maximum:
        raise reader.error((*path, "min"), f"min {minimum} > max {maximum}")
    return FieldCheck(
        path=text,
        segments=segments,
        required=required,
        min=minimum,
        max=maximum,
        max_length=max_length,
        pattern=pattern,
    )


_RATE_LIMIT_KEYS = frozenset({"per_agent_per_hour", "per_agent_per_day"})


def _parse_rate_limits(reader: PolicyReader, value: object, path: Location) -> RateLimits:
    entries = reader.mapping(value, path, _RATE_LIMIT_KEYS)
    if not entries:
        raise reader.error(path, "set per_agent_per_hour and/or per_agent_per_day")
    limits = {key: reader.integer(v, (*path, key), minimum=0) for key, v in entries.items()}
    return RateLimits(**limits)


def _parse_field_paths(
    reader: PolicyReader, value: object, path: Location
) -> tuple[FieldPath, ...]:
    items = reader.sequence(value, path)
    paths = [_field_path(reader, item, (*path, i)) for i, item in enumerate(items)]
    if not paths:
        raise reader.error(path, "list at least one field path")
    return tuple(dict.fromkeys(paths))


def _field_path(reader: PolicyReader, value: object, path: Location) -> FieldPath:
    text = reader.string(value, path)
    try:
        return parse_field_path(text)
    except ValueError as exc:
        raise reader.error(path, f"invalid field path: {exc}") from None


def _kind_list(
    reader: PolicyReader,
    value: object,
    path: Location,
    kinds: tuple[str, ...],
    groups: Mapping[str, tuple[str, ...]] | None = None,
) -> tuple[str, ...]:
    """A list of kind names; group names expand to their kinds. Unknown names are errors."""
    allowed = frozenset(kinds) | frozenset(groups or {})
    result: list[str] = []
    for i, item in enumerate(reader.sequence(value, path)):
        name = reader.identifier(item, (*path, i))
        if name not in allowed:
            raise reader.error((*path, i), unknown_key_message(name, allowed))
        result.extend((groups or {}).get(name, (name,)))
    return tuple(dict.fromkeys(result))


_SQL_KEYS = frozenset({"fields", "block", "require_approval"})


def _parse_sql(reader: PolicyReader, value: object, path: Location) -> SqlRules:
    entries = reader.mapping(value, path, _SQL_KEYS)
    if "block" not in entries and "require_approval" not in entries:
        raise reader.error(path, "set block and/or require_approval (lists of SQL kinds)")
    fields = (
        _parse_field_paths(reader, entries["fields"], (*path, "fields"))
        if "fields" in entries
        else ()
    )
    lists = {
        key: _kind_list(reader, entries[key], (*path, key), sql_analyzer.KINDS)
        for key in ("block", "require_approval")
        if key in entries
    }
    both = set(lists.get("block", ())) & set(lists.get("require_approval", ()))
    if both:
        raise reader.error(
            (*path, "require_approval"),
            f"{', '.join(sorted(both))} already blocks (listed in block too)",
        )
    return SqlRules(fields, lists.get("block", ()), lists.get("require_approval", ()))


def _parse_pii_kinds(reader: PolicyReader, value: object, path: Location) -> tuple[str, ...]:
    return _kind_list(reader, value, path, pii_analyzer.KINDS, pii_analyzer.GROUPS)


_RECORD_CHECK_KEYS = frozenset({"path", "max_empty_ratio", "on_fail"})
_ON_FAIL = ("require_approval", "block")


def _parse_record_checks(
    reader: PolicyReader, value: object, path: Location
) -> tuple[RecordCheck, ...]:
    checks: list[RecordCheck] = []
    seen: set[str] = set()
    for i, item in enumerate(reader.sequence(value, path)):
        where = (*path, i)
        entries = reader.mapping(item, where, _RECORD_CHECK_KEYS)
        for required in ("path", "max_empty_ratio"):
            if required not in entries:
                raise reader.error(where, "required field is missing", field=(*where, required))
        field = _field_path(reader, entries["path"], (*where, "path"))
        if field.text in seen:
            raise reader.error((*where, "path"), f"{field.text!r} is checked twice")
        seen.add(field.text)
        ratio = reader.number(entries["max_empty_ratio"], (*where, "max_empty_ratio"))
        if not 0 <= ratio <= 1:
            raise reader.error((*where, "max_empty_ratio"), f"must be between 0 and 1, got {ratio}")
        on_fail = "require_approval"
        if "on_fail" in entries:
            on_fail = reader.choice(entries["on_fail"], (*where, "on_fail"), _ON_FAIL)
        checks.append(RecordCheck(field, float(ratio), on_fail))
    if not checks:
        raise reader.error(path, "list at least one check")
    return tuple(checks)


_BUDGET_KEYS = frozenset({"per_agent", "per_policy", "value_path", "value_scale", "on_exceed"})
_BUDGET_LIMIT_KEYS = frozenset({"hourly_max_value_usd", "daily_max_value_usd"})


def _parse_budgets(reader: PolicyReader, value: object, path: Location) -> Budgets:
    entries = reader.mapping(value, path, _BUDGET_KEYS)
    if "per_agent" not in entries and "per_policy" not in entries:
        raise reader.error(path, "set per_agent and/or per_policy")
    scopes = {
        scope: _parse_budget_limits(reader, entries[scope], (*path, scope))
        for scope in ("per_agent", "per_policy")
        if scope in entries
    }
    value_path = None
    if "value_path" in entries:
        value_path = _field_path(reader, entries["value_path"], (*path, "value_path"))
    scale = 1.0
    if "value_scale" in entries:
        scale = float(reader.number(entries["value_scale"], (*path, "value_scale")))
        if scale <= 0:
            raise reader.error((*path, "value_scale"), f"must be > 0, got {scale:g}")
    on_exceed = "require_approval"
    if "on_exceed" in entries:
        on_exceed = reader.choice(entries["on_exceed"], (*path, "on_exceed"), _ON_FAIL)
    return Budgets(
        per_agent=scopes.get("per_agent"),
        per_policy=scopes.get("per_policy"),
        value_path=value_path,
        value_scale=scale,
        on_exceed=on_exceed,
    )


def _parse_budget_limits(reader: PolicyReader, value: object, path: Location) -> BudgetLimits:
    limits = reader.mapping(value, path, _BUDGET_LIMIT_KEYS)
    if not limits:
        raise reader.error(path, "set hourly_max_value_usd and/or daily_max_value_usd")
    values: dict[str, float] = {}
    for key, limit in limits.items():
        number = reader.number(limit, (*path, key))
        if number < 0:
            raise reader.error((*path, key), f"must be >= 0, got {number}")
        values[key] = float(number)
    return BudgetLimits(**values)


# RFC 9110 token characters: what a header name may contain.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def parse_fingerprint_headers(
    reader: PolicyReader, value: object, path: Location
) -> tuple[str, ...]:
    names: list[str] = []
    for i, item in enumerate(reader.sequence(value, path)):
        name = reader.identifier(item, (*path, i))
        if not _HEADER_NAME.fullmatch(name):
            raise reader.error((*path, i), f"{name!r} is not a valid header name")
        names.append(name.lower())
    if not names:
        raise reader.error(path, "list at least one header name (default: content-type)")
    return tuple(dict.fromkeys(names))


FieldParser = Callable[[PolicyReader, Any, Location], Any]
# The fields a policy and each of its environment blocks may set.
BLOCK_FIELDS: dict[str, FieldParser] = {
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
    "tools": parse_tools,
}
BLOCK_KEYS = frozenset(BLOCK_FIELDS)
