"""The vault's vocabulary: errors, ``Secret``, ``SecretRef``, ``Injection`` and the parsed
``VaultConfig`` with its per-provider settings. Contains no secret and reads no file; the
``vault.yaml`` parser that builds these is ``gate_proxy.vault.config``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal, NoReturn

from gate_proxy.core.located import LocatedError

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "DEFAULT_TTL_SECONDS",
    "PROVIDERS",
    "AgentCredentialAction",
    "AwsSettings",
    "CredentialUnavailable",
    "ExecuteSpec",
    "HashicorpSettings",
    "InjectMode",
    "Injection",
    "OnePasswordSettings",
    "Secret",
    "SecretRef",
    "VaultConfig",
    "VaultConfigError",
    "VaultError",
]

DEFAULT_TTL_SECONDS = 300.0
DEFAULT_TIMEOUT_SECONDS = 5.0
PROVIDERS = ("env", "hashicorp", "aws", "onepassword")

InjectMode = Literal["header", "basic", "query", "url"]
AgentCredentialAction = Literal["strip", "reject"]


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
