"""Credential vault: the gate fetches secrets at execution time and injects them, so agents
never hold production credentials. See docs/vault.md."""

from gate_proxy.vault.config import (
    CredentialUnavailable,
    Injection,
    Secret,
    SecretRef,
    VaultConfig,
    VaultConfigError,
    VaultError,
    load_vault_config,
    parse_vault_config,
)
from gate_proxy.vault.manager import REDACTED, AppliedCredential, VaultManager, scrub, scrub_text

__all__ = [
    "REDACTED",
    "AppliedCredential",
    "CredentialUnavailable",
    "Injection",
    "Secret",
    "SecretRef",
    "VaultConfig",
    "VaultConfigError",
    "VaultError",
    "VaultManager",
    "load_vault_config",
    "parse_vault_config",
    "scrub",
    "scrub_text",
]
