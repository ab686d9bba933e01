"""Read a destination registry YAML file (the I/O half of ``gate_proxy.core.registry``).

The located YAML reader turns the text into plain data and a ``{field path: line}`` map;
:func:`gate_proxy.core.registry.build_registry` does all validation. Duplicate keys, which
plain YAML loading silently collapses, are an error here.
"""

from __future__ import annotations

from pathlib import Path

from gate_proxy.core.registry import (
    Registry,
    RegistryError,
    build_registry,
)
from gate_proxy.loaders.yaml_reader import parse_yaml_with_lines, read_config_text

__all__ = ["Registry", "RegistryError", "load_registry", "parse_registry_text"]


def parse_registry_text(text: str, source: str = "<string>") -> Registry:
    """Parse registry YAML text; errors are :class:`RegistryError` naming ``source``."""
    data, lines = parse_yaml_with_lines(text, source, RegistryError)
    return build_registry(data, source=source, lines=lines)


def load_registry(path: Path | str) -> Registry:
    """Read and validate a registry file. Raises :class:`RegistryError` on any problem."""
    path = Path(path)
    return parse_registry_text(read_config_text(path, RegistryError), source=str(path))
