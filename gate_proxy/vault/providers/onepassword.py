"""The ``onepassword`` provider: 1Password through onepassword-sdk (natively async)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from gate_proxy.vault.model import (
    CredentialUnavailable,
    OnePasswordSettings,
    Secret,
    SecretRef,
)
from gate_proxy.vault.providers.base import Provider, _as_secret, _safe_detail

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
