"""SSRF-safe egress for proxied requests: resolve once, check every answer, connect to it.

Two hooks, because mitmproxy opens upstream connections after the request hooks:

1. ``request`` (after GateDecision, before GateForwarding): a request that is about to go
   upstream has its host resolved once (literal IPs in any spelling are read directly) and
   every answer checked (``core/egress.py``). A denial is a 403 ``egress_address_denied``
   before any connection exists. The checked addresses are remembered per client
   connection and (host, port).
2. ``server_connect``: mitmproxy is about to open a TCP connection to ``server.address``,
   a (name, port) pair. The address is left alone — mitmproxy matches later requests to
   this connection by it, so changing it would stop connection reuse, and it is frozen
   once the connection opens — and the *resolution* is pinned instead: the checked
   addresses are put in a context variable of the task that opens the socket, and the
   loop's ``getaddrinfo`` (wrapped once, see ``pin_resolution``) answers that exact
   (name, port) from them. So the socket layer never asks DNS again, and a DNS answer
   that changes between check and connect (rebinding) cannot reach an internal host. A
   connection nobody checked (no remembered answer) is resolved and checked right here,
   and refused by setting ``server.error``. ``server_connected`` then verifies the peer
   address is one of the checked ones and aborts the connection otherwise. TLS to the
   upstream uses the checked name as SNI, never a name the client chose.

Redirects are not followed: mitmproxy hands a 3xx to the agent like any other response,
and the agent's follow-up request comes back through the gate and is checked again.

Any exception refuses: 503 in the request hook (``fail_closed``), and in the connection
hooks the connection is killed. mitmproxy would log an addon exception and connect anyway.
"""

import asyncio
import contextvars
import ipaddress
import logging
import socket
from typing import Any

from mitmproxy import connection, ctx, http
from mitmproxy.proxy.server_hooks import ServerConnectionHookData

from gate_proxy.core.egress import Verdict, parse_host_address
from gate_proxy.egress_resolver import EgressResolver
from gate_proxy.proxy.addons.guard import fail_closed, gate_response, refuse
from gate_proxy.proxy.flowstate import state_of

log = logging.getLogger("gate.proxy")

REASON_CODE = "egress_address_denied"
UNRESOLVABLE = "unresolvable"  # egress_resolver: the host name did not resolve

Pins = dict[tuple[str, int], tuple[str, ...]]


class EgressGuard:
    def __init__(self, runtime: Any, *, resolver: EgressResolver | None = None) -> None:
        self.runtime = runtime
        self.egress = resolver or EgressResolver.from_settings(runtime.settings)
        # client connection id -> (host, port) -> checked addresses, IPv4 first
        self._pins: dict[str, Pins] = {}
        # server connection id -> the addresses it may connect to (checked in server_connected)
        self._checked: dict[str, frozenset[str]] = {}
        self._tasks: set[asyncio.Future[None]] = set()

    # -- the request: check before anything connects --------------------------------------

    @fail_closed("egress")
    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live or not self.egress.enabled:
            return
        host, port = flow.request.host, flow.request.port
        verdict = await self.egress.check(host, port)
        if not verdict.allowed:
            self._deny(flow, host, port, verdict)
            return
        self._pins.setdefault(flow.client_conn.id, {})[(_key(host), port)] = verdict.addresses

    def _deny(self, flow: http.HTTPFlow, host: str, port: int, verdict: Verdict) -> None:
        state = state_of(flow)
        in_flight, state.in_flight = state.in_flight, None
        unresolvable = verdict.reason == UNRESOLVABLE
        kept = (
            "; the approval was not used and stays valid until it expires"
            if in_flight is not None
            else ""
        )
        if unresolvable:
            # Not a policy refusal: the name did not resolve (now). Nothing was sent.
            state.outcome, state.reason = "error", "upstream_unresolvable"
            answer = gate_response(
                502,
                status="error",
                error="upstream_unresolvable",
                reason_code="upstream_unresolvable",
                message=f"{host}:{port}: the name did not resolve; nothing was sent upstream{kept}",
                intent_id=in_flight.intent_id if in_flight else None,
                destination=host,
            )
        else:
            # The request's one record line (GateRecord) says what happened: a refusal
            # after the decision, with the egress reason.
            state.outcome, state.reason = "blocked", f"{REASON_CODE}:{verdict.reason}"
            answer = gate_response(
                403,
                status="blocked",
                reason_code=REASON_CODE,
                message=f"{host}:{port}: {verdict.message}; nothing was sent upstream{kept} "
                "(allow it deliberately with egress_allow in gate.yaml)",
                intent_id=in_flight.intent_id if in_flight else None,
                destination=host,
                egress={"reason": verdict.reason, "address": verdict.address},
            )
        refuse(flow, answer)
        usecases = self.runtime.usecases
        usecases.metrics.upstream_errors.inc("unresolvable" if unresolvable else "egress_denied")
        if in_flight is not None:
            # The decision already wrote execution_requested; nothing left the gate, so the
            # approval is released (the ledger records the attempt and why it was not sent).
            detail = {
                "error": "upstream_unresolvable" if unresolvable else REASON_CODE,
                "reason": verdict.reason,
                "address": verdict.address,
            }
            task = asyncio.ensure_future(
                usecases.executions.release_unsent(in_flight.intent_id, in_flight.agent_id, detail)
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def done(self) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)

    # -- the connection: connect to the checked address ----------------------------------

    async def server_connect(self, data: ServerConnectionHookData) -> None:
        try:
            await self._pin(data)
        except Exception as exc:  # never connect unchecked: mitmproxy would connect anyway
            log.error(
                "egress guard failed; refusing the connection",
                extra={"event": "hook_failed", "hook": "server_connect", "error": repr(exc)},
            )
            data.server.error = f"{REASON_CODE}: the gate could not check this connection"

    async def _pin(self, data: ServerConnectionHookData) -> None:
        server = data.server
        if server.error or server.address is None:
            return
        host, port = server.address[0], server.address[1]
        if server.tls and parse_host_address(host) is None:
            # The upstream TLS name is the decided host (the one the request was checked
            # against), never the SNI the client sent inside its tunnel.
            server.sni = _key(host)
        if not self.egress.enabled:
            return
        if server.via is not None:
            # An upstream proxy would resolve the name itself; the gate never configures one.
            server.error = f"{REASON_CODE}: upstream proxies bypass the egress check"
            return
        addresses = self._pins.get(data.client.id, {}).get((_key(host), port))
        if addresses is None:
            verdict = await self.egress.check(host, port)
            if not verdict.allowed:
                server.error = f"{REASON_CODE}: {host}:{port}: {verdict.message}"
                log.warning(
                    "egress denied at connect",
                    extra={"event": "egress_denied", "reason": verdict.reason},
                )
                return
            addresses = verdict.addresses
        pin_resolution(host, port, addresses)
        self._checked[server.id] = frozenset(addresses)

    def server_connected(self, data: ServerConnectionHookData) -> None:
        checked = self._checked.pop(data.server.id, None)
        peer = data.server.peername
        if checked is None or peer is None:
            return
        try:
            peer_ip = ipaddress.ip_address(peer[0])
            if any(peer_ip == ipaddress.ip_address(a) for a in checked):
                return
        except ValueError:
            pass
        # Unreachable unless the pin was bypassed: never send a byte to that peer.
        log.error(
            "egress: connected peer is not a checked address; aborting",
            extra={"event": "egress_pin_violation"},
        )
        data.server.error = f"{REASON_CODE}: connected to an unchecked address"
        abort_server_connection(data)

    def server_connect_error(self, data: ServerConnectionHookData) -> None:
        self._checked.pop(data.server.id, None)

    def client_disconnected(self, client: connection.Client) -> None:
        self._pins.pop(client.id, None)


def _key(host: str) -> str:
    return host.rstrip(".").lower()


# -- pinned resolution ----------------------------------------------------------------------

# (name, port, checked addresses) for the socket the current task is about to open.
_PINNED: contextvars.ContextVar[tuple[str, int, tuple[str, ...]] | None] = contextvars.ContextVar(
    "gate_egress_pin", default=None
)


def pin_resolution(host: str, port: int, addresses: tuple[str, ...]) -> None:
    """Make the next resolution of (host, port) in this task answer ``addresses`` only.

    mitmproxy runs the ``server_connect`` hook and then ``asyncio.open_connection`` in the
    same task, so a context variable set in the hook is what the connect sees, and no
    other task (another client, a webhook) is affected.
    """
    _install_pinned_getaddrinfo(asyncio.get_running_loop())
    _PINNED.set((host, port, tuple(addresses)))


def _install_pinned_getaddrinfo(loop: asyncio.AbstractEventLoop) -> None:
    if getattr(loop.getaddrinfo, "_gate_pinned", False):
        return
    original = loop.getaddrinfo

    async def getaddrinfo(
        host: Any, port: Any, *, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
    ) -> list[Any]:
        pin = _PINNED.get()
        if pin is not None and host == pin[0] and _port(port) == pin[1]:
            return _addrinfo(pin[2], pin[1], family)
        return await original(host, port, family=family, type=type, proto=proto, flags=flags)

    getaddrinfo._gate_pinned = True  # type: ignore[attr-defined]
    loop.getaddrinfo = getaddrinfo  # type: ignore[method-assign]


def _port(port: Any) -> int | None:
    try:
        return int(port)
    except (TypeError, ValueError):
        return None


def _addrinfo(addresses: tuple[str, ...], port: int, family: int) -> list[Any]:
    infos = []
    for address in addresses:
        ip = ipaddress.ip_address(address)
        if ip.version == 6:
            if family not in (0, socket.AF_INET6):
                continue
            infos.append((socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "",
                          (address, port, 0, 0)))  # fmt: skip
        else:
            if family not in (0, socket.AF_INET):
                continue
            infos.append((socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "",
                          (address, port)))  # fmt: skip
    if not infos:
        raise OSError(f"no checked address of the requested family for port {port}")
    return infos


def abort_server_connection(data: ServerConnectionHookData) -> None:
    master = getattr(ctx, "master", None)
    proxyserver = master.addons.get("proxyserver") if master is not None else None
    handler = proxyserver.connections.get(data.client.id) if proxyserver else None
    io = handler.transports.get(data.server) if handler else None
    writer = getattr(io, "writer", None)
    if writer is not None:
        writer.transport.abort()
