"""The ``vault.yaml`` schema: the keys each block accepts and the validating reader.

The accepted keys include Zehrava Gate's spellings (``address``, ``secret_env``,
``header_name``, ``header_format``, ``json_key``, ``1password``, ``basic_auth`` ...), so a
Zehrava ``config/vault.yaml.example`` loads unchanged; this module is where that
compatibility is declared. :class:`_Reader` turns every problem into a
:class:`VaultConfigError` that names the file, the line and the field.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, NoReturn

from gate_proxy.core.located import FieldPath, format_field
from gate_proxy.vault.model import PROVIDERS, InjectMode, VaultConfigError

_PROVIDER_ALIASES = {"1password": "onepassword"}

_TOP_KEYS = (
    "provider",
    "timeout_seconds",
    "ttl_seconds",
    "on_agent_credential",
    "hashicorp",
    "aws",
    "onepassword",
    "1password",
    "credentials",
)
_HASHICORP_KEYS = (
    "url",
    "address",
    "mount",
    "auth",
    "token_env",
    "role_id_env",
    "secret_id_env",
    "approle_mount",
    "verify",
    "namespace",
    "timeout_seconds",
)
_AWS_KEYS = ("region", "endpoint_url", "timeout_seconds", "max_attempts")
_ONEPASSWORD_KEYS = ("token_env", "service_account_token_env", "vault", "integration_name")
# Reference keys per provider, most specific first: the generic `ref` is the fallback, so a
# Zehrava entry carrying both `secret_env` and a commented-in `ref: op://...` keeps working
# under whichever `provider:` is active.
_REF_KEYS: dict[str, tuple[str, ...]] = {
    "env": ("secret_env", "env", "ref"),
    "hashicorp": ("secret_path", "secret_hashicorp", "path", "ref"),
    "aws": ("secret_name", "secret_aws", "secret_id", "ref"),
    "onepassword": ("secret_1password", "ref"),
}
_ENTRY_KEYS = (
    "provider",
    *dict.fromkeys(k for keys in _REF_KEYS.values() for k in keys),
    "key",
    "json_key",
    "mount",
    "inject",
    "header",
    "header_name",
    "template",
    "header_format",
    "username",
    "query_param",
    "query_param_name",
    "ttl_seconds",
    "on_agent_credential",
    "strip_headers",
    "strip_query",
    "execute",
)
_EXECUTE_KEYS = ("method", "url", "content_type")
_INJECT_MODES: dict[str, InjectMode] = {
    "header": "header",
    "basic": "basic",
    "basic_auth": "basic",
    "query": "query",
    "query_param": "query",
    "url": "url",
}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_SECRET_PLACEHOLDER = "{secret}"


class _Reader:
    def __init__(self, source: str, lines: Mapping[FieldPath, int]) -> None:
        self.source = source
        self.lines = lines

    def line(self, path: FieldPath) -> int | None:
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            path = path[:-1]

    def fail(self, path: FieldPath, message: str) -> NoReturn:
        raise VaultConfigError(self.source, self.line(path), format_field(path), message)

    def mapping(self, value: Any, path: FieldPath, allowed: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(path, f"must be a mapping, not {_kind(value)}")
        for key in value:
            if key not in allowed:
                self.fail((*path, key), f"unknown key (expected one of: {', '.join(allowed)})")
        return value

    def one_of(self, data: dict[str, Any], path: FieldPath, *names: str) -> tuple[str, Any] | None:
        """The value of whichever alias is present; two aliases at once is an error."""
        present = [n for n in names if n in data]
        if len(present) > 1:
            present.sort(key=lambda n: self.line((*path, n)) or 0)  # blame the later one
            self.fail((*path, present[1]), f"give only one of {' / '.join(present)}")
        return (present[0], data[present[0]]) if present else None

    def string(self, value: Any, path: FieldPath, *, pattern: re.Pattern[str] | None = None) -> str:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            self.fail(path, f"must be a string, not {_kind(value)}")
        text = str(value).strip()
        if not text:
            self.fail(path, "must not be empty")
        if pattern is not None and not pattern.fullmatch(text):
            self.fail(path, f"{text!r} is not a valid name")
        return text

    def number(self, value: Any, path: FieldPath, *, positive: bool) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(path, f"must be a number, not {_kind(value)}")
        if value != value or value in (float("inf"), float("-inf")):
            self.fail(path, "must be a finite number")
        if positive and value <= 0:
            self.fail(path, "must be greater than 0")
        if value < 0:
            self.fail(path, "must not be negative")
        return float(value)

    def choice(self, value: Any, path: FieldPath, choices: Iterable[str]) -> str:
        options = tuple(choices)
        text = self.string(value, path)
        if text not in options:
            self.fail(path, f"{text!r} must be one of: {', '.join(options)}")
        return text

    def provider(self, value: Any, path: FieldPath) -> str:
        text = self.choice(value, path, (*PROVIDERS, *_PROVIDER_ALIASES))
        return _PROVIDER_ALIASES.get(text, text)

    def string_list(self, value: Any, path: FieldPath, pattern: re.Pattern[str]) -> list[str]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            self.fail(path, f"must be a list of names, not {_kind(value)}")
        return [self.string(v, (*path, i), pattern=pattern) for i, v in enumerate(value)]


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "a mapping", list: "a list", bool: "a boolean"}.get(type(value), repr(value))
