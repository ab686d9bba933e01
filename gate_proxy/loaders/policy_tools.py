"""The `tools:` block of a policy (MCP endpoints): tool names and `*` globs per rule.

Strict like every policy field (``policy_fields.py``): unknown keys, invalid names, a name
in two rules, or a `read`/`require_approval` tool that `allow` would block are errors
naming file, line and field. The rules themselves are ``core/mcp/rules.py``; docs/mcp.md.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from gate_proxy.core.located import FieldPath as Location
from gate_proxy.core.mcp.rules import ToolPattern, ToolRules, valid_tool_pattern

if TYPE_CHECKING:
    from gate_proxy.loaders.policy_fields import PolicyReader

__all__ = ["parse_tools"]

_TOOLS_KEYS = frozenset({"read", "require_approval", "block", "allow", "records"})
_TOOL_LISTS = ("block", "require_approval", "read", "allow")
_RECORD_PATH = re.compile(r"[^.\s]+(?:\.[^.\s]+)*")


def parse_tools(reader: PolicyReader, value: object, path: Location) -> ToolRules:
    """`tools:` - MCP tool names and `*` globs per rule (core/mcp/rules.py, docs/mcp.md)."""
    entries = reader.mapping(value, path, _TOOLS_KEYS)
    if not entries:
        raise reader.error(path, f"set at least one of {', '.join(sorted(_TOOLS_KEYS))}")
    lists = {
        key: _tool_patterns(reader, entries[key], (*path, key), allow_empty=key == "allow")
        for key in _TOOL_LISTS
        if key in entries
    }
    _check_tool_lists(reader, lists, path)
    records: list[tuple[ToolPattern, str]] = []
    if "records" in entries:
        where = (*path, "records")
        items = reader.mapping(entries["records"], where, None)
        if not items:
            raise reader.error(where, "map at least one tool to a record path")
        for name, spec in items.items():
            pattern = _tool_pattern(reader, name, (*where, name), key=True)
            text = reader.identifier(spec, (*where, name))
            if not _RECORD_PATH.fullmatch(text):
                raise reader.error(
                    (*where, name), f"must be a dot path like 'contacts.length', got {text!r}"
                )
            records.append((pattern, text))
    allow = lists.get("allow")
    return ToolRules(
        read=lists.get("read", ()),
        require_approval=lists.get("require_approval", ()),
        block=lists.get("block", ()),
        allow=allow,
        records=tuple(records),
    )


def _tool_patterns(
    reader: PolicyReader, value: object, path: Location, *, allow_empty: bool
) -> tuple[ToolPattern, ...]:
    items = reader.sequence(value, path)
    if not items and not allow_empty:
        raise reader.error(path, "list at least one tool name")
    patterns = [_tool_pattern(reader, item, (*path, i)) for i, item in enumerate(items)]
    return tuple(dict.fromkeys(patterns))


def _tool_pattern(
    reader: PolicyReader, value: object, path: Location, *, key: bool = False
) -> ToolPattern:
    text = reader.string(value, path)
    if not valid_tool_pattern(text):
        raise reader.error(
            path,
            f"{text!r} is not a tool name: 1-128 printable ASCII characters without spaces "
            "(* matches any characters)",
            key=key,
        )
    return ToolPattern(text)


def _check_tool_lists(
    reader: PolicyReader, lists: dict[str, tuple[ToolPattern, ...]], path: Location
) -> None:
    """A name in two rules, or a read/review tool that `allow` would block, is a mistake."""
    seen: dict[str, str] = {}
    for key in ("block", "require_approval", "read"):
        for i, pattern in enumerate(lists.get(key, ())):
            folded = pattern.text.casefold()
            if folded in seen:
                raise reader.error(
                    (*path, key, i), f"{pattern.text!r} is already in tools.{seen[folded]}"
                )
            seen[folded] = key
    allow = lists.get("allow")
    if allow is None:
        return
    for key in ("read", "require_approval"):
        for i, pattern in enumerate(lists.get(key, ())):
            if "*" not in pattern.text and not any(a.matches_exactly(pattern.text) for a in allow):
                raise reader.error(
                    (*path, key, i),
                    f"{pattern.text!r} is not in tools.allow, so it would be blocked; "
                    "list it in allow too",
                )
