"""The vault manager: what the proxy addon calls.

Per request on a vault-managed destination the addon does::

    injection = vault.injection_for(destination)           # None: not vault-managed
    found = injection.agent_supplied(request_header_names, request_query_names)
    # found and injection.on_agent_credential == "reject"  -> 400
    # otherwise remove injection.strip headers / injection.strip_query params
    secret = await vault.secret_for(injection)              # CredentialUnavailable -> 503
    applied = vault.plan(injection, secret)                 # headers / query / url to set
    ... forward ...
    body = vault.scrub(body, applied.scrub)                 # before the agent sees it

Secrets are cached per (provider, ref) for the credential's TTL with a monotonic expiry and
dropped when it passes; concurrent fetches of one reference share a single provider call;
every fetch has a timeout. Logs name destinations, providers and references, never values.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, quote_plus, urlsplit

from gate_proxy.vault.config import (
    CredentialUnavailable,
    Injection,
    Secret,
    SecretRef,
    VaultConfig,
    VaultError,
    load_vault_config,
)
from gate_proxy.vault.providers import Provider, build_providers

__all__ = ["REDACTED", "AppliedCredential", "VaultManager", "scrub", "scrub_text"]

log = logging.getLogger("gate.vault")

REDACTED = b"[REDACTED]"
_CacheKey = tuple[str, str]  # (provider, display ref)


@dataclass(frozen=True, repr=False)
class AppliedCredential:
    """What to change on the upstream request, and what to scrub from the response.

    ``headers``: set these (after removing the injection's ``strip`` headers).
    ``query``: set these query parameters. ``url``: replace the whole upstream URL
    (``inject: url`` only). ``scrub``: every byte string that must not reach the agent,
    longest first: the secret, its URL- and JSON-escaped forms, the rendered header value
    (``Bearer sk_...``), and for basic auth the base64 token and ``Basic <token>``.
    """

    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    url: str | None = None
    scrub: tuple[bytes, ...] = ()

    def __repr__(self) -> str:  # names only: the values are credentials
        return (
            f"AppliedCredential(headers={sorted(self.headers)}, query={sorted(self.query)}, "
            f"url={'***' if self.url else None}, scrub={len(self.scrub)} values)"
        )


def scrub(data: bytes, secrets: Sequence[bytes]) -> bytes:
    """Replace every occurrence of each secret with ``[REDACTED]`` (longest first, so a
    rendered ``Bearer <secret>`` disappears whole)."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        if secret in data:
            data = data.replace(secret, REDACTED)
    return data


def scrub_text(text: str, secrets: Sequence[bytes | str]) -> str:
    """:func:`scrub` for ``str`` (header values, reason phrases, error messages)."""
    redacted = REDACTED.decode()
    values = {s.decode("utf-8", "surrogateescape") if isinstance(s, bytes) else s for s in secrets}
    for secret in sorted((s for s in values if s), key=len, reverse=True):
        text = text.replace(secret, redacted)
    return text


def _variants(value: str) -> set[str]:
    """Forms in which an upstream might echo a value back: raw, URL-encoded (query strings,
    form bodies) and JSON-escaped."""
    return {
        value,
        quote(value, safe=""),
        quote_plus(value, safe=""),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
    }


def _has_control(value: str) -> bool:
    return any(c in value for c in "\r\n\0")


@dataclass(slots=True)
class _Cached:
    secret: Secret
    fetched_at: float  # monotonic
    ttl: float


class VaultManager:
    """Credential lookup, caching, injection planning and scrubbing for the proxy."""

    def __init__(
        self,
        config: VaultConfig | None = None,
        *,
        providers: Mapping[str, Provider] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``providers`` replaces the provider built for that name (tests pass a 1Password
        provider with a fake SDK client; a deployment could pass a pre-built one)."""
        self.config = config or VaultConfig()
        self.timeout = self.config.timeout_seconds
        self._clock = clock
        self._providers = build_providers(self.config, providers)
        self._refs: dict[_CacheKey, SecretRef] = {
            (ref.provider, ref.display): ref for ref in self.config.refs.values()
        }
        self._cache: dict[_CacheKey, _Cached] = {}
        self._inflight: dict[_CacheKey, asyncio.Task[Secret]] = {}

    @classmethod
    def from_config_dir(cls, config_dir: Path | str, **kwargs: object) -> VaultManager:
        """Load ``<config_dir>/vault.yaml``; a missing file gives an empty manager (no
        destination is vault-managed). Raises :class:`VaultConfigError` for a bad file."""
        path = Path(config_dir) / "vault.yaml"
        config = load_vault_config(path) if path.is_file() else VaultConfig(source=str(path))
        return cls(config, **kwargs)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return (
            f"VaultManager(destinations={len(self.config.injections)}, cached={len(self._cache)})"
        )

    # -- lookup --------------------------------------------------------------------------

    @property
    def destinations(self) -> tuple[str, ...]:
        return tuple(self.config.injections)

    def injection_for(self, destination: str) -> Injection | None:
        return self.config.injections.get(destination)

    async def secret_for(self, injection: Injection) -> str:
        """The secret for ``injection``, from cache or one (coalesced) provider call.
        Raises :class:`CredentialUnavailable` on failure or timeout."""
        key = (injection.provider, injection.ref)
        ref = self._refs.get(key)
        if ref is None:
            raise VaultError(f"{injection.destination}: {injection.ref} is not configured")
        cached = self._cache.get(key)
        if cached is not None:
            age = self._clock() - cached.fetched_at
            if age < min(cached.ttl, injection.ttl_seconds):
                return cached.secret.reveal()
            if age >= cached.ttl:
                del self._cache[key]
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(
                self._fetch_and_cache(key, ref, injection.ttl_seconds)
            )
            self._inflight[key] = task
            task.add_done_callback(lambda t: self._fetch_done(key, t))
        try:
            # shield: one caller giving up (client disconnect) must not cancel the fetch
            # the other coalesced callers are waiting on.
            secret = await asyncio.shield(task)
        except CredentialUnavailable as exc:
            log.warning(
                "credential unavailable",
                extra={
                    "destination": injection.destination,
                    "provider": injection.provider,
                    "ref": injection.ref,
                    "error": str(exc),
                },
            )
            raise
        return secret.reveal()

    def _fetch_done(self, key: _CacheKey, task: asyncio.Task[Secret]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # mark retrieved: every waiter may have gone away

    async def _fetch_and_cache(self, key: _CacheKey, ref: SecretRef, ttl: float) -> Secret:
        secret = await self._fetch(ref)
        if ttl > 0:
            self._cache[key] = _Cached(secret, self._clock(), ttl)
        return secret

    async def _fetch(self, ref: SecretRef) -> Secret:
        provider = self._providers.get(ref.provider)
        if provider is None:
            raise CredentialUnavailable(f"{ref.provider}: provider not configured")
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                secret = await provider.fetch(ref)
        except TimeoutError:
            raise CredentialUnavailable(
                f"{ref.provider}: timed out after {self.timeout:g}s fetching {ref.display}"
            ) from None
        except VaultError:
            raise
        except Exception as exc:  # a provider bug must still fail closed, without details
            raise CredentialUnavailable(
                f"{ref.provider}: {type(exc).__name__} fetching {ref.display}"
            ) from None
        log.debug(
            "credential fetched",
            extra={
                "provider": ref.provider,
                "ref": ref.display,
                "latency_ms": round((time.perf_counter() - started) * 1000, 3),
            },
        )
        return secret

    # -- injection -----------------------------------------------------------------------

    def plan(self, injection: Injection, secret: str) -> AppliedCredential:
        """Pure: how to apply ``secret`` for ``injection``. Raises
        :class:`CredentialUnavailable` if the value cannot be sent safely (a line break
        would split the header; a ``url`` credential that is not an http(s) URL)."""
        scrubs = _variants(secret)
        headers: dict[str, str] = {}
        query: dict[str, str] = {}
        url: str | None = None
        if injection.mode == "header":
            assert injection.header and injection.template
            value = injection.template.replace("{secret}", secret)
            headers[injection.header] = value
            scrubs.add(value)
        elif injection.mode == "basic":
            user = injection.username
            raw = f"{user}:{secret}" if user is not None else f"{secret}:"
            token = base64.b64encode(raw.encode()).decode("ascii")
            headers["Authorization"] = f"Basic {token}"
            scrubs |= {token, f"Basic {token}"}
        elif injection.mode == "query":
            assert injection.query_param
            query[injection.query_param] = secret
        elif injection.mode == "url":
            parts = urlsplit(secret)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise CredentialUnavailable(
                    f"{injection.destination}: credential {injection.ref} is not an http(s) URL"
                )
            url = secret
            tail = parts.path + (f"?{parts.query}" if parts.query else "")
            if len(tail) >= 8:  # the path of a webhook URL is the secret part
                scrubs.add(tail)
        if any(_has_control(v) for v in headers.values()) or (url and _has_control(url)):
            raise CredentialUnavailable(
                f"{injection.destination}: credential {injection.ref} contains a line break"
            )
        ordered = sorted((s.encode() for s in scrubs if s), key=len, reverse=True)
        return AppliedCredential(headers=headers, query=query, url=url, scrub=tuple(ordered))

    @staticmethod
    def scrub(data: bytes, secrets: Sequence[bytes]) -> bytes:
        """See module-level :func:`scrub`."""
        return scrub(data, secrets)

    @staticmethod
    def scrub_text(text: str, secrets: Sequence[bytes | str]) -> str:
        """See module-level :func:`scrub_text`."""
        return scrub_text(text, secrets)

    # -- lifetime ------------------------------------------------------------------------

    def forget_expired(self) -> None:
        """Drop every cached secret whose TTL has passed."""
        now = self._clock()
        for key in [k for k, c in self._cache.items() if now - c.fetched_at >= c.ttl]:
            del self._cache[key]

    async def maintain(self) -> None:
        """One upkeep pass: drop expired secrets, renew provider tokens that are due."""
        self.forget_expired()
        for provider in self._providers.values():
            await provider.maintain()

    async def run_maintenance(self, interval: float = 30.0) -> None:
        """Run :meth:`maintain` every ``interval`` seconds until cancelled (a background
        task for the proxy; ``interval`` should be well under the shortest TTL)."""
        while True:
            try:
                await self.maintain()
            except Exception:
                log.exception("vault maintenance failed")
            await asyncio.sleep(interval)

    def close(self) -> None:
        for task in self._inflight.values():
            task.cancel()
        self._inflight.clear()
        self._cache.clear()
        for provider in self._providers.values():
            provider.close()

    # -- check ---------------------------------------------------------------------------

    async def check(self) -> list[tuple[str, bool, str]]:
        """Resolve every configured reference once (bypassing and not filling the cache)
        and report ``(destination, ok, message)``. Messages never include a value."""
        fetches: dict[_CacheKey, asyncio.Task[Secret]] = {}
        for ref in self.config.refs.values():
            key = (ref.provider, ref.display)
            if key not in fetches:
                fetches[key] = asyncio.ensure_future(self._fetch(ref))
        await asyncio.gather(*fetches.values(), return_exceptions=True)

        results: list[tuple[str, bool, str]] = []
        for destination, injection in self.config.injections.items():
            task = fetches[(injection.provider, injection.ref)]
            exc = task.exception()
            if exc is not None:
                message = str(exc) if isinstance(exc, VaultError) else type(exc).__name__
                results.append((destination, False, message))
                continue
            value = task.result().reveal()
            try:
                self.plan(injection, value)
            except VaultError as err:
                results.append((destination, False, scrub_text(str(err), [value])))
                continue
            results.append((destination, True, f"resolved {injection.ref} ({injection.mode})"))
        return results
