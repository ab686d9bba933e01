"""The ``aws`` provider: AWS Secrets Manager through boto3.

boto3 blocks, so every call runs in a worker thread (:class:`BlockingProvider`).
"""

from __future__ import annotations

import json
import threading
from typing import Any

from gate_proxy.vault.model import (
    DEFAULT_TIMEOUT_SECONDS,
    AwsSettings,
    CredentialUnavailable,
    Secret,
    SecretRef,
)
from gate_proxy.vault.providers.base import BlockingProvider, _as_secret, _pick


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
