"""Settings: defaults, overridden by `<config-dir>/gate.yaml`, by GATE_HOLD_TIMEOUT_MS, then
by command-line flags.

gate.yaml goes through the located YAML reader, so a bad setting names file, line and
field ("config/gate.yaml:3: egress_check: expected true or false, got a string"); a bad
flag names the flag ("--port: port: ..."). Values are converted by the type each
`Settings` field declares, strictly: a word that is not clearly true or false is an error,
never a silent `false` that could turn a safety check off.
"""

import ipaddress
import math
import os
import types
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from gate_proxy.core.egress import parse_allow
from gate_proxy.loaders.yaml_reader import YamlDocument, expected, read_config_text, read_yaml
from gate_proxy.settings import Settings, SettingsError

__all__ = ["SETTINGS_FILE", "load_settings"]

SETTINGS_FILE = "gate.yaml"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_HINTS: dict[str, Any] = get_type_hints(Settings)
_KNOWN = frozenset(f.name for f in fields(Settings))


@dataclass(frozen=True, slots=True)
class _Origin:
    """Where a value came from, for its error: a file and line, a flag, a variable."""

    source: str
    line: int | None = None

    def error(self, key: str, message: str) -> SettingsError:
        return SettingsError(self.source, self.line, key, message)


def load_settings(config_dir: Path | None, overrides: dict[str, Any]) -> Settings:
    """Build the settings; raise SettingsError naming the file, flag or variable at fault."""
    settings = Settings()
    config_dir = Path(overrides.get("config_dir") or config_dir or settings.config_dir)
    path = config_dir / SETTINGS_FILE
    if path.exists():
        _apply_file(settings, path)
    for variable, key in (
        ("GATE_HOLD_TIMEOUT_MS", "hold_timeout_ms"),
        ("GATE_DATABASE_URL", "database_url"),
    ):
        value = os.environ.get(variable)
        if value:
            _apply(settings, key, value, _Origin(variable))
    for key, value in overrides.items():
        if value is not None:
            _apply(settings, key, value, _Origin(f"--{key.replace('_', '-')}"))
    settings.config_dir = config_dir
    return settings


def _apply_file(settings: Settings, path: Path) -> None:
    source = str(path)
    document = read_yaml(
        read_config_text(path, SettingsError), source, SettingsError, keys="string"
    )
    data = document.data
    if data is None:
        return
    if not isinstance(data, dict):
        raise SettingsError(source, document.value_line(()), None, expected("a mapping", data))
    for key, value in data.items():
        if key not in _KNOWN:
            raise SettingsError(source, document.key_line((key,)), key, "unknown setting")
        _check_items(document, key, value)
        _apply(settings, key, value, _Origin(source, document.value_line((key,))))


def _check_items(document: YamlDocument, key: str, value: object) -> None:
    """Every item of a list setting is a string; a bad one is named with its own line."""
    if get_origin(_HINTS[key]) is list and isinstance(value, list):
        for i, item in enumerate(value):
            if not isinstance(item, str):
                line = document.value_line((key, i))
                raise SettingsError(
                    document.source, line, f"{key}[{i}]", expected("a string", item)
                )


def _apply(settings: Settings, key: str, value: object, origin: _Origin) -> None:
    if key not in _KNOWN:
        raise origin.error(key, "unknown setting")
    try:
        converted = _convert(value, _HINTS[key])
        check = _CHECKS.get(key)
        if check is not None:
            check(converted)
    except (TypeError, ValueError) as exc:
        # Some checks name the setting themselves: say it once.
        raise origin.error(key, str(exc).removeprefix(f"{key}: ")) from None
    setattr(settings, key, converted)


def _convert(value: object, hint: Any) -> Any:
    """`value` (from YAML, a flag or the environment) as the declared type `hint`."""
    args = get_args(hint)
    if get_origin(hint) in (Union, types.UnionType) and type(None) in args:
        if value is None:
            return None
        hint = next(arg for arg in args if arg is not type(None))
    if hint is bool:
        return _to_bool(value)
    if hint is int:
        return _to_int(value)
    if hint is float:
        return _to_float(value)
    if hint is Path:
        if not isinstance(value, str | Path):
            raise TypeError(expected("a path", value))
        return Path(value)
    if get_origin(hint) is list:
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise TypeError(expected("a list of strings", value))
        return list(value)
    if not isinstance(value, str):
        raise TypeError(expected("a string", value))
    return value


def _to_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str | int):
        word = str(value).strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise ValueError(f"expected true or false, got {value!r}")


def _to_int(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ValueError(f"expected an integer, got {value!r}")


def _to_float(value: object) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise ValueError(f"expected a number, got {value!r}")


def _one_of(*choices: str) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if value not in choices:
            raise ValueError(f"must be {' or '.join(choices)}")

    return check


def _positive_seconds(value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ValueError("must be a positive number of seconds")


def _networks(value: list[str]) -> None:
    for cidr in value:
        ipaddress.ip_network(cidr, strict=False)


def _database_url(value: str) -> None:
    # The URL may carry a password: the message never repeats it.
    if not value.startswith(("postgresql://", "postgres://")):
        raise ValueError("must be a postgresql:// URL (leave it unset for SQLite in data_dir)")


def _workers(value: int) -> None:
    if not 1 <= value <= 64:
        raise ValueError("must be between 1 and 64")


# Checks of single values, run where the value is set, so the error names its origin.
_CHECKS: dict[str, Callable[[Any], None]] = {
    "database_url": _database_url,
    "workers": _workers,
    "enforce": _one_of("enforce", "shadow"),
    "durability": _one_of("normal", "full"),
    "request_header_timeout_s": _positive_seconds,
    "webhook_allow_cidrs": _networks,
    "egress_allow": parse_allow,
}
