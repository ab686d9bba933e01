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

from collections.abc import Mapping

from gate_proxy.vault.model import VaultConfig
from gate_proxy.vault.providers.aws import AwsProvider
from gate_proxy.vault.providers.base import BlockingProvider, Provider
from gate_proxy.vault.providers.env import EnvProvider
from gate_proxy.vault.providers.hashicorp import HashicorpProvider
from gate_proxy.vault.providers.onepassword import (
    OnePasswordClientFactory,
    OnePasswordProvider,
    sdk_client_factory,
)

__all__ = [
    "AwsProvider",
    "BlockingProvider",
    "EnvProvider",
    "HashicorpProvider",
    "OnePasswordClientFactory",
    "OnePasswordProvider",
    "Provider",
    "build_providers",
    "sdk_client_factory",
]


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
