"""Secret providers: env, HashiCorp Vault (hvac), AWS Secrets Manager (boto3), 1Password.

Each provider turns a :class:`SecretRef` into a :class:`Secret` and raises
:class:`CredentialUnavailable` on any failure. Error messages are written here from names
and status codes only; library exception text is never passed through unfiltered and
exceptions are raised ``from None`` so no chained traceback can carry response data.

The hvac and boto3 SDKs are blocking: those providers implement ``fetch_blocking`` and
``fetch`` runs it in a worker thread (``asyncio.to_thread``) so the proxy's event loop never
waits on the network. The 1Password SDK is natively async and is awaited directly.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar

from gate_proxy.vault.config import (
    DEFAULT_TIMEOUT_SECONDS,
    AwsSettings,
    CredentialUnavailable,
    HashicorpSettings,
    OnePasswordSettings,
    Secret,
    SecretRef,
    VaultConfig,
)

__all__ = [
    "AwsProvider",
    "EnvProvider",
    "HashicorpProvider",
    "OnePasswordProvider",
    "Provider",
    "build_providers",
]

log = logging.getLogger("gate.vault")


def _safe_detail(exc: BaseException, limit: int = 160) -> str:
    """Exception type plus the first line of its message, shortened. Only used for errors
    raised before any secret was received (auth/lookup failures), never after."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = text[:limit] + ("..." if len(text) > limit else "")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _as_secret(value: Any, what: str) -> Secret:
    """Validate a fetched value. Messages describe the problem, never the value."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise CredentialUnavailable(f"{what}: value is not a string")
    text = str(value).rstrip("\r\n")  # a trailing newline from a file or `echo` is not meant
    if not text:
        raise CredentialUnavailable(f"{what}: value is empty")
    return Secret(text)


class Provider:
    """Base class. ``fetch`` must be safe to call concurrently for different refs."""

    name: ClassVar[str] = "?"

    async def fetch(self, ref: SecretRef) -> Secret:
        raise NotImplementedError

    async def maintain(self) -> None:
        """Periodic upkeep (token renewal). Default: nothing."""

    def close(self) -> None:
        """Release connections. Default: nothing."""


class BlockingProvider(Provider):
    """A provider whose SDK blocks: every call runs in a worker thread."""

    async def fetch(self, ref: SecretRef) -> Secret:
        return await asyncio.to_thread(self.fetch_blocking, ref)

    def fetch_blocking(self, ref: SecretRef) -> Secret:
        raise NotImplementedError


# --------------------------------------------------------------------------- env


class EnvProvider(Provider):
    """Reads the process environment. For local development and simple deployments."""

    name = "env"

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ = os.environ if environ is None else environ

    async def fetch(self, ref: SecretRef) -> Secret:
        value = self.environ.get(ref.name)
        if value is None:
            raise CredentialUnavailable(f"env: environment variable {ref.name} is not set")
        return _as_secret(value, f"env: {ref.name}")


# --------------------------------------------------------------------------- hashicorp


class HashicorpProvider(BlockingProvider):
    """HashiCorp Vault KV v2 through hvac, with token or AppRole auth.

    The provider holds one token. Its lease is tracked with a monotonic clock: once half of
    it has passed, the next use (or :meth:`maintain`) calls ``renew-self``; a token that
    cannot be renewed is replaced by a fresh AppRole login (token auth re-reads its env
    var). A 403 on read triggers one re-authentication and one retry, which covers tokens
    revoked or expired behind our back.
    """

    name = "hashicorp"

    def __init__(
        self,
        settings: HashicorpSettings,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.timeout = settings.timeout_seconds or timeout
        self.environ = os.environ if environ is None else environ
        self.clock = clock
        self._lock = threading.Lock()  # guards the client and token state, not reads
        self._client: Any = None
        self._generation = 0  # bumped on every (re-)authentication
        self._authenticated = False
        self._issued = 0.0
        self._lease: float = 0.0  # seconds; 0 = never expires
        self._renewable = False

    # -- auth state (call with self._lock held) --

    def _url(self) -> str:
        url = self.settings.url or self.environ.get("VAULT_ADDR")
        if not url:
            raise CredentialUnavailable("hashicorp: no Vault address (set hashicorp.url)")
        return url

    def _env(self, name: str, what: str) -> str:
        value = self.environ.get(name)
        if not value:
            raise CredentialUnavailable(f"hashicorp: {what} env var {name} is not set")
        return value

    def _set_lease(self, ttl: Any, renewable: Any) -> None:
        self._issued = self.clock()
        self._lease = float(ttl) if isinstance(ttl, (int, float)) and ttl > 0 else 0.0
        self._renewable = bool(renewable)

    def _authenticate(self) -> None:
        import hvac

        if self._client is None:
            self._client = hvac.Client(
                url=self._url(),
                verify=self.settings.verify,
                timeout=self.timeout,
                namespace=self.settings.namespace,
            )
        client = self._client
        s = self.settings
        self._authenticated = False  # until this attempt succeeds
        with _hvac_errors("login" if s.auth == "approle" else "token lookup", self):
            if s.auth == "approle":
                role_id = self._env(s.role_id_env, "AppRole role_id")
                secret_id = self.environ.get(s.secret_id_env) or None
                response = client.auth.approle.login(
                    role_id=role_id, secret_id=secret_id, mount_point=s.approle_mount
                )
                auth = response.get("auth") or {}
                self._set_lease(auth.get("lease_duration"), auth.get("renewable"))
            else:
                client.token = self._env(s.token_env, "token")
                info = client.auth.token.lookup_self().get("data") or {}
                self._set_lease(info.get("ttl"), info.get("renewable"))
        self._generation += 1
        self._authenticated = True
        log.info(
            "vault token acquired",
            extra={"provider": self.name, "auth": s.auth, "lease_seconds": self._lease},
        )

    def _renew_if_due(self) -> None:
        if self._client is None or not self._authenticated:
            self._authenticate()
            return
        if not self._lease:
            return  # a non-expiring token (e.g. a root token) needs no renewal
        age = self.clock() - self._issued
        if age >= self._lease:
            self._authenticate()  # expired: renewal is no longer possible
            return
        if age < self._lease / 2:
            return
        if self._renewable:
            try:
                with _hvac_errors("token renewal", self):
                    response = self._client.auth.token.renew_self()
                auth = response.get("auth") or {}
                self._set_lease(auth.get("lease_duration"), auth.get("renewable"))
                log.info("vault token renewed", extra={"provider": self.name})
                return
            except CredentialUnavailable as exc:
                log.warning("vault token renewal failed", extra={"error": str(exc)})
        if self.settings.auth == "approle":
            self._authenticate()  # not renewable (or renewal failed): log in again early

    # -- public --

    def fetch_blocking(self, ref: SecretRef) -> Secret:
        with self._lock:
            self._renew_if_due()
            client, generation = self._client, self._generation
        try:
            data = self._read(client, ref)
        except _Forbidden:
            with self._lock:
                if self._generation == generation:  # nobody re-authenticated meanwhile
                    self._authenticate()
                client = self._client
            try:
                data = self._read(client, ref)
            except _Forbidden:
                raise CredentialUnavailable(
                    f"hashicorp: permission denied reading {ref.display}"
                ) from None
        return _pick(data, ref)

    def _read(self, client: Any, ref: SecretRef) -> Any:
        with _hvac_errors(f"reading {ref.display}", self):
            response = client.secrets.kv.v2.read_secret_version(
                path=ref.name, mount_point=ref.mount, raise_on_deleted_version=True
            )
            return response["data"]["data"]

    def _maintain_blocking(self) -> None:
        with self._lock:
            if self._client is not None:
                self._renew_if_due()

    async def maintain(self) -> None:
        try:
            await asyncio.to_thread(self._maintain_blocking)
        except CredentialUnavailable as exc:
            log.warning("vault maintenance failed", extra={"error": str(exc)})

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.adapter.close()
                self._client = None


class _Forbidden(Exception):
    """Internal: a 403 from Vault, which may mean an expired or revoked token."""


class _hvac_errors:
    """Translate hvac/requests exceptions into CredentialUnavailable with safe messages."""

    def __init__(self, action: str, provider: HashicorpProvider) -> None:
        self.action = action
        self.provider = provider

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is None or isinstance(exc, (CredentialUnavailable, _Forbidden)):
            return False
        import hvac.exceptions
        import requests

        if isinstance(exc, hvac.exceptions.Forbidden) and self.action.startswith("reading"):
            raise _Forbidden() from None
        if isinstance(exc, hvac.exceptions.InvalidPath):
            raise CredentialUnavailable(f"hashicorp: not found ({self.action})") from None
        if isinstance(exc, hvac.exceptions.VaultError):
            status = type(exc).__name__
            raise CredentialUnavailable(f"hashicorp: {status} ({self.action})") from None
        if isinstance(exc, requests.exceptions.SSLError):
            raise CredentialUnavailable(
                f"hashicorp: TLS verification failed ({self.action})"
            ) from None
        if isinstance(exc, requests.exceptions.Timeout):
            raise CredentialUnavailable(
                f"hashicorp: timed out after {self.provider.timeout:g}s ({self.action})"
            ) from None
        if isinstance(exc, requests.exceptions.RequestException):
            raise CredentialUnavailable(f"hashicorp: cannot reach Vault ({self.action})") from None
        if isinstance(exc, (ValueError, KeyError, TypeError, AttributeError)):
            raise CredentialUnavailable(f"hashicorp: malformed response ({self.action})") from None
        return False


def _pick(data: Any, ref: SecretRef) -> Secret:
    """Select ``ref.key`` from a KV data mapping (or a JSON object for AWS)."""
    if not isinstance(data, dict):
        raise CredentialUnavailable(f"{ref.provider}: {ref.display} is not a key/value secret")
    if ref.key is None:
        if len(data) != 1:
            # Zehrava took "the first value"; with several keys that is a guess, so refuse.
            raise CredentialUnavailable(
                f"{ref.provider}: {ref.display} has {len(data)} keys; set key: to choose one"
            )
        (value,) = data.values()
    elif ref.key in data:
        value = data[ref.key]
    else:
        raise CredentialUnavailable(f"{ref.provider}: key not found in {ref.display}")
    return _as_secret(value, f"{ref.provider}: {ref.display}")


# --------------------------------------------------------------------------- aws


class AwsProvider(BlockingProvider):
    """AWS Secrets Manager through boto3. Credentials come from boto3's usual chain
    (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, profile, instance role)."""

    name = "aws"

    def __init__(self, settings: AwsSettings, *, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self.settings = settings
        self.timeout = settings.timeout_seconds or timeout
        self._lock = threading.Lock()  # boto3 session/client creation is not thread-safe
        self._client: Any = None

    @property
    def client(self) -> Any:
        """The boto3 client (created once; boto3 clients are thread-safe once built)."""
        with self._lock:
            if self._client is None:
                import boto3
                import botocore.config
                import botocore.exceptions

                config = botocore.config.Config(
                    connect_timeout=self.timeout,
                    read_timeout=self.timeout,
                    retries={"max_attempts": self.settings.max_attempts, "mode": "standard"},
                )
                try:
                    self._client = boto3.session.Session().client(
                        "secretsmanager",
                        region_name=self.settings.region,
                        endpoint_url=self.settings.endpoint_url,
                        config=config,
                    )
                except botocore.exceptions.NoRegionError:
                    raise CredentialUnavailable(
                        "aws: no region (set aws.region or AWS_DEFAULT_REGION)"
                    ) from None
            return self._client

    def fetch_blocking(self, ref: SecretRef) -> Secret:
        import botocore.exceptions as bce

        client = self.client
        try:
            response = client.get_secret_value(SecretId=ref.name)
        except bce.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "ClientError")
            raise CredentialUnavailable(f"aws: {code} for {ref.display}") from None
        except bce.NoCredentialsError:
            raise CredentialUnavailable("aws: no AWS credentials configured") from None
        except (bce.ConnectTimeoutError, bce.ReadTimeoutError):
            raise CredentialUnavailable(
                f"aws: timed out after {self.timeout:g}s reading {ref.display}"
            ) from None
        except bce.EndpointConnectionError:
            raise CredentialUnavailable(
                f"aws: cannot reach Secrets Manager reading {ref.display}"
            ) from None
        except Exception as exc:  # BotoCoreError and odd config errors alike fail closed
            raise CredentialUnavailable(
                f"aws: {type(exc).__name__} reading {ref.display}"
            ) from None

        if response.get("SecretString") is not None:
            text = response["SecretString"]
        else:
            try:
                text = bytes(response.get("SecretBinary") or b"").decode("utf-8")
            except UnicodeDecodeError:
                raise CredentialUnavailable(f"aws: {ref.display} is binary and not UTF-8") from None
        if ref.key is None:
            return _as_secret(text, f"aws: {ref.display}")
        try:
            data = json.loads(text)
        except ValueError:
            # `from None`: the decode error object would hold the secret text.
            raise CredentialUnavailable(f"aws: {ref.display} is not a JSON object") from None
        return _pick(data, ref)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


# --------------------------------------------------------------------------- 1password

OnePasswordClientFactory = Callable[[str], Awaitable[Any]]


def sdk_client_factory(integration_name: str) -> OnePasswordClientFactory:
    """The real factory: ``onepassword.Client.authenticate`` with a service account token."""

    async def factory(token: str) -> Any:
        from onepassword import Client

        from gate_proxy import __version__

        return await Client.authenticate(
            auth=token, integration_name=integration_name, integration_version=__version__
        )

    return factory


class OnePasswordProvider(Provider):
    """1Password through onepassword-sdk: ``await client.secrets.resolve("op://v/i/f")``.

    ``client_factory(token)`` returns an authenticated client; by default the SDK's
    ``Client.authenticate``. Tests pass a fake here, at the SDK boundary, because the SDK
    only talks to 1Password's cloud.
    """

    name = "onepassword"

    def __init__(
        self,
        settings: OnePasswordSettings,
        *,
        client_factory: OnePasswordClientFactory | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.environ = os.environ if environ is None else environ
        self._factory = client_factory or sdk_client_factory(settings.integration_name)
        self._client: Any = None
        self._lock: asyncio.Lock | None = None

    async def _get_client(self) -> Any:
        if self._client is not None:
            return self._client
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._client is None:
                token = self.environ.get(self.settings.token_env)
                if not token:
                    raise CredentialUnavailable(
                        f"onepassword: env var {self.settings.token_env} is not set"
                    )
                try:
                    self._client = await self._factory(token)
                except Exception as exc:
                    raise CredentialUnavailable(
                        f"onepassword: authentication failed ({_safe_detail(exc)})"
                    ) from None
        return self._client

    async def fetch(self, ref: SecretRef) -> Secret:
        client = await self._get_client()
        try:
            value = await client.secrets.resolve(ref.name)
        except Exception as exc:
            raise CredentialUnavailable(
                f"onepassword: cannot resolve {ref.display} ({_safe_detail(exc)})"
            ) from None
        return _as_secret(value, f"onepassword: {ref.display}")

    def close(self) -> None:
        self._client = None  # the SDK releases its core client on garbage collection


# --------------------------------------------------------------------------- factory


def build_providers(
    config: VaultConfig, overrides: Mapping[str, Provider] | None = None
) -> dict[str, Provider]:
    """One provider per provider name the config uses (SDK clients are created lazily, on
    first fetch, so loading a config never touches the network)."""
    overrides = dict(overrides or {})
    out: dict[str, Provider] = {}
    for name in sorted(config.providers_used | overrides.keys()):
        if name in overrides:
            out[name] = overrides[name]
        elif name == "env":
            out[name] = EnvProvider()
        elif name == "hashicorp":
            out[name] = HashicorpProvider(config.hashicorp, timeout=config.timeout_seconds)
        elif name == "aws":
            out[name] = AwsProvider(config.aws, timeout=config.timeout_seconds)
        elif name == "onepassword":
            out[name] = OnePasswordProvider(config.onepassword)
    return out
