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
        # client connection id -> (Proxy-Authorization value, its user, its key's hash): a
        # keep-alive client sends the same header on every request, so it is decoded and
        # hashed once per connection. The agent behind the hash is still looked up on every
        # request (Agents.authenticate_hash), so a revocation bites as before.
        self._decoded: dict[str, tuple[str, str, str]] = {}

    def _decode(self, header: str | None, client_id: str | None) -> tuple[str, str]:
        """(user, key hash) of a ``Basic`` credential; decoded once per connection."""
        if header and client_id is not None:
            known = self._decoded.get(client_id)
            if known is not None and known[0] == header:
                return known[1], known[2]
        parsed = parse_basic(header) if header else None
        if parsed is None:
            raise Unauthenticated("proxy_auth_required", "Proxy-Authorization: Basic is required")
        user, key = parsed
        key_hash = hash_key(key)
        if header and client_id is not None:
            self._decoded[client_id] = (header, user, key_hash)
        return user, key_hash

    async def _from_basic(
        self, header: str | None, client_id: str | None = None
    ) -> tuple[Principal, str]:
        user, key_hash = self._decode(header, client_id)
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
        self._decoded.pop(client.id, None)
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
        own = gate_fields(headers.fields)
        try:
            if reverse and own.get(_GATE_KEY):
                principal = await agents.authenticate(own[_GATE_KEY])
            elif _PROXY_AUTHORIZATION in own:
                principal, _ = await self._from_basic(
                    own[_PROXY_AUTHORIZATION], flow.client_conn.id
                )
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
        state.retry_of = own.get(_INTENT_ID)
        state.wait = own.get(_WAIT, "").strip().lower() in ("true", "1", "yes")
        strip_gate_headers(flow.request.headers)


_PROXY_AUTHORIZATION = b"proxy-authorization"
_GATE_KEY = b"x-gate-key"
_INTENT_ID = b"x-gate-intent-id"
_WAIT = b"x-gate-wait"
_GATE_FIELDS = frozenset((_PROXY_AUTHORIZATION, _GATE_KEY, _INTENT_ID, _WAIT))


def gate_fields(fields: tuple[tuple[bytes, bytes], ...]) -> dict[bytes, str]:
    """The gate's own request headers (lower-case name -> value), in one pass over the raw
    fields, read as mitmproxy's ``Headers.get`` reads them: names compared without case,
    repeated fields joined with ", ", values decoded as UTF-8 with surrogateescape."""
    found: dict[bytes, list[bytes]] = {}
    for name, value in fields:
        key = name.lower()
        if key in _GATE_FIELDS:
            found.setdefault(key, []).append(value)
    return {
        key: ", ".join(value.decode("utf-8", "surrogateescape") for value in values)
        for key, values in found.items()
    }


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
