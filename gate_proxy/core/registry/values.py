"""Validators for single values of a registry file, each raising a located RegistryError.

:class:`ValueReader` holds the file name and the ``{field path: line}`` map and turns a
field path into the nearest known line; ``build.py`` uses it for every value it reads.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gate_proxy.core.located import FieldPath, format_field
from gate_proxy.core.registry.model import EnforceMode, PathCase, Protocol, RegistryError

__all__ = ["ValueReader", "type_name"]

_METHOD_RE = re.compile(r"[A-Z][A-Z0-9_-]*")
_HEADER_NAME_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_EXTRACT_RE = re.compile(r"[^.\s]+(?:\.[^.\s]+)*")


@dataclass
class ValueReader:
    """Reads one value at a field path; its errors name ``source`` and the nearest line."""

    source: str
    lines: Mapping[FieldPath, int]

    def line_of(self, path: FieldPath) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), None)

    def error(self, path: FieldPath, message: str) -> RegistryError:
        return RegistryError(self.source, self.line_of(path), format_field(path), message)

    def mapping(self, value: Any, path: FieldPath, allowed: frozenset[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(path, f"must be a mapping, got {type_name(value)}")
        for key in value:
            if not isinstance(key, str):
                raise self.error(path, f"keys must be strings, got {key!r}")
            if key not in allowed:
                raise self.error(
                    (*path, key), f"unknown key {key!r}; allowed: {', '.join(sorted(allowed))}"
                )
        return value

    def string(self, value: Any, path: FieldPath) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.error(path, f"must be a non-empty string, got {type_name(value)}")
        return value.strip()

    def boolean(self, value: Any, path: FieldPath) -> bool:
        if not isinstance(value, bool):
            raise self.error(path, f"must be true or false, got {type_name(value)}")
        return value

    def require_approval(self, value: Any, path: FieldPath) -> bool:
        # Zehrava writes "always" / "never"; "never" only means "not forced" here.
        if isinstance(value, bool):
            return value
        if value in ("always", "never"):
            return value == "always"
        raise self.error(path, f"must be true, false, 'always' or 'never', got {value!r}")

    def enforce(self, value: Any, path: FieldPath) -> EnforceMode:
        if value not in ("shadow", "enforce"):
            raise self.error(path, f"must be 'shadow' or 'enforce', got {value!r}")
        return value  # type: ignore[no-any-return]

    def protocol(self, value: Any, path: FieldPath) -> Protocol:
        if value not in ("http", "mcp"):
            raise self.error(path, f"must be 'http' or 'mcp', got {value!r}")
        return value  # type: ignore[no-any-return]

    def case(self, value: Any, path: FieldPath) -> PathCase:
        if value not in ("sensitive", "insensitive"):
            raise self.error(path, f"must be 'sensitive' or 'insensitive', got {value!r}")
        return value  # type: ignore[no-any-return]

    def header_names(self, value: Any, path: FieldPath) -> tuple[str, ...]:
        if not isinstance(value, list) or not value:
            raise self.error(path, "must be a non-empty list of header names")
        names: list[str] = []
        for i, item in enumerate(value):
            if not isinstance(item, str) or not _HEADER_NAME_RE.fullmatch(item):
                raise self.error((*path, i), f"invalid header name {item!r}")
            names.append(item.lower())
        return tuple(dict.fromkeys(names))

    def extract(self, value: Any, path: FieldPath) -> str:
        text = self.string(value, path)
        if not _EXTRACT_RE.fullmatch(text):
            raise self.error(path, f"must be a dot path like 'inputs.length', got {text!r}")
        return text

    def methods(self, value: Any, path: FieldPath) -> frozenset[str] | None:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items:
            raise self.error(path, "must be a method name or a non-empty list of them")
        out: set[str] = set()
        for i, item in enumerate(items):
            item_path = path if isinstance(value, str) else (*path, i)
            if not isinstance(item, str):
                raise self.error(item_path, f"method must be a string, got {type_name(item)}")
            name = item.strip().upper()
            if name in ("*", "ANY"):
                return None
            if not _METHOD_RE.fullmatch(name):
                raise self.error(item_path, f"invalid HTTP method {item!r}")
            out.add(name)
        return frozenset(out)


def type_name(value: Any) -> str:
    """How a validation message names the type of a wrong value."""
    if value is None:
        return "null"
    return {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
    }.get(type(value), type(value).__name__)
