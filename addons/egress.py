"""SSRF-safe egress for proxied requests: resolve once, check every answer, connect to it.

Two hooks, because mitmproxy opens upstream connections after the request hooks:

1. ``request`` (after GateDecision, before GateForwarding): a request that is about to go
   upstream has its host resolved once (literal IPs in any spelling are read directly) and
   every answer checked (``core/egress.py``). A denial is a 403 ``egress_address_denied``
   before any connection exists. The checked addresses are remembered per client
   connection and (host, port).
2. ``server_connect``: mitmproxy is about to open a TCP connection. The address is replaced
   by the checked IP, so the socket layer never resolves the name again: a DNS answer
   that changes between check and connect (rebinding) cannot reach an internal host. A
   connection nobody checked (no remembered answer) is resolved and checked right here,
   and refused by setting ``server.error``. ``server_connected`` puts the name back on the
   connection, so TLS SNI, certificate checks, the Host header and connection reuse keep
   using the name; only the socket used the pinned address.

Redirects are not followed: mitmproxy hands a 3xx to the agent like any other response,
and the agent's follow-up request comes back through the gate and is checked again.

Any exception refuses: 503 in the request hook (``fail_closed``), and in the connection
hooks the connection is killed. mitmproxy would log an addon exception and connect anyway.
"""

import asyncio
import logging
import time
from typing import Any

from mitmproxy import connection, http
from mitmproxy.proxy.server_hooks import ServerConnectionHookData

from addons.guard import fail_closed, gate_response, refuse
from gate_proxy.core.egress import Verdict
from gate_proxy.egress_resolver import EgressResolver
from gate_proxy.logs import log_decision

log = logging.getLogger("gate.proxy")

REASON_CODE = "egress_address_denied"

Pins = dict[tuple[str, int], tuple[str, ...]]


class EgressGuard:
    def __init__(self, runtime: Any, *, resolver: EgressResolver | None = None) -> None:
        self.runtime = runtime
        self.egress = resolver or EgressResolver.from_settings(runtime.settings)
        # client connection id -> (host, port) -> checked addresses, IPv4 first
        self._pins: dict[str, Pins] = {}
        # server connection id -> the (host, port) it had before we pinned its address
        self._names: dict[str, tuple[str, int]] = {}
        self._tasks: set[asyncio.Future[None]] = set()

    # -- the request: check before anything connects --------------------------------------

    @fail_closed("egress")
    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live or not self.egress.enabled:
            return
        host, port = flow.request.host, flow.request.port
        started = time.perf_counter()
        verdict = await self.egress.check(host, port)
        if not verdict.allowed:
            self._deny(flow, host, port, verdict, started)
            return
        self._pins.setdefault(flow.client_conn.id, {})[(_key(host), port)] = verdict.addresses

    def _deny(
        self, flow: http.HTTPFlow, host: str, port: int, verdict: Verdict, started: float
    ) -> None:
        in_flight = flow.metadata.pop("gate_in_flight", None)
        refuse(
            flow,
            gate_response(
                403,
                status="blocked",
                reason_code=REASON_CODE,
                message=f"{host}:{port}: {verdict.message}; nothing was sent upstream "
                "(allow it deliberately with egress_allow in gate.yaml)",
                intent_id=in_flight.intent_id if in_flight else None,
                destination=host,
                egress={"reason": verdict.reason, "address": verdict.address},
            ),
        )
        service = self.runtime.service
        service.metrics.upstream_errors.inc("egress_denied")
        principal = flow.metadata.get("gate_principal")
        log_decision(
            decision="blocked",
            agent=principal.name if principal else "-",
            destination=host,
            policy="-",
            reason=REASON_CODE,
            intent_id=in_flight.intent_id if in_flight else None,
            latency_ms=(time.perf_counter() - started) * 1000,
            source="egress",
            egress_reason=verdict.reason,
            address=verdict.address,
        )
        if in_flight is not None:
            # The decision already wrote execution_requested; the ledger must say it failed
            # (GateForwarding would otherwise count the 403 as a delivered request).
            detail = {"error": REASON_CODE, "reason": verdict.reason, "address": verdict.address}
            task = asyncio.ensure_future(
                service.record_outcome(in_flight.intent_id, in_flight.agent_id, False, detail)
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
        if not self.egress.enabled or server.error or server.address is None:
            return
        if server.via is not None:
            # An upstream proxy would resolve the name itself; the gate never configures one.
            server.error = f"{REASON_CODE}: upstream proxies bypass the egress check"
            return
        host, port = server.address[0], server.address[1]
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
        self._names[server.id] = (host, port)
        server.address = (addresses[0], port)

    def server_connected(self, data: ServerConnectionHookData) -> None:
        self._restore(data.server)

    def server_connect_error(self, data: ServerConnectionHookData) -> None:
        self._restore(data.server)

    def _restore(self, server: connection.Server) -> None:
        name = self._names.pop(server.id, None)
        if name is not None:
            # The socket is connected (or failed); the name is what SNI, certificate
            # checks and connection reuse must see from here on.
            server.address = name

    def client_disconnected(self, client: connection.Client) -> None:
        self._pins.pop(client.id, None)


def _key(host: str) -> str:
    return host.rstrip(".").lower()
