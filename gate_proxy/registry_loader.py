"""Read a destination registry YAML file (the I/O half of ``gate_proxy.core.registry``).

The YAML is composed into nodes so that every key keeps its line number; the plain data
and a ``{field path: line}`` map go to :func:`gate_proxy.core.registry.build_registry`,
which does all validation. Duplicate keys, which plain YAML loading silently collapses,
are an error here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from gate_proxy.core.registry import (
    FieldPath,
    Registry,
    RegistryError,
    build_registry,
    format_field,
)

__all__ = ["Registry", "RegistryError", "load_registry", "parse_registry_text"]

_MAX_NODES = 100_000  # alias expansion guard ("billion laughs")
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Converter:
    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: dict[FieldPath, int] = {}
        self.constructor = yaml.constructor.SafeConstructor()
        self.count = 0

    def convert(self, node: yaml.Node, path: FieldPath) -> Any:
        self.count += 1
        if self.count > _MAX_NODES:
            raise RegistryError(
                self.source,
                node.start_mark.line + 1,
                format_field(path),
                "document too large (alias expansion?)",
            )
        if isinstance(node, yaml.MappingNode):
            first_line: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue
                key = self.key(key_node, path)
                line = key_node.start_mark.line + 1
                if key in first_line:
                    raise RegistryError(
                        self.source,
                        line,
                        format_field((*path, key)),
                        f"duplicate key (first at line {first_line[key]})",
                    )
                first_line[key] = line
            # Resolve "<<" merge keys: merged pairs come first, so the mapping's own keys
            # (later in the list) override them, as YAML specifies.
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
        try:
            hash(key)
        except TypeError:
            raise RegistryError(
                self.source,
                key_node.start_mark.line + 1,
                format_field(path),
                "mapping keys must be scalars",
            ) from None
        return key


def parse_registry_text(text: str, source: str = "<string>") -> Registry:
    """Parse registry YAML text; errors are :class:`RegistryError` naming ``source``."""
    converter = _Converter(source)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is None:
            return build_registry(None, source=source)
        converter.lines[()] = node.start_mark.line + 1
        data = converter.convert(node, ())
    except yaml.MarkedYAMLError as exc:  # syntax errors, unknown tags, bad scalars
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise RegistryError(source, line, "(yaml)", str(exc.problem or exc)) from None
    except yaml.YAMLError as exc:
        raise RegistryError(source, None, "(yaml)", str(exc)) from None
    return build_registry(data, source=source, lines=converter.lines)


def load_registry(path: Path | str) -> Registry:
    """Read and validate a registry file. Raises :class:`RegistryError` on any problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryError(str(path), None, "(file)", str(exc)) from None
    return parse_registry_text(text, source=str(path))
