"""What every secret provider shares: the :class:`Provider` interface, the worker-thread
base for blocking SDKs, and the helpers that turn fetched values into :class:`Secret`.

Error messages are written from names and status codes only; library exception text is
never passed through unfiltered and exceptions are raised ``from None`` so no chained
traceback can carry response data.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from gate_proxy.vault.model import CredentialUnavailable, Secret, SecretRef


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
