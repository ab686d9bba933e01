"""Where a request is going: one config snapshot, one authority, one registry match.

- ``http_connect``: a CONNECT to a host where nothing could ever be forwarded is refused
  before any upstream contact (not even TCP).
- ``requestheaders``: the config snapshot is taken (the whole request uses it), reverse
  routes are mapped to their upstream, every name the request gives for its target must
  agree with the decided authority (``core/authority.py``: 421 otherwise), the authority
  is made canonical, the path normalised, and the registry matched — once.

What the request *does* is decided later, on the whole body (``decision.py``).
"""

import logging

from mitmproxy import connection, http

from gate_proxy.core.authority import (
    FORWARDING_HOST_HEADERS,
    AuthorityClaims,
    AuthorityProblem,
    check_authority,
    forwarded_hosts,
)
from gate_proxy.core.urlnorm import DEFAULT_PORTS, normalize_host, normalize_path
from gate_proxy.proxy.addons.guard import fail_closed, gate_response, refuse
from gate_proxy.proxy.flowstate import state_of
from gate_proxy.proxy.runtime import ProxyRuntime

log = logging.getLogger("gate.proxy")


class GateRouting:
    def __init__(self, runtime: ProxyRuntime) -> None:
        self.runtime = runtime
        # client connection id -> the CONNECT authority its tunnel was decided on
        self._tunnels: dict[str, tuple[str, int]] = {}

    def client_disconnected(self, client: connection.Client) -> None:
        self._tunnels.pop(client.id, None)

    @fail_closed("http_connect_destination")
    def http_connect(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        state = state_of(flow)
        state.snapshot = snapshot = self.runtime.config()
        verdict = snapshot.registry.host_decision(flow.request.host, flow.request.port)
        if not verdict.allow:
            # Refused at CONNECT: the upstream is never contacted, not even by TCP.
            refuse(
                flow,
                gate_response(
                    403,
                    status="blocked",
                    reason_code=verdict.reason_code or "destination_blocked",
                    message=f"CONNECT to {verdict.host} is not allowed",
                    destination=verdict.host,
                ),
            )
            return
        self._tunnels[flow.client_conn.id] = (flow.request.host, flow.request.port)

    @fail_closed("requestheaders")
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        state = state_of(flow)
        state.snapshot = snapshot = self.runtime.config()
        request = flow.request
        if state.reverse and request.authority:
            # The reverse listener decides on its route table, never on a URL the client
            # names in an absolute-form request line.
            refuse(flow, authority_refusal(ABSOLUTE_FORM_ON_REVERSE))
            return
        if state.reverse:
            target = snapshot.registry.match_route(request.path)
            if target is None:
                refuse(
                    flow,
                    gate_response(
                        404,
                        status="blocked",
                        reason_code="route_not_found",
                        message="no reverse-proxy route for this path",
                    ),
                )
                return
            request.scheme = target.scheme
            request.host = target.host
            request.port = target.port
            request.path = target.path
        problem = check_authority(self._claims(flow, state.reverse))
        if problem is not None:
            refuse(flow, authority_refusal(problem))
            return
        canonical_authority(flow)
        limit = self.runtime.settings.proxy_body_limit
        length = request.headers.get("Content-Length")
        if length is not None and length.strip().isdigit() and int(length) > limit:
            refuse(flow, too_large(limit))
            return
        # The decision needs the whole body, so it is never streamed upstream early.
        request.stream = False
        # Forward exactly what is matched: no parser differential between gate and upstream.
        request.path = normalize_path(request.path).target
        state.match = snapshot.registry.match(
            request.host, request.port, request.method, request.path
        )

    def _claims(self, flow: http.HTTPFlow, reverse: bool) -> AuthorityClaims:
        """Every name this request gives for its target (see core/authority.py)."""
        request = flow.request
        headers = request.headers
        tunnel = None if reverse else self._tunnels.get(flow.client_conn.id)
        forwarding = [
            (name, value) for name in FORWARDING_HOST_HEADERS for value in headers.get_all(name)
        ]
        forwarding += [("Forwarded host", h) for h in forwarded_hosts(headers.get_all("forwarded"))]
        return AuthorityClaims(
            scheme=request.scheme,
            decided_host=request.host,
            decided_port=request.port,
            tunnel=tunnel,
            # Only inside a tunnel does the client's SNI name the target (outside one it
            # would name the proxy itself).
            sni=flow.client_conn.sni if tunnel is not None else None,
            target=request.authority or None,
            target_label=":authority" if request.is_http2 else "absolute-form target",
            # Reverse routes rewrite Host to the route target (the client named the gate).
            host_headers=() if reverse else tuple(headers.get_all("host")),
            forwarding=tuple(forwarding),
        )


def canonical_authority(flow: http.HTTPFlow) -> None:
    """Send the decided authority in one canonical spelling, and only there.

    HTTP/1 goes upstream in origin-form with exactly one Host header; HTTP/2 carries it
    in :authority. Upstreams then have one name to route on: the one that was checked.
    """
    request = flow.request
    host = normalize_host(request.host)
    shown = f"[{host}]" if ":" in host else host
    if request.port != DEFAULT_PORTS.get(request.scheme, -1):
        shown = f"{shown}:{request.port}"
    if request.is_http2 or request.is_http3:
        request.authority = shown
        if "host" in request.headers:
            request.headers["Host"] = shown
        return
    request.authority = ""
    request.headers["Host"] = shown


ABSOLUTE_FORM_ON_REVERSE = AuthorityProblem(
    400,
    "invalid_authority",
    "reverse-proxy routes take origin-form requests (a path), not a URL",
    "absolute-form target",
)


def authority_refusal(problem: AuthorityProblem) -> http.Response:
    return gate_response(
        problem.status,
        status="blocked",
        reason_code=problem.reason_code,
        message=problem.message,
        error=problem.reason_code,
        claim=problem.claim,
    )


def too_large(limit: int) -> http.Response:
    # Connection: close, because the client may still be sending a body we will not read.
    return gate_response(
        413,
        status="blocked",
        reason_code="payload_too_large",
        message=f"request body exceeds the gate's limit of {limit} bytes",
        error="payload_too_large",
        headers={"Connection": "close"},
    )
