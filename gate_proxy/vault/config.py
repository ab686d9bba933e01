"""The ``vault.yaml`` parser; the vault's vocabulary (``gate_proxy.vault.model``) re-exported.

The file format is a superset of Zehrava Gate's ``config/vault.yaml.example``: a Zehrava
file loads unchanged. Every problem is a :class:`VaultConfigError` that names the file, the
line (from the YAML node marks) and the field, e.g.
``config/vault.yaml:12: credentials["stripe.refund"].inject: must be one of ...``.
Unknown keys are errors, so a typo cannot silently turn injection off.

Nothing here fetches a secret; parsing only checks the *shape* of references.
"""

from __future__ import annotations

from pathlib import Path

from gate_proxy.loaders.yaml_reader import parse_yaml_with_lines, read_config_text
from gate_proxy.vault.config_build import _build
from gate_proxy.vault.model import (
    DEFAULT_TIMEOUT_SECONDS,
    DEFAULT_TTL_SECONDS,
    PROVIDERS,
    AwsSettings,
    CredentialUnavailable,
    HashicorpSettings,
    Injection,
    OnePasswordSettings,
    Secret,
    SecretRef,
    VaultConfig,
    VaultConfigError,
    VaultError,
)

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


def parse_vault_config(text: str, source: str = "<string>") -> VaultConfig:
    """Parse ``vault.yaml`` text; every problem is a :class:`VaultConfigError`."""
    data, lines = parse_yaml_with_lines(text, source, VaultConfigError, text_keys=True)
    if data is None:
        return VaultConfig(source=source)
    return _build(data, source, lines)


def load_vault_config(path: Path | str) -> VaultConfig:
    path = Path(path)
    return parse_vault_config(read_config_text(path, VaultConfigError), source=str(path))
