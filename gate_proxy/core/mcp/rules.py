"""A policy's ``tools:`` block: which MCP tools are reads, need a human, are blocked, or are
the only ones allowed.

Pure: stdlib only. The loader (``loaders/policy_fields.py``) builds `ToolRules`; the proxy
edge asks `rule_for_tool` once per ``tools/call`` (docs/mcp.md, "Evaluation order").

Restrictive rules and permissive rules match differently, on purpose. A server may look a
tool up case-insensitively, so ``block`` and ``require_approval`` match the name in any
case (``Issue_Refund`` is caught by ``issue_refund``); ``read`` and ``allow`` match it
exactly, so an odd spelling never earns the lenient treatment. Names outside printable
ASCII (1-128 characters, no spaces) are refused outright: the MCP spec recommends
``[A-Za-z0-9_.-]``, and servers normalise Unicode (width, compatibility forms, zero-width
characters) in ways the gate cannot predict.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

__all__ = [
    "MAX_TOOL_NAME",
    "ToolPattern",
    "ToolRule",
    "ToolRules",
    "ToolRuling",
    "rule_for_tool",
    "valid_tool_name",
    "valid_tool_pattern",
]

MAX_TOOL_NAME: Final = 128


def valid_tool_name(name: str) -> bool:
    """Printable ASCII without spaces, 1-128 characters."""
    return (
        0 < len(name) <= MAX_TOOL_NAME
        and name.isascii()
        and name.isprintable()
        and (" " not in name)
    )


def valid_tool_pattern(text: str) -> bool:
    """A tool name in which ``*`` stands for any run of characters."""
    return valid_tool_name(text)


@dataclass(frozen=True, slots=True)
class ToolPattern:
    """A tool name or ``*`` glob, compiled once when the policy loads."""

    text: str
    exact: re.Pattern[str] = field(init=False, repr=False, compare=False)
    folded: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "exact", _compile(self.text))
        object.__setattr__(self, "folded", _compile(self.text.casefold()))

    def matches_exactly(self, name: str) -> bool:
        return self.exact.fullmatch(name) is not None

    def matches_any_case(self, name: str) -> bool:
        return self.folded.fullmatch(name.casefold()) is not None


def _compile(text: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in text.split("*")), re.DOTALL)


@dataclass(frozen=True, slots=True)
class ToolRules:
    """The ``tools:`` block of a policy (or of one of its environments)."""

    read: tuple[ToolPattern, ...] = ()
    require_approval: tuple[ToolPattern, ...] = ()
    block: tuple[ToolPattern, ...] = ()
    allow: tuple[ToolPattern, ...] | None = None  # None: any tool the other rules let by
    # Record counts: the first pattern that matches the name (any case) names the path
    # into the arguments (`contacts.length`) whose count the thresholds compare.
    records: tuple[tuple[ToolPattern, str], ...] = ()

    def record_path(self, name: str) -> str | None:
        for pattern, path in self.records:
            if pattern.matches_any_case(name):
                return path
        return None


class ToolRuling(StrEnum):
    INVALID = "invalid"  # refused: the name is not one servers read alike
    BLOCK = "block"  # refused: `block` matches
    NOT_ALLOWED = "not_allowed"  # refused: `allow` is set and does not list it
    REVIEW = "review"  # the policy decides; an approval still needs a human
    READ = "read"  # forwarded without an intent, like protocol traffic
    POLICY = "policy"  # the policy decides on the arguments


@dataclass(frozen=True, slots=True)
class ToolRule:
    ruling: ToolRuling
    pattern: str | None = None  # the tools: entry that decided

    @property
    def refusal(self) -> tuple[str, str] | None:
        """(reason_code, message) for the refusing rulings."""
        if self.ruling is ToolRuling.INVALID:
            return (
                "mcp_tool_name_invalid",
                f"tool names are 1-{MAX_TOOL_NAME} printable ASCII characters without spaces",
            )
        if self.ruling is ToolRuling.BLOCK:
            return ("tool_blocked", f"the policy blocks this tool (tools.block: {self.pattern})")
        if self.ruling is ToolRuling.NOT_ALLOWED:
            return ("tool_not_allowed", "the policy's tools.allow list does not name this tool")
        return None


_POLICY: Final = ToolRule(ToolRuling.POLICY)


def rule_for_tool(rules: ToolRules | None, name: str) -> ToolRule:
    """How the ``tools:`` block treats ``name``, first match wins:

    invalid name -> block (any case) -> allow (exact, when set) -> require_approval (any
    case) -> read (exact) -> the policy.
    """
    if not valid_tool_name(name):
        return ToolRule(ToolRuling.INVALID)
    if rules is None:
        return _POLICY
    for pattern in rules.block:
        if pattern.matches_any_case(name):
            return ToolRule(ToolRuling.BLOCK, pattern.text)
    if rules.allow is not None and not any(p.matches_exactly(name) for p in rules.allow):
        return ToolRule(ToolRuling.NOT_ALLOWED)
    for pattern in rules.require_approval:
        if pattern.matches_any_case(name):
            return ToolRule(ToolRuling.REVIEW, pattern.text)
    for pattern in rules.read:
        if pattern.matches_exactly(name):
            return ToolRule(ToolRuling.READ, pattern.text)
    return _POLICY
