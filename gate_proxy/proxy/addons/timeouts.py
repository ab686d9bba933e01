"""Slowloris guard for the proxy listeners: a request head must arrive in time.

mitmproxy's only idle killer is ``tcp_timeout`` (600 s), and any byte counts as activity, so
a client that sends a request head one byte at a time keeps a connection (and a file
descriptor) forever. This addon closes a client connection that has not delivered a complete
request head ``gate_request_header_timeout`` seconds after it connected, or after its last
exchange finished (idle keep-alive, and the time between a CONNECT's answer and the first
request inside the tunnel, TLS handshake included).

"A request is in progress" is tracked from mitmproxy's own hooks: ``requestheaders`` (or
``http_connect``) starts an exchange, ``response``, ``error``, ``http_connected`` or
``http_connect_error`` ends it. The timer only runs while a connection has no exchange in
progress, so a request held for minutes inside a hook (X-Gate-Wait) or a long streamed
response is never cut. Two more checks make that hold even if this addon's hook ran late
(addons run in sequence, so a slow hook of an earlier addon delays ours): when the timer
fires, a connection with a hook still running, or with response bytes still waiting to be
written, is left alone and looked at again one timeout later.

Websockets (after the 101) and raw TCP tunnels carry no more request heads: they are left
to ``tcp_timeout``. If one of the hooks here ever fails, the connection is left to
``tcp_timeout`` too (logged): a guard against slow clients must never kill a real request.

Closing is what mitmproxy's own idle watchdog does (``proxy/server.py``, ``on_timeout``):
cancel the task that reads the client connection; mitmproxy then closes it and fires
``client_disconnected`` (a held flow is released by the gate as for any client that left).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from mitmproxy import connection, ctx, exceptions, http
from mitmproxy.proxy import layer, layers

log = logging.getLogger("gate.proxy")

OPTION = "gate_request_header_timeout"
CLOSE_REASON = "request header timeout"


class Timer(Protocol):
    def cancel(self) -> None: ...


# (delay in seconds, callback) -> a handle with cancel(); asyncio's call_later by default.
Schedule = Callable[[float, Callable[[], None]], Timer]


@dataclass
class _Watched:
    """One client connection: its timer and the exchanges it has in progress."""

    client: connection.Client
    in_progress: set[str] = field(default_factory=set)  # flow ids
    exempt: bool = False  # a websocket or raw tunnel now: no request heads to wait for
    timer: Timer | None = None


def _client_of(hook_argument: Any) -> connection.Client | None:
    if isinstance(hook_argument, connection.Client):
        return hook_argument
    if isinstance(hook_argument, layer.NextLayer):
        return hook_argument.context.client
    return getattr(hook_argument, "client_conn", None)


def _guarded[T](
    hook: Callable[[RequestHeaderTimeout, T], None],
) -> Callable[[RequestHeaderTimeout, T], None]:
    """A failing hook is logged and stops guarding that connection (tcp_timeout still
    applies): an error here must neither kill a request nor reach mitmproxy, which would
    only log it."""

    @functools.wraps(hook)
    def guarded(self: RequestHeaderTimeout, argument: T) -> None:
        try:
            hook(self, argument)
        except Exception as exc:
            log.error(
                "request header timeout hook failed; not guarding this connection",
                extra={"event": "hook_failed", "hook": hook.__name__, "error": type(exc).__name__},
            )
            client = _client_of(argument)
            if client is not None:
                self.stand_down(client)

    return guarded


class RequestHeaderTimeout:
    """The gate registers it as ``RequestHeaderTimeout(settings.request_header_timeout_s)``.

    ``timeout_s`` is the default of the ``gate_request_header_timeout`` option (0 = off).
    ``schedule`` and ``close`` are for tests: a manual clock, or a stand-in for closing.
    """

    def __init__(
        self,
        timeout_s: float = 30.0,
        *,
        schedule: Schedule | None = None,
        close: Callable[[connection.Client], bool] | None = None,
    ) -> None:
        self.timeout_s = self._checked(timeout_s)
        self._default_timeout_s = self.timeout_s
        self._schedule = schedule
        self._close = close or self.close_idle
        self._watched: dict[str, _Watched] = {}

    # -- options -------------------------------------------------------------------------

    def load(self, loader: Any) -> None:
        loader.add_option(
            OPTION,
            float,
            self._default_timeout_s,
            "Close a client connection that has not sent a complete request head this many "
            "seconds after connecting or after its previous response. 0 turns it off.",
        )

    def configure(self, updated: set[str]) -> None:
        if OPTION in updated:
            try:
                self.timeout_s = self._checked(getattr(ctx.options, OPTION))
            except ValueError as exc:
                raise exceptions.OptionsError(str(exc)) from exc

    @staticmethod
    def _checked(value: float) -> float:
        value = float(value)
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{OPTION} must be a finite number of seconds >= 0, not {value}")
        return value

    # -- connections ---------------------------------------------------------------------

    @_guarded
    def client_connected(self, client: connection.Client) -> None:
        if client.transport_protocol != "tcp" or client.error:
            return
        watched = self._watched[client.id] = _Watched(client)
        self._arm(watched)

    @_guarded
    def client_disconnected(self, client: connection.Client) -> None:
        watched = self._watched.pop(client.id, None)
        if watched is not None:
            self._cancel(watched)

    @_guarded
    def next_layer(self, nextlayer: layer.NextLayer) -> None:
        # A raw TCP/UDP relay (an ignored host, say) never carries a request head again.
        if isinstance(nextlayer.layer, layers.TCPLayer | layers.UDPLayer):
            self.stand_down(nextlayer.context.client)

    # -- exchanges -----------------------------------------------------------------------

    @_guarded
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        self._started(flow)

    @_guarded
    def http_connect(self, flow: http.HTTPFlow) -> None:
        self._started(flow)

    @_guarded
    def http_connected(self, flow: http.HTTPFlow) -> None:
        self._finished(flow)  # the tunnel's first request head is due within the timeout

    @_guarded
    def http_connect_error(self, flow: http.HTTPFlow) -> None:
        self._finished(flow)

    @_guarded
    def response(self, flow: http.HTTPFlow) -> None:
        if flow.websocket is not None:  # mitmproxy sets it before this hook on a 101
            self.stand_down(flow.client_conn)
        else:
            self._finished(flow)

    @_guarded
    def error(self, flow: http.HTTPFlow) -> None:
        self._finished(flow)

    @_guarded
    def websocket_start(self, flow: http.HTTPFlow) -> None:
        self.stand_down(flow.client_conn)

    @_guarded
    def tcp_start(self, flow: Any) -> None:
        self.stand_down(flow.client_conn)

    # -- the timer -----------------------------------------------------------------------

    def stand_down(self, client: connection.Client) -> None:
        """Stop guarding this connection for good (websocket, raw tunnel, or a hook error)."""
        watched = self._watched.get(client.id)
        if watched is not None:
            watched.exempt = True
            self._cancel(watched)

    def _started(self, flow: http.HTTPFlow) -> None:
        watched = self._watched.get(flow.client_conn.id)
        if watched is not None:
            watched.in_progress.add(flow.id)
            self._cancel(watched)

    def _finished(self, flow: http.HTTPFlow) -> None:
        watched = self._watched.get(flow.client_conn.id)
        if watched is None:
            return
        watched.in_progress.discard(flow.id)
        self._arm(watched)

    def _arm(self, watched: _Watched) -> None:
        self._cancel(watched)
        if watched.exempt or watched.in_progress or self.timeout_s <= 0:
            return
        schedule = self._schedule or asyncio.get_running_loop().call_later
        client_id = watched.client.id
        watched.timer = schedule(self.timeout_s, lambda: self._expired(client_id))

    @staticmethod
    def _cancel(watched: _Watched) -> None:
        if watched.timer is not None:
            watched.timer.cancel()
            watched.timer = None

    def _expired(self, client_id: str) -> None:
        try:
            watched = self._watched.get(client_id)
            if watched is None or watched.exempt or watched.in_progress:
                return
            watched.timer = None
            if not self._close(watched.client):
                self._arm(watched)  # busy after all: look again one timeout later
                return
            log.info(
                "closed a client connection with no complete request head in %gs",
                self.timeout_s,
                extra={"event": "request_header_timeout", "client": watched.client.peername},
            )
        except Exception as exc:
            log.error(
                "request header timeout failed",
                extra={"event": "hook_failed", "hook": "expired", "error": type(exc).__name__},
            )

    @staticmethod
    def close_idle(client: connection.Client) -> bool:
        """Close ``client``'s connection; False (left open) while it is busy: a hook is
        running on it, or response bytes are still waiting to be written to it."""
        proxyserver = ctx.master.addons.get("proxyserver")
        handler = proxyserver.connections.get(client.id) if proxyserver else None
        if handler is None:
            return True  # already gone
        if handler.timeout_watchdog.blocker > 0:  # mitmproxy counts hooks in progress here
            return False
        io = handler.transports.get(handler.client)
        if io is None or io.handler is None:
            return True
        transport = getattr(io.writer, "transport", None)
        if transport is not None and transport.get_write_buffer_size() > 0:
            return False
        io.handler.cancel(CLOSE_REASON)
        return True
