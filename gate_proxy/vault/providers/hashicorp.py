"""The ``hashicorp`` provider: HashiCorp Vault KV v2 through hvac (token or AppRole auth).

hvac blocks, so every call runs in a worker thread (:class:`BlockingProvider`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from gate_proxy.vault.model import (
    DEFAULT_TIMEOUT_SECONDS,
    CredentialUnavailable,
    HashicorpSettings,
    Secret,
    SecretRef,
)
from gate_proxy.vault.providers.base import BlockingProvider, _pick

log = logging.getLogger("gate.vault")


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
