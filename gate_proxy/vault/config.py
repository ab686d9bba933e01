"""The vault's vocabulary (errors, ``Secret``, ``Injection``) and the ``vault.yaml`` parser.

The file format is a superset of Zehrava Gate's ``config/vault.yaml.example``: a Zehrava
file loads unchanged. Every problem is a :class:`VaultConfigError` that names the file, the
line (from the YAML node marks) and the field, e.g.
``config/vault.yaml:12: credentials["stripe.refund"].inject: must be one of ...``.
Unknown keys are errors, so a typo cannot silently turn injection off.

Nothing here fetches a secret; parsing only checks the *shape* of references.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NoReturn

from gate_proxy.core.located import FieldPath, LocatedError, format_field
from gate_proxy.yaml_lines import parse_yaml_with_lines, read_config_text

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "DEFAULT_TTL_SECONDS",
    "PROVIDERS",
    "AwsSettings",
    "CredentialUnavailable",
    "HashicorpSettings",
    "Injection",
    "OnePasswordSettings",
    "Secret",
    "SecretRef",
    "VaultConfig",
    "VaultConfigError",
    "VaultError",
    "load_vault_config",
    "parse_vault_config",
]

DEFAULT_TTL_SECONDS = 300.0
DEFAULT_TIMEOUT_SECONDS = 5.0
PROVIDERS = ("env", "hashicorp", "aws", "onepassword")
_PROVIDER_ALIASES = {"1password": "onepassword"}

InjectMode = Literal["header", "basic", "query", "url"]
AgentCredentialAction = Literal["strip", "reject"]

# --------------------------------------------------------------------------- vocabulary


class VaultError(Exception):
    """Any vault problem. By construction the message never contains a secret value:
    messages are built from destination names, provider names and references only."""


class CredentialUnavailable(VaultError):
    """A credential could not be fetched (missing, denied, timed out, provider down).
    The proxy answers ``503 credential_unavailable`` and forwards nothing."""


class VaultConfigError(VaultError, LocatedError):
    """A ``vault.yaml`` problem, located by file, line (1-based, may be None) and field."""


class Secret:
    """A secret value that does not print itself.

    ``repr``/``str``/f-strings show ``Secret(***)``, so a stray log line or an exception
    formatting locals cannot leak it; :meth:`reveal` is the one explicit way out. Pickling is
    refused so it cannot end up in a cache file or a queue by accident.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret(***)"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return "Secret(***)"

    def __reduce__(self) -> NoReturn:
        raise TypeError("Secret values cannot be pickled")

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True, slots=True)
class SecretRef:
    """Where one secret lives. Holds names only, never the value.

    ``name`` is, per provider: the environment variable (env), the KV v2 path (hashicorp),
    the secret id or ARN (aws) or the ``op://vault/item/field`` reference (onepassword).
    ``key`` selects a field inside the KV data (hashicorp) or inside a JSON SecretString
    (aws); ``mount`` is the KV v2 mount (hashicorp only, always resolved).
    """

    provider: str
    name: str
    key: str | None = None
    mount: str | None = None

    @property
    def display(self) -> str:
        """A reference that is safe to show in logs, errors and the CLI."""
        suffix = f"#{self.key}" if self.key else ""
        if self.provider == "env":
            return f"env:{self.name}"
        if self.provider == "onepassword":
            return self.name
        if self.provider == "hashicorp":
            return f"hashicorp:{self.mount}/{self.name}{suffix}"
        return f"{self.provider}:{self.name}{suffix}"


@dataclass(frozen=True, slots=True)
class Injection:
    """How one destination gets its credential. Contains no secret.

    ``mode``: ``header`` (``header`` + ``template``; covers ``Authorization: Bearer {secret}``
    and custom headers like ``X-Api-Key: {secret}``), ``basic`` (``Authorization: Basic``
    of ``username:secret``, or ``secret:`` when ``username`` is None, Stripe-style),
    ``query`` (``query_param=secret``) or ``url`` (Zehrava's ``inject: url``: the secret *is*
    the upstream URL, e.g. a Slack webhook).

    ``strip``: header names an agent must not supply (always ``Authorization`` plus the
    configured header); ``strip_query``: query parameters likewise. ``on_agent_credential``
    says whether such agent-supplied credentials are removed (``strip``) or the request is
    refused with 400 (``reject``).
    """

    destination: str
    provider: str
    ref: str
    mode: InjectMode = "header"
    header: str | None = "Authorization"
    template: str | None = "Bearer {secret}"
    query_param: str | None = None
    username: str | None = None
    ttl_seconds: float = DEFAULT_TTL_SECONDS
    strip: tuple[str, ...] = ("Authorization",)
    strip_query: tuple[str, ...] = ()
    on_agent_credential: AgentCredentialAction = "strip"

    def agent_supplied(self, headers: Iterable[str], query: Iterable[str] = ()) -> tuple[str, ...]:
        """Which of the agent's header names / query parameter names are credentials this
        destination manages (headers compare case-insensitively, query names exactly)."""
        strip_lower = {h.lower() for h in self.strip}
        found = [h for h in headers if h.lower() in strip_lower]
        found += [q for q in query if q in self.strip_query]
        return tuple(dict.fromkeys(found))


@dataclass(frozen=True, slots=True)
class HashicorpSettings:
    url: str | None = None  # None: VAULT_ADDR from the environment at fetch time
    mount: str = "secret"
    auth: Literal["token", "approle"] = "token"
    token_env: str = "VAULT_TOKEN"
    role_id_env: str = "VAULT_ROLE_ID"
    secret_id_env: str = "VAULT_SECRET_ID"
    approle_mount: str = "approle"
    verify: bool | str = True  # False, True or a CA bundle path
    namespace: str | None = None
    timeout_seconds: float | None = None  # network timeout; None: the global timeout


@dataclass(frozen=True, slots=True)
class AwsSettings:
    region: str | None = None  # None: boto3's usual lookup (AWS_DEFAULT_REGION, profile)
    endpoint_url: str | None = None
    timeout_seconds: float | None = None
    max_attempts: int = 2


@dataclass(frozen=True, slots=True)
class OnePasswordSettings:
    token_env: str = "OP_SERVICE_ACCOUNT_TOKEN"
    vault: str | None = None  # default vault for references written as "item/field"
    integration_name: str = "Gate Proxy"


@dataclass(frozen=True, slots=True)
class ExecuteSpec:
    """Zehrava's ``execute:`` block. Accepted so Zehrava files load; the proxy forwards the
    agent's own request, so nothing here is used for forwarding."""

    method: str | None = None
    url: str | None = None
    content_type: str | None = None


@dataclass(frozen=True, slots=True)
class VaultConfig:
    source: str = "<none>"
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    injections: Mapping[str, Injection] = field(default_factory=dict)
    refs: Mapping[str, SecretRef] = field(default_factory=dict)  # by destination
    execute: Mapping[str, ExecuteSpec] = field(default_factory=dict)
    hashicorp: HashicorpSettings = field(default_factory=HashicorpSettings)
    aws: AwsSettings = field(default_factory=AwsSettings)
    onepassword: OnePasswordSettings = field(default_factory=OnePasswordSettings)

    @property
    def providers_used(self) -> set[str]:
        return {ref.provider for ref in self.refs.values()}


# --------------------------------------------------------------------------- YAML -> data

# --------------------------------------------------------------------------- validation

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


def _hashicorp(r: _Reader, raw: Any) -> HashicorpSettings:
    path: FieldPath = ("hashicorp",)
    if raw is None:
        return HashicorpSettings()
    data = r.mapping(raw, path, _HASHICORP_KEYS)
    url = r.one_of(data, path, "url", "address")
    mount = r.string(data["mount"], (*path, "mount")).strip("/") if "mount" in data else "secret"
    env_keys = {}
    for name in ("token_env", "role_id_env", "secret_id_env"):
        if name in data:
            env_keys[name] = r.string(data[name], (*path, name), pattern=_ENV_NAME)
    if "auth" in data:
        auth = r.choice(data["auth"], (*path, "auth"), ("token", "approle"))
    else:
        # Zehrava's block has role_id_env/secret_id_env and no `auth`: that means AppRole.
        auth = "approle" if {"role_id_env", "secret_id_env"} & env_keys.keys() else "token"
    verify: bool | str = True
    if "verify" in data:
        value = data["verify"]
        verify = value if isinstance(value, bool) else r.string(value, (*path, "verify"))
    return HashicorpSettings(
        url=r.string(url[1], (*path, url[0])).rstrip("/") if url else None,
        mount=mount,
        auth=auth,  # type: ignore[arg-type]
        approle_mount=(
            r.string(data["approle_mount"], (*path, "approle_mount")).strip("/")
            if "approle_mount" in data
            else "approle"
        ),
        verify=verify,
        namespace=r.string(data["namespace"], (*path, "namespace"))
        if "namespace" in data
        else None,
        timeout_seconds=(
            r.number(data["timeout_seconds"], (*path, "timeout_seconds"), positive=True)
            if "timeout_seconds" in data
            else None
        ),
        **env_keys,
    )


def _aws(r: _Reader, raw: Any) -> AwsSettings:
    path: FieldPath = ("aws",)
    if raw is None:
        return AwsSettings()
    data = r.mapping(raw, path, _AWS_KEYS)
    max_attempts = 2
    if "max_attempts" in data:
        value = data["max_attempts"]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10:
            r.fail((*path, "max_attempts"), "must be an integer from 1 to 10")
        max_attempts = value
    return AwsSettings(
        region=r.string(data["region"], (*path, "region")) if "region" in data else None,
        endpoint_url=(
            r.string(data["endpoint_url"], (*path, "endpoint_url"))
            if "endpoint_url" in data
            else None
        ),
        timeout_seconds=(
            r.number(data["timeout_seconds"], (*path, "timeout_seconds"), positive=True)
            if "timeout_seconds" in data
            else None
        ),
        max_attempts=max_attempts,
    )


def _onepassword(r: _Reader, raw: Any, key: str) -> OnePasswordSettings:
    path: FieldPath = (key,)
    if raw is None:
        return OnePasswordSettings()
    data = r.mapping(raw, path, _ONEPASSWORD_KEYS)
    token = r.one_of(data, path, "token_env", "service_account_token_env")
    vault = r.string(data["vault"], (*path, "vault")) if "vault" in data else None
    return OnePasswordSettings(
        token_env=(
            r.string(token[1], (*path, token[0]), pattern=_ENV_NAME)
            if token
            else "OP_SERVICE_ACCOUNT_TOKEN"
        ),
        vault=vault,
        integration_name=(
            r.string(data["integration_name"], (*path, "integration_name"))
            if "integration_name" in data
            else "Gate Proxy"
        ),
    )


def _ref(
    r: _Reader,
    data: dict[str, Any],
    path: FieldPath,
    provider: str,
    settings: tuple[HashicorpSettings, OnePasswordSettings],
) -> SecretRef:
    hashicorp, onepassword = settings
    chosen = next((k for k in _REF_KEYS[provider] if k in data), None)
    if chosen is None:
        r.fail(path, f"provider {provider} needs a reference: {' or '.join(_REF_KEYS[provider])}")
    specific = [k for k in _REF_KEYS[provider] if k in data and k != "ref"]
    if len(specific) > 1:
        r.fail((*path, specific[1]), f"give only one of {' / '.join(specific)}")
    where = (*path, chosen)
    name = r.string(data[chosen], where)
    key_item = r.one_of(data, path, "key", "json_key")
    key = r.string(key_item[1], (*path, key_item[0])) if key_item else None
    if key_item and provider not in ("hashicorp", "aws"):
        r.fail(
            (*path, key_item[0]), f"only used by the hashicorp and aws providers, not {provider}"
        )
    if key_item and key_item[0] == "json_key" and provider != "aws":
        r.fail((*path, "json_key"), "only used by the aws provider (hashicorp uses key)")
    if "mount" in data and provider != "hashicorp":
        r.fail((*path, "mount"), f"only used by the hashicorp provider, not {provider}")

    if provider == "env":
        if not _ENV_NAME.fullmatch(name):
            r.fail(where, f"{name!r} is not an environment variable name")
        return SecretRef("env", name)
    if provider == "onepassword":
        if not name.startswith("op://") and onepassword.vault:
            name = f"op://{onepassword.vault}/{name.strip('/')}"
        parts = name.removeprefix("op://").split("?", 1)[0].split("/")
        if not name.startswith("op://") or len(parts) < 3 or not all(parts):
            r.fail(where, f"{name!r} must look like op://vault/item/field")
        return SecretRef("onepassword", name)
    if provider == "hashicorp":
        kv_path = name.strip("/")
        if not kv_path or ".." in kv_path.split("/"):
            r.fail(where, f"{name!r} is not a KV path")
        mount = r.string(data["mount"], (*path, "mount")).strip("/") if "mount" in data else None
        return SecretRef("hashicorp", kv_path, key=key, mount=mount or hashicorp.mount)
    return SecretRef("aws", name, key=key)


def _entry(
    r: _Reader,
    destination: str,
    raw: Any,
    defaults: tuple[str, float, AgentCredentialAction],
    settings: tuple[HashicorpSettings, OnePasswordSettings],
) -> tuple[Injection, SecretRef, ExecuteSpec | None]:
    default_provider, default_ttl, default_action = defaults
    path: FieldPath = ("credentials", destination)
    data = r.mapping(raw, path, _ENTRY_KEYS)
    provider = (
        r.provider(data["provider"], (*path, "provider"))
        if "provider" in data
        else default_provider
    )
    ref = _ref(r, data, path, provider, settings)

    mode = _INJECT_MODES[
        r.choice(data["inject"], (*path, "inject"), _INJECT_MODES) if "inject" in data else "header"
    ]
    header_item = r.one_of(data, path, "header", "header_name")
    template_item = r.one_of(data, path, "template", "header_format")
    query_item = r.one_of(data, path, "query_param", "query_param_name")

    def only_for(item: tuple[str, Any] | None, modes: tuple[str, ...]) -> None:
        if item is not None and mode not in modes:
            r.fail((*path, item[0]), f"not used with inject: {mode}")

    only_for(header_item, ("header",))
    only_for(template_item, ("header",))
    only_for(query_item, ("query",))
    only_for(("username", None) if "username" in data else None, ("basic",))

    header = template = query_param = username = None
    if mode == "header":
        header = (
            r.string(header_item[1], (*path, header_item[0]), pattern=_HEADER_NAME)
            if header_item
            else "Authorization"
        )
        if template_item:
            template = r.string(template_item[1], (*path, template_item[0]))
            if _SECRET_PLACEHOLDER not in template:
                r.fail((*path, template_item[0]), "must contain {secret}")
            if any(c in template for c in "\r\n\0"):
                r.fail((*path, template_item[0]), "must not contain line breaks")
        else:
            # Bearer is right for Authorization; a custom header usually takes the bare value.
            template = "Bearer {secret}" if header.lower() == "authorization" else "{secret}"
    elif mode == "basic":
        header = "Authorization"
        if "username" in data:
            username = r.string(data["username"], (*path, "username"))
            if ":" in username:
                r.fail((*path, "username"), "must not contain ':'")
    elif mode == "query":
        query_param = r.string(query_item[1], (*path, query_item[0])) if query_item else "api_key"

    strip = ["Authorization"]
    if header:
        strip.append(header)
    if "strip_headers" in data:
        strip += r.string_list(data["strip_headers"], (*path, "strip_headers"), _HEADER_NAME)
    strip_query = [query_param] if query_param else []
    if "strip_query" in data:
        strip_query += r.string_list(
            data["strip_query"], (*path, "strip_query"), re.compile(r"[^&=#\s]+")
        )

    ttl = (
        r.number(data["ttl_seconds"], (*path, "ttl_seconds"), positive=False)
        if "ttl_seconds" in data
        else default_ttl
    )
    action = (
        r.choice(data["on_agent_credential"], (*path, "on_agent_credential"), ("strip", "reject"))
        if "on_agent_credential" in data
        else default_action
    )

    execute = None
    if "execute" in data:
        ex = r.mapping(data["execute"], (*path, "execute"), _EXECUTE_KEYS)
        execute = ExecuteSpec(
            **{k: r.string(v, (*path, "execute", k)) for k, v in ex.items()}  # type: ignore[arg-type]
        )

    injection = Injection(
        destination=destination,
        provider=provider,
        ref=ref.display,
        mode=mode,
        header=header,
        template=template,
        query_param=query_param,
        username=username,
        ttl_seconds=ttl,
        strip=_dedupe_ci(strip),
        strip_query=tuple(dict.fromkeys(strip_query)),
        on_agent_credential=action,  # type: ignore[arg-type]
    )
    return injection, ref, execute


def _dedupe_ci(names: Iterable[str]) -> tuple[str, ...]:
    out: dict[str, str] = {}
    for name in names:
        out.setdefault(name.lower(), name)
    return tuple(out.values())


def _build(data: Any, source: str, lines: Mapping[FieldPath, int]) -> VaultConfig:
    r = _Reader(source, lines)
    if data is None:
        return VaultConfig(source=source)
    data = r.mapping(data, (), _TOP_KEYS)
    provider = r.provider(data["provider"], ("provider",)) if "provider" in data else "env"
    timeout = (
        r.number(data["timeout_seconds"], ("timeout_seconds",), positive=True)
        if "timeout_seconds" in data
        else DEFAULT_TIMEOUT_SECONDS
    )
    ttl = (
        r.number(data["ttl_seconds"], ("ttl_seconds",), positive=False)
        if "ttl_seconds" in data
        else DEFAULT_TTL_SECONDS
    )
    action: AgentCredentialAction = "strip"
    if "on_agent_credential" in data:
        action = r.choice(  # type: ignore[assignment]
            data["on_agent_credential"], ("on_agent_credential",), ("strip", "reject")
        )
    op_key = r.one_of(data, (), "onepassword", "1password")
    hashicorp = _hashicorp(r, data.get("hashicorp"))
    aws = _aws(r, data.get("aws"))
    onepassword = _onepassword(r, op_key[1], op_key[0]) if op_key else OnePasswordSettings()

    injections: dict[str, Injection] = {}
    refs: dict[str, SecretRef] = {}
    execute: dict[str, ExecuteSpec] = {}
    credentials = data.get("credentials")
    if credentials is not None:
        if not isinstance(credentials, dict):
            r.fail(("credentials",), f"must be a mapping, not {_kind(credentials)}")
        for destination, raw in credentials.items():
            name = r.string(destination, ("credentials", destination))
            inj, ref, ex = _entry(r, name, raw, (provider, ttl, action), (hashicorp, onepassword))
            injections[name], refs[name] = inj, ref
            if ex is not None:
                execute[name] = ex
    return VaultConfig(
        source=source,
        timeout_seconds=timeout,
        injections=injections,
        refs=refs,
        execute=execute,
        hashicorp=hashicorp,
        aws=aws,
        onepassword=onepassword,
    )


def parse_vault_config(text: str, source: str = "<string>") -> VaultConfig:
    """Parse ``vault.yaml`` text; every problem is a :class:`VaultConfigError`."""
    data, lines = parse_yaml_with_lines(text, source, VaultConfigError, text_keys=True)
    if data is None:
        return VaultConfig(source=source)
    return _build(data, source, lines)


def load_vault_config(path: Path | str) -> VaultConfig:
    path = Path(path)
    return parse_vault_config(read_config_text(path, VaultConfigError), source=str(path))
