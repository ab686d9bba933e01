"""Credential injection (issue #4, seed 003's Mode C): the agent never holds the secret.

Two small addons around the decision:
- `AgentCredentialGuard` (before it): on a vault-managed destination, credentials the agent
  sent itself are removed, or refused with 400 when the destination says so.
- `CredentialInjector` (after it): for a request that is really going upstream, fetch the
  secret, inject it, and scrub it from whatever comes back. A fetch failure is a 503 and
  an `execution_failed`; nothing leaves without its credential.
"""

import logging
from typing import Any

from mitmproxy import http

from addons.decision import InFlight
from addons.guard import fail_closed, gate_response, refuse
from gate_proxy.core.urlnorm import normalize_path
from gate_proxy.proxy.runtime import ProxyRuntime
from gate_proxy.vault import CredentialUnavailable, Injection, scrub, scrub_text

log = logging.getLogger("gate.vault")


def _destination(runtime: ProxyRuntime, flow: http.HTTPFlow) -> str | None:
    request = flow.request
    match = runtime.registry().match(
        request.host, request.port, request.method, normalize_path(request.path).target
    )
    if match.blocked or match.passthrough:
        return None
    return match.destination or f"{match.host}.http"


class AgentCredentialGuard:
    def __init__(self, runtime: ProxyRuntime) -> None:
        self.runtime = runtime

    @fail_closed("vault_guard")
    def request(self, flow: http.HTTPFlow) -> None:
        vault = self.runtime.vault
        if flow.response or flow.error or not flow.live or vault is None:
            return
        if not vault.destinations:
            return  # no vault-managed destination: spare every request a registry lookup
        destination = _destination(self.runtime, flow)
        injection = self.runtime.vault.injection_for(destination) if destination else None
        if injection is None:
            return
        flow.metadata["gate_injection"] = injection
        request = flow.request
        supplied = injection.agent_supplied(request.headers.keys(), request.query.keys())
        if not supplied:
            return
        if injection.on_agent_credential == "reject":
            refuse(
                flow,
                gate_response(
                    400,
                    status="blocked",
                    reason_code="agent_credential_not_allowed",
                    message=f"{destination} is vault-managed; do not send {', '.join(supplied)}",
                    destination=destination,
                    error="bad_request",
                ),
            )
            return
        for name in injection.strip:
            request.headers.pop(name, None)
        for name in injection.strip_query:
            request.query.pop(name, None)


class CredentialInjector:
    def __init__(self, runtime: ProxyRuntime) -> None:
        self.runtime = runtime

    @fail_closed("vault_inject")
    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        injection: Injection | None = flow.metadata.get("gate_injection")
        in_flight: InFlight | None = flow.metadata.get("gate_in_flight")
        if injection is None or in_flight is None:
            return  # not vault-managed, or not going upstream as an execution (shadow)
        try:
            secret = await self.runtime.vault.secret_for(injection)
            applied = self.runtime.vault.plan(injection, secret)
        except CredentialUnavailable as exc:
            flow.metadata.pop("gate_in_flight", None)
            await self.runtime.service.record_outcome(
                in_flight.intent_id,
                in_flight.agent_id,
                False,
                {"error": "credential_unavailable", "provider": injection.provider},
            )
            refuse(
                flow,
                gate_response(
                    503,
                    status="error",
                    reason_code="credential_unavailable",
                    message=f"the credential for {injection.destination} is unavailable: {exc}",
                    intent_id=in_flight.intent_id,
                    destination=injection.destination,
                    error="credential_unavailable",
                ),
            )
            return
        request = flow.request
        for name, value in applied.headers.items():
            request.headers[name] = value
        for name, value in applied.query.items():
            request.query[name] = value
        if applied.url:
            request.url = applied.url
        # Scrubbing needs plain bytes: ask the upstream not to compress its answer.
        request.headers.pop("Accept-Encoding", None)
        flow.metadata["gate_scrub"] = applied.scrub

    @fail_closed("vault_scrub_headers")
    def responseheaders(self, flow: http.HTTPFlow) -> None:
        secrets: tuple[bytes, ...] | None = flow.metadata.get("gate_scrub")
        if not secrets or flow.response is None:
            return
        texts = tuple(s.decode("utf-8", "replace") for s in secrets)
        headers = flow.response.headers
        for name in list(headers.keys()):
            values = headers.get_all(name)
            cleaned = [scrub_text(value, texts) for value in values]
            if cleaned != values:
                headers.set_all(name, cleaned)
        if flow.response.stream:
            flow.response.stream = StreamScrubber(secrets)

    @fail_closed("vault_scrub_body")
    def response(self, flow: http.HTTPFlow) -> None:
        secrets: tuple[bytes, ...] | None = flow.metadata.pop("gate_scrub", None)
        if not secrets or flow.response is None or flow.response.stream:
            return
        body = flow.response.get_content(strict=False) or b""
        cleaned = scrub(body, secrets)
        if cleaned != body:
            flow.response.set_content(cleaned)


class StreamScrubber:
    """Scrubs a streamed body chunk by chunk, holding back enough bytes that a secret split
    across two chunks is still found."""

    def __init__(self, secrets: tuple[bytes, ...]) -> None:
        self.secrets = secrets
        self.keep = max((len(s) for s in secrets), default=1) - 1
        self.pending = b""

    def __call__(self, chunk: bytes) -> Any:
        if not chunk:  # end of stream
            rest, self.pending = scrub(self.pending, self.secrets), b""
            return rest
        data = scrub(self.pending + chunk, self.secrets)
        if len(data) <= self.keep:
            self.pending = data
            return b""
        cut = len(data) - self.keep
        self.pending = data[cut:]
        return data[:cut]
