"""The one located YAML reader: YAML text -> plain data + the line of every field, for
config errors that say `file:line: field: message`. Policies, the destination registry,
the vault config and gate.yaml are all read through it.

Duplicate keys are errors (YAML would silently keep the last), `<<` merges are resolved
as YAML specifies (or refused, for files that do not allow them), alias expansion is
bounded ("billion laughs"), and tags other than YAML's plain types are refused, so a
value is only ever a string, number, boolean, null, date, binary, list or mapping.
PyYAML's composer keeps each node's position; this module only walks its node tree.
"""

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from gate_proxy.core.located import FieldPath, LocatedError, format_field

__all__ = [
    "MAX_NODES",
    "YamlDocument",
    "boolean_hint",
    "expected",
    "parse_yaml_with_lines",
    "read_config_text",
    "read_yaml",
    "type_name",
]

MAX_NODES = 100_000
# What mapping keys may be: any hashable scalar (the registry checks its own), any scalar
# kept as text (the vault: `yes:` stays "yes"-ish), or strings only (policies, gate.yaml).
KeyRule = Literal["scalar", "text", "string"]

_TAG = "tag:yaml.org,2002:"
_MERGE_TAG = _TAG + "merge"
_MAP_TAG = _TAG + "map"
_SEQ_TAG = _TAG + "seq"
_SCALAR_TAGS = frozenset(
    _TAG + name for name in ("str", "int", "float", "bool", "null", "timestamp", "binary")
)
_BOOLEAN_HINT = " (YAML reads unquoted yes/no/on/off/true/false as booleans: quote it)"


@dataclass(frozen=True, slots=True)
class YamlDocument:
    """One YAML document as plain data, with where each field is in the file.

    A field path is the tuple of keys and list indexes from the root, e.g.
    ``("field_checks", 0, "path")``; ``()`` is the document itself.
    """

    source: str
    data: Any  # None for an empty document (see `empty`)
    # The line that names each field: its key, or the list item itself.
    key_lines: Mapping[FieldPath, int]
    # The line where each field's value starts (a block value starts below its key).
    value_lines: Mapping[FieldPath, int]

    @property
    def empty(self) -> bool:
        """True when the text holds no document at all (only comments or nothing)."""
        return () not in self.value_lines

    def key_line(self, path: FieldPath) -> int | None:
        return self.key_lines.get(path)

    def value_line(self, path: FieldPath) -> int | None:
        return self.value_lines.get(path)


class _Converter:
    def __init__(
        self, source: str, error: type[LocatedError], keys: KeyRule, merge_keys: bool
    ) -> None:
        self.source = source
        self.error = error
        self.keys = keys
        self.merge_keys = merge_keys
        self.key_lines: dict[FieldPath, int] = {}
        self.value_lines: dict[FieldPath, int] = {}
        self.constructor = yaml.constructor.SafeConstructor()
        self.count = 0

    def fail(self, node: yaml.Node, path: FieldPath, message: str) -> LocatedError:
        return self.error(self.source, node.start_mark.line + 1, format_field(path), message)

    def convert(self, node: yaml.Node, path: FieldPath) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise self.fail(node, path, "document too large (alias expansion?)")
        self.value_lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            self.check_tag(node, path, node.tag == _MAP_TAG)
            return self.mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            self.check_tag(node, path, node.tag == _SEQ_TAG)
            items = []
            for i, item in enumerate(node.value):
                child = (*path, i)
                self.key_lines[child] = item.start_mark.line + 1
                items.append(self.convert(item, child))
            return items
        self.check_tag(node, path, node.tag in _SCALAR_TAGS)
        return self.constructor.construct_object(node, deep=True)

    def check_tag(self, node: yaml.Node, path: FieldPath, plain: bool) -> None:
        # `!!python/object`, `!!set`, `!custom`: never constructed, and never silently
        # read as the plain list or mapping underneath.
        if not plain:
            raise self.fail(
                node,
                path,
                f"YAML tag {node.tag!r} is not supported: write a plain string, number, "
                "boolean, list or mapping",
            )

    def mapping(self, node: yaml.MappingNode, path: FieldPath) -> dict[Any, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                if not self.merge_keys:
                    raise self.fail(key_node, path, "YAML merge keys (<<) are not supported")
                continue
            key = self.key(key_node, path)
            line = key_node.start_mark.line + 1
            if key in first_line:
                raise self.fail(
                    key_node, (*path, key), f"duplicate key (first at line {first_line[key]})"
                )
            first_line[key] = line
        # Merged pairs come first, so the mapping's own keys override them.
        self.constructor.flatten_mapping(node)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = self.key(key_node, path)
            child = (*path, key)
            self.key_lines[child] = key_node.start_mark.line + 1
            out[key] = self.convert(value_node, child)
        return out

    def key(self, key_node: yaml.Node, path: FieldPath) -> Any:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag not in _SCALAR_TAGS:
            raise self.fail(key_node, path, "mapping keys must be scalars")
        key = self.constructor.construct_object(key_node, deep=True)
        if self.keys == "string":
            if not isinstance(key, str):
                raise self.fail(key_node, path, "keys must be strings")
            return key
        if self.keys == "text":
            if not isinstance(key, str | int | float | bool):
                raise self.fail(key_node, path, "mapping keys must be scalars")
            # YAML reads `yes:` as True: keep every key as text.
            return key if isinstance(key, str) else str(key).lower()
        try:
            hash(key)
        except TypeError:
            raise self.fail(key_node, path, "mapping keys must be scalars") from None
        return key


def read_yaml(
    text: str,
    source: str,
    error: type[LocatedError],
    *,
    keys: KeyRule = "scalar",
    merge_keys: bool = True,
) -> YamlDocument:
    """Read one YAML document; any problem raises `error(source, line, field, message)`."""
    converter = _Converter(source, error, keys, merge_keys)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = None if node is None else converter.convert(node, ())
    except yaml.MarkedYAMLError as exc:  # syntax errors, bad scalars, several documents
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        detail = " ".join(part for part in (exc.context, exc.problem) if part) or str(exc)
        raise error(source, line, "(yaml)", f"invalid YAML: {detail}") from None
    except yaml.YAMLError as exc:
        raise error(source, None, "(yaml)", f"invalid YAML: {exc}") from None
    return YamlDocument(source, data, converter.key_lines, converter.value_lines)


def parse_yaml_with_lines(
    text: str, source: str, error: type[LocatedError], *, text_keys: bool = False
) -> tuple[Any, dict[FieldPath, int]]:
    """Return (data, line of each field path's key); data is None for an empty document."""
    document = read_yaml(text, source, error, keys="text" if text_keys else "scalar")
    lines = dict(document.key_lines)
    if not document.empty:
        lines[()] = document.value_lines[()]
    return document.data, lines


def read_config_text(path: Path, error: type[LocatedError]) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error(str(path), None, "(file)", str(exc)) from None


def type_name(value: object) -> str:
    """What a YAML value is, in words: "a string", "a list", "null"..."""
    if value is None:
        return "null"
    if isinstance(value, bool):  # before int: bool is an int subclass
        return "a boolean"
    for kind, name in _TYPE_NAMES:
        if isinstance(value, kind):
            return name
    return f"a {type(value).__name__}"


_TYPE_NAMES: tuple[tuple[type, str], ...] = (
    (dict, "a mapping"),
    (list, "a list"),
    (str, "a string"),
    (int, "an integer"),
    (float, "a number"),
    (datetime.date, "a date"),  # datetime is a date too
    (bytes, "binary data"),
)


def boolean_hint(value: object) -> str:
    """The reason a value the author meant as text is a boolean, or ""."""
    return _BOOLEAN_HINT if isinstance(value, bool) else ""


def expected(what: str, value: object) -> str:
    """``expected a list, got a string``, with the yes/no hint when YAML made a boolean."""
    return f"expected {what}, got {type_name(value)}{boolean_hint(value)}"
