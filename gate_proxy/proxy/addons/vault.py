"""Credential injection (issue #4, seed 003's Mode C): the agent never holds the secret.

Two small addons around the decision:
- `AgentCredentialGuard` (before it): on a vault-managed destination, credentials the agent
  sent itself are removed, or refused with 400 when the destination says so.
- `CredentialInjector` (after it): for a request that is really going upstream, fetch the
  secret, inject it, and scrub it from whatever comes back: reason phrase, headers,
  trailers and the body, decoded first if the upstream compressed it (an answer that
  cannot be decoded is a 502). A fetch failure is a 503 and an `execution_failed`;
  nothing leaves without its credential. What is and is not scrubbed: docs/vault.md.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from mitmproxy import http

from gate_proxy.proxy.addons.guard import fail_closed, gate_response, refuse
from gate_proxy.proxy.flowstate import state_of
from gate_proxy.proxy.runtime import ProxyRuntime
from gate_proxy.vault import CredentialUnavailable, scrub, scrub_text
from gate_proxy.vault.scrubbing import (
    BodyDecodeError,
    BodyDecoder,
    StreamScrubber,
    UnsupportedEncoding,
    check_transfer_coding,
    content_coding,
    decode_body,
    scrub_fields,
    without_fields,
)

log = logging.getLogger("gate.vault")


def _destination(flow: http.HTTPFlow) -> str | None:
    """The request's destination, from the one registry match GateRouting made."""
    match = state_of(flow).match
    if match is None or match.blocked or match.passthrough:
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
        destination = _destination(flow)
        injection = self.runtime.vault.injection_for(destination) if destination else None
        if injection is None:
            return
        state_of(flow).injection = injection
        request = flow.request
        # Names from the raw fields: Headers.keys() is quadratic in mitmproxy 12.
        supplied = injection.agent_supplied(
            (name.decode("latin-1") for name, _ in request.headers.fields),
            (name for name, _ in request.query.fields),
        )
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


# A buffered body is decoded at most to this size: a decompression bomb from a hostile
# upstream must not exhaust the gate's memory. Buffered bodies are small (larger ones are
# streamed), so a real answer stays far below it.
MAX_DECODED_BODY = 64 * 1024 * 1024
_CONTENT_LENGTH = b"content-length"
_CONTENT_ENCODING = b"content-encoding"
_TRANSFER_ENCODING = b"transfer-encoding"


@dataclass(slots=True)
class Scrubbing:
    """What the response of one injected request must be cleaned of, and how far that got."""

    secrets: tuple[bytes, ...] = field(repr=False)  # credentials: never in a repr or log
    destination: str
    intent_id: str
    coding: str | None = None  # buffered body: the content coding to undo before scrubbing
    refusal: tuple[str, str] | None = None  # (reason_code, message): answer 502 instead


class CredentialInjector:
    def __init__(self, runtime: ProxyRuntime) -> None:
        self.runtime = runtime

    @fail_closed("vault_inject")
    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        state = state_of(flow)
        injection, in_flight = state.injection, state.in_flight
        if injection is None or (in_flight is None and not state.inject_without_execution):
            # Not vault-managed, or not going upstream as an execution (shadow). MCP
            # protocol traffic and read tools (proxy/addons/mcp.py) get the credential too:
            # an MCP server authenticates its whole session.
            return
        try:
            secret = await self.runtime.vault.secret_for(injection)
            applied = self.runtime.vault.plan(injection, secret)
        except CredentialUnavailable as exc:
            if in_flight is not None:
                state.in_flight = None
                await self.runtime.usecases.executions.record_outcome(
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
                    intent_id=in_flight.intent_id if in_flight else None,
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
        # Scrubbing needs plain bytes. No Accept-Encoding would mean "any coding is fine"
        # (RFC 9110 §12.5.3); identity asks for none. An upstream may compress anyway:
        # the response hooks decode, or refuse what they cannot.
        request.headers["Accept-Encoding"] = "identity"
        state.scrubbing = Scrubbing(
            applied.scrub, injection.destination, in_flight.intent_id if in_flight else ""
        )

    @fail_closed("vault_scrub_headers")
    def responseheaders(self, flow: http.HTTPFlow) -> None:
        scrubbing: Scrubbing | None = state_of(flow).scrubbing
        response = flow.response
        if scrubbing is None or response is None:
            return
        secrets = scrubbing.secrets
        response.data.reason = scrub(response.data.reason, secrets)  # HTTP/1 reason phrase
        response.headers.fields = scrub_fields(response.headers.fields, secrets)
        try:
            check_transfer_coding(_values(response.headers.fields, _TRANSFER_ENCODING))
            coding = content_coding(_values(response.headers.fields, _CONTENT_ENCODING))
        except UnsupportedEncoding as exc:
            # Nothing of this body may reach the agent. It is buffered (mitmproxy's body size
            # limit bounds it) and `response` answers 502 in its place.
            scrubbing.refusal = ("upstream_encoding_unsupported", str(exc))
            response.stream = False
            return
        if not response.stream:
            scrubbing.coding = coding
        elif not _has_body(flow):
            response.stream = False  # nothing to stream: `response` sees the (empty) body
            scrubbing.coding = coding
        else:
            _reframe_for_scrubbing(flow, coding)
            decoder = BodyDecoder(coding) if coding else None
            response.stream = StreamScrubber(secrets, decoder, on_error=_aborter(flow, scrubbing))

    @fail_closed("vault_scrub_body")
    def response(self, flow: http.HTTPFlow) -> None:
        state = state_of(flow)
        scrubbing: Scrubbing | None = state.scrubbing
        state.scrubbing = None
        response = flow.response
        if scrubbing is None or response is None:
            return
        if response.trailers:  # sent after this hook, streamed or not
            response.trailers.fields = scrub_fields(response.trailers.fields, scrubbing.secrets)
        if scrubbing.refusal is not None:
            self._refuse(flow, scrubbing, *scrubbing.refusal)
            return
        if response.stream:
            return  # scrubbed chunk by chunk by its StreamScrubber
        body = response.raw_content or b""
        decoded = scrubbing.coding is not None and bool(body)
        if decoded:
            try:
                body = decode_body(body, scrubbing.coding or "", max_output=MAX_DECODED_BODY)
            except BodyDecodeError as exc:
                self._refuse(flow, scrubbing, "upstream_encoding_invalid", str(exc))
                return
            response.headers.fields = without_fields(response.headers.fields, [_CONTENT_ENCODING])
        cleaned = scrub(body, scrubbing.secrets)
        if decoded or cleaned != body:
            response.set_content(cleaned)  # no Content-Encoding left: sets the new length

    def _refuse(self, flow: http.HTTPFlow, scrubbing: Scrubbing, reason: str, detail: str) -> None:
        log.warning(
            "upstream response refused",
            extra={"destination": scrubbing.destination, "reason_code": reason},
        )
        self.runtime.usecases.metrics.upstream_errors.inc(reason)
        message = scrub_text(
            f"the upstream's answer cannot be cleaned of the injected credential: {detail}; "
            "its body was not passed on",
            scrubbing.secrets,
        )
        refuse(
            flow,
            gate_response(
                502,
                status="error",
                reason_code=reason,
                message=message,
                intent_id=scrubbing.intent_id,
                destination=scrubbing.destination,
                error="bad_gateway",
            ),
        )


def _values(fields: tuple[tuple[bytes, bytes], ...], name: bytes) -> list[bytes]:
    return [value for key, value in fields if key.lower() == name]


def _has_body(flow: http.HTTPFlow) -> bool:
    assert flow.response is not None
    code = flow.response.status_code
    return flow.request.method.upper() != "HEAD" and code >= 200 and code not in (204, 304)


def _reframe_for_scrubbing(flow: http.HTTPFlow, coding: str | None) -> None:
    """A scrubbed (or decoded) stream has a length nobody knows yet: the upstream's
    Content-Length must go, or the agent waits for bytes that never come.

    mitmproxy frames what it sends the agent from these headers: over HTTP/1 it sends
    chunks only if Transfer-Encoding says chunked (proxy/layers/http/_http1.py,
    Http1Server.send), so that is added for an HTTP/1.1 response to an HTTP/1.1 agent;
    h2 strips it for an HTTP/2 agent (which ends the stream instead). Anything else
    (HTTP/1.0 on either side, or an HTTP/2 upstream to an HTTP/1 agent) is delimited by
    closing the connection, which mitmproxy does when there is no length.
    """
    response = flow.response
    assert response is not None
    drop = [_CONTENT_LENGTH, _TRANSFER_ENCODING] + ([_CONTENT_ENCODING] if coding else [])
    fields = without_fields(response.headers.fields, drop)
    if response.http_version == "HTTP/1.1" and flow.request.http_version in (
        "HTTP/1.1",
        "HTTP/2.0",
    ):
        fields += ((b"transfer-encoding", b"chunked"),)
    response.headers.fields = fields


def _aborter(flow: http.HTTPFlow, scrubbing: Scrubbing) -> Callable[[BodyDecodeError], None]:
    """A streamed body that stops decoding is cut off: the rest is dropped (by the
    StreamScrubber) and the exchange is killed, so the agent sees a broken response
    rather than a complete-looking truncated one."""

    def abort(exc: BodyDecodeError) -> None:
        log.warning(
            "streamed upstream response aborted",
            extra={
                "destination": scrubbing.destination,
                "reason_code": "upstream_encoding_invalid",
                "error": str(exc),
            },
        )
        if flow.killable:
            flow.kill()

    return abort
