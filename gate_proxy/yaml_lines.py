"""YAML to plain data, remembering the line of every field, for config errors that say
`file:line: field: message`. Shared by the registry and vault loaders.

Duplicate keys are errors (YAML would silently keep the last), `<<` merges are resolved
as YAML specifies, and alias expansion is bounded ("billion laughs").
"""

from pathlib import Path
from typing import Any

import yaml

from gate_proxy.core.located import FieldPath, LocatedError, format_field

MAX_NODES = 100_000
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Converter:
    def __init__(self, source: str, error: type[LocatedError], text_keys: bool) -> None:
        self.source = source
        self.error = error
        self.text_keys = text_keys
        self.lines: dict[FieldPath, int] = {}
        self.constructor = yaml.constructor.SafeConstructor()
        self.count = 0

    def fail(self, node: yaml.Node, path: FieldPath, message: str) -> LocatedError:
        return self.error(self.source, node.start_mark.line + 1, format_field(path), message)

    def convert(self, node: yaml.Node, path: FieldPath) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise self.fail(node, path, "document too large (alias expansion?)")
        if isinstance(node, yaml.MappingNode):
            first_line: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:
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
                self.lines[child] = key_node.start_mark.line + 1
                out[key] = self.convert(value_node, child)
            return out
        if isinstance(node, yaml.SequenceNode):
            items = []
            for i, item in enumerate(node.value):
                child = (*path, i)
                self.lines[child] = item.start_mark.line + 1
                items.append(self.convert(item, child))
            return items
        return self.constructor.construct_object(node, deep=True)

    def key(self, key_node: yaml.Node, path: FieldPath) -> Any:
        key = self.constructor.construct_object(key_node, deep=True)
        if self.text_keys:
            if not isinstance(key, str | int | float | bool):
                raise self.fail(key_node, path, "mapping keys must be scalars")
            # YAML reads `yes:` as True: keep every key as text.
            return key if isinstance(key, str) else str(key).lower()
        try:
            hash(key)
        except TypeError:
            raise self.fail(key_node, path, "mapping keys must be scalars") from None
        return key


def parse_yaml_with_lines(
    text: str, source: str, error: type[LocatedError], *, text_keys: bool = False
) -> tuple[Any, dict[FieldPath, int]]:
    """Return (data, line of each field path); data is None for an empty document."""
    converter = _Converter(source, error, text_keys)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is None:
            return None, {}
        converter.lines[()] = node.start_mark.line + 1
        return converter.convert(node, ()), converter.lines
    except yaml.MarkedYAMLError as exc:  # syntax errors, unknown tags, bad scalars
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise error(source, line, "(yaml)", str(exc.problem or exc)) from None
    except yaml.YAMLError as exc:
        raise error(source, None, "(yaml)", str(exc)) from None


def read_config_text(path: Path, error: type[LocatedError]) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error(str(path), None, "(file)", str(exc)) from None
