"""Who is asking: Proxy-Authorization on the forward proxy, X-Gate-Key on reverse routes.

The identity given on CONNECT carries over to every request inside that tunnel. The
gate's own credentials (Proxy-Authorization, X-Gate-*) never travel upstream.
"""

import base64
import binascii
import logging

from mitmproxy import connection, http
from mitmproxy.proxy.mode_specs import ReverseMode

from gate_proxy.api.errors import http_status
from gate_proxy.core.headers import HeadLimits, check_head, hygienic_fields
from gate_proxy.errors import GateError, Unauthenticated
from gate_proxy.keys import hash_key
from gate_proxy.principal import Principal
from gate_proxy.proxy.addons.guard import fail_closed, gate_response, refuse
from gate_proxy.proxy.flowstate import state_of
from gate_proxy.proxy.runtime import ProxyRuntime

log = logging.getLogger("gate.proxy")

REALM = 'Basic realm="gate-proxy"'


def is_reverse(flow: http.HTTPFlow) -> bool:
    return isinstance(flow.client_conn.proxy_mode, ReverseMode)


def parse_basic(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


class GateIdentity:
    """Authenticates every flow and strips the gate's own credentials."""

    def __init__(self, runtime: ProxyRuntime) -> None:
        self.runtime = runtime
        self._tunnels: dict[str, str] = {}  # client connection id -> key hash

    async def _from_basic(self, header: str | None) -> tuple[Principal, str]:
        parsed = parse_basic(header) if header else None
        if parsed is None:
            raise Unauthenticated("proxy_auth_required", "Proxy-Authorization: Basic is required")
        user, key = parsed
        key_hash = hash_key(key)
        principal = await self.runtime.usecases.agents.authenticate_hash(key_hash)
        if user not in (principal.id, principal.name):
            # A key presented under another agent's name is a mistake or an impersonation.
            raise Unauthenticated("proxy_auth_invalid", "user does not match the key's agent")
        return principal, key_hash

    def _deny(self, flow: http.HTTPFlow, exc: GateError, reverse: bool) -> None:
        status = http_status(exc)
        headers: dict[str, str] = {}
        if status in (401, 407):
            status = 401 if reverse else 407
            headers["WWW-Authenticate" if reverse else "Proxy-Authenticate"] = REALM
        refuse(
            flow,
            gate_response(
                status,
                status="blocked",
                reason_code=exc.error,
                message=exc.message,
                headers=headers,
            ),
        )

    @fail_closed("http_connect")
    async def http_connect(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        if refuse_bad_head(flow, flow.request.headers.fields, REQUEST_LIMITS):
            return
        try:
            principal, key_hash = await self._from_basic(
                flow.request.headers.get("Proxy-Authorization")
            )
        except GateError as exc:
            self._deny(flow, exc, reverse=False)
            return
        flow.request.headers.pop("Proxy-Authorization", None)
        state_of(flow).principal = principal
        # Only the key's hash is kept: inside the tunnel each request is re-checked
        # against it, so a revoked or suspended key stops working mid-connection.
        self._tunnels[flow.client_conn.id] = key_hash

    def client_disconnected(self, client: connection.Client) -> None:
        self._tunnels.pop(client.id, None)
        self.runtime.held.client_gone(client.id)

    @fail_closed("identity")
    async def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        headers = flow.request.headers
        # Before anything reads a header: bounded size, and no field servers could read
        # differently (obs-fold, bare CR/LF, names with spaces).
        if refuse_bad_head(flow, headers.fields, REQUEST_LIMITS):
            return
        reverse = is_reverse(flow)
        agents = self.runtime.usecases.agents
        try:
            if reverse and headers.get("X-Gate-Key"):
                principal = await agents.authenticate(headers["X-Gate-Key"])
            elif "Proxy-Authorization" in headers:
                principal, _ = await self._from_basic(headers["Proxy-Authorization"])
            elif not reverse and flow.client_conn.id in self._tunnels:
                principal = await agents.authenticate_hash(self._tunnels[flow.client_conn.id])
            else:
                raise Unauthenticated("proxy_auth_required", "gate credentials are required")
        except GateError as exc:
            self._deny(flow, exc, reverse)
            return
        state = state_of(flow)
        state.principal = principal
        state.reverse = reverse
        # Keep what the gate needs from its own headers, then drop them all.
        state.retry_of = headers.get("X-Gate-Intent-Id")
        state.wait = headers.get("X-Gate-Wait", "").strip().lower() in ("true", "1", "yes")
        strip_gate_headers(flow.request.headers)


REQUEST_LIMITS = HeadLimits()


def refuse_bad_head(
    flow: http.HTTPFlow, fields: tuple[tuple[bytes, bytes], ...], limits: HeadLimits
) -> bool:
    problem = check_head(fields, limits)
    if problem is None:
        return False
    refuse(
        flow,
        gate_response(
            problem.status,
            status="blocked",
            reason_code=problem.error,
            message=problem.message,
            error=problem.error,
            # The client may still be sending a head or body the gate will not read.
            headers={"Connection": "close"},
        ),
    )
    return True


def strip_gate_headers(headers: http.Headers) -> None:
    """Remove the gate's own headers, Proxy-* and hop-by-hop headers (RFC 9110 §7.6.1).

    One linear pass over the raw fields (see gate_proxy/core/headers.py).
    """
    kept = hygienic_fields(headers.fields)
    if len(kept) != len(headers.fields):
        headers.fields = kept
