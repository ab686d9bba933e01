"""The ``env`` provider: secrets from the process environment."""

from __future__ import annotations

import os
from collections.abc import Mapping

from gate_proxy.vault.model import CredentialUnavailable, Secret, SecretRef
from gate_proxy.vault.providers.base import Provider, _as_secret


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
