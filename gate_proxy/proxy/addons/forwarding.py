"""After the decision: streaming, response hygiene, and the ledger's execution outcome."""

import asyncio
import json
import logging
from typing import Any

from mitmproxy import ctx, http
from mitmproxy.proxy import commands, events
from mitmproxy.proxy.layers.http import _http1, _http2

from gate_proxy.core.headers import HeadLimits, check_head
from gate_proxy.proxy.addons.guard import fail_closed, gate_response
from gate_proxy.proxy.addons.identity import strip_gate_headers
from gate_proxy.proxy.flowstate import InFlight, state_of
from gate_proxy.proxy.runtime import ProxyRuntime

log = logging.getLogger("gate.proxy")

STREAM_OVER_BYTES = 1024 * 1024
# Upstream responses may carry more than agents' requests (cookies, CSPs), within reason.
RESPONSE_LIMITS = HeadLimits(max_headers=500, max_bytes=256 * 1024)


def _json_error_body(status_code: int, message: str) -> bytes:
    error = {502: "upstream_unreachable", 504: "upstream_timeout", 413: "payload_too_large"}.get(
        status_code, "proxy_error"
    )
    return json.dumps(
        {"status": "error", "error": error, "reason_code": error, "message": message}
    ).encode()


def install_json_errors() -> None:
    """mitmproxy answers its own errors (upstream refused, body too large) in HTML.

    The gate promises JSON for every answer it makes, so its error pages are replaced.
    """

    def make_error_response(status_code: int, message: str = "") -> bytes:
        response = http.Response.make(
            status_code,
            _json_error_body(status_code, message),
            {"Content-Type": "application/json", "Connection": "close", "X-Gate-Decision": "error"},
        )
        return _http1.http1.assemble_response(response)

    _http1.make_error_response = make_error_response
    _http2.format_error = _json_error_body


def install_trailer_refusal() -> None:
    """mitmproxy 12 crashes the whole connection on an HTTP/1 message with trailers
    ("HTTP trailers are not implemented yet"), leaving the client hanging. Turn that
    into the protocol error it is: 400 for a request, 502 for a response."""
    connection_class = _http1.Http1Connection
    original = connection_class.read_body
    if getattr(original, "_gate_refuses_trailers", False):
        return

    def read_body(self: Any, event: Any) -> Any:
        try:
            yield from original(self, event)
        except NotImplementedError as exc:
            if "trailers" not in str(exc):
                raise
            message = "HTTP/1 trailers are refused by the gate (trailers_not_allowed)"
            if isinstance(self, _http1.Http1Server):
                # A request body error gets no answer from mitmproxy: send the 400 here,
                # as mitmproxy does for a bad request head.
                yield commands.SendData(self.conn, _http1.make_error_response(400, message))
            yield _http1.ReceiveHttp(
                self.ReceiveProtocolError(
                    self.stream_id, message, code=self.ReceiveProtocolError.code
                )
            )
            yield commands.CloseConnection(self.conn)

    read_body._gate_refuses_trailers = True  # type: ignore[attr-defined]
    connection_class.read_body = read_body  # type: ignore[method-assign]


def synthetic_timeout_response(timeout_s: float) -> bytes:
    body = json.dumps(
        {
            "status": "error",
            "error": "upstream_timeout",
            "reason_code": "upstream_timeout",
            "message": f"the upstream did not answer within {timeout_s:g} s",
        }
    ).encode()
    head = (
        "HTTP/1.1 504 Gateway Timeout\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\nX-Gate-Decision: error\r\n\r\n"
    )
    return head.encode() + body


def _request_sent(flow: http.HTTPFlow) -> bool:
    """Whether any byte of the request may have reached the upstream: only once the TCP
    connection (and, for HTTPS, the TLS handshake) was established."""
    server = flow.server_conn
    if server.timestamp_tcp_setup is None:
        return False
    return not (server.tls and server.timestamp_tls_setup is None)


class GateForwarding:
    def __init__(self, runtime: ProxyRuntime) -> None:
        self.runtime = runtime
        self._tasks: set[asyncio.Task[Any]] = set()

    def load(self, loader: Any) -> None:
        install_json_errors()
        install_trailer_refusal()

    @fail_closed("forward")
    def request(self, flow: http.HTTPFlow) -> None:
        # Runs after the decision: only requests that really go upstream get here.
        if flow.response or flow.error or not flow.live:
            return
        self.runtime.upstream.add(flow.id)
        # A timer, not a task: nearly every request is answered long before it fires.
        state_of(flow).deadline = asyncio.get_running_loop().call_later(
            self.runtime.settings.upstream_timeout_s, self._deadline_passed, flow
        )

    def _deadline_passed(self, flow: http.HTTPFlow) -> None:
        state = state_of(flow)
        state.deadline = asyncio.ensure_future(self._upstream_deadline(flow))

    async def _upstream_deadline(self, flow: http.HTTPFlow) -> None:
        """mitmproxy has no upstream response timeout: answer 504 ourselves when it lapses.

        The 504 is fed to the flow as if the upstream had sent it (mitmproxy then closes
        the upstream connection, as the response says Connection: close), so the agent
        gets a JSON answer and the ledger records the failure through the usual hooks.
        """
        timeout = self.runtime.settings.upstream_timeout_s
        if flow.response is not None or flow.error is not None or not flow.live:
            return
        self.runtime.usecases.metrics.upstream_errors.inc("timeout")
        state_of(flow).upstream_timeout = True
        proxyserver = ctx.master.addons.get("proxyserver")
        handler = proxyserver.connections.get(flow.client_conn.id) if proxyserver else None
        server = flow.server_conn
        if handler is None or server not in handler.transports or server.alpn == b"h2":
            flow.kill()  # no HTTP/1 upstream to answer for: drop the exchange
            return
        await handler.server_event(events.DataReceived(server, synthetic_timeout_response(timeout)))

    @fail_closed("responseheaders")
    def responseheaders(self, flow: http.HTTPFlow) -> None:
        state = state_of(flow)
        if state.deadline is not None and not state.upstream_timeout:
            state.deadline.cancel()
        if flow.response is None or state.answered:
            return
        response = flow.response
        if not state.upstream_timeout:
            # The upstream has answered: from here on its status is the outcome, even if
            # the body is cut later (the client leaves mid-stream, the upstream dies).
            state.upstream_status = response.status_code
        problem = check_head(response.headers.fields, RESPONSE_LIMITS)
        if problem is not None:
            # The write may have happened upstream; the agent still gets no header block
            # that could stall the gate or be read two ways. The response hook replaces
            # it once mitmproxy has read the body (replacing it here would mix our
            # headers with the upstream's body); the ledger keeps the upstream's status.
            state.bad_response_head = problem.message
            return
        strip_gate_headers(response.headers)
        if state.upstream_timeout:
            response.headers["X-Gate-Decision"] = "error"  # our own 504, not the upstream's
        media = response.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        length = response.headers.get("Content-Length", "")
        large = length.isdigit() and int(length) > STREAM_OVER_BYTES
        # LLM APIs stream: pass events and big bodies on as they arrive.
        if media == "text/event-stream" or large:
            response.stream = True

    @fail_closed("response")
    def response(self, flow: http.HTTPFlow) -> None:
        self.runtime.upstream.discard(flow.id)
        if flow.response is None:
            return
        state = state_of(flow)
        code = state.upstream_status = flow.response.status_code
        refused_head, state.bad_response_head = state.bad_response_head, None
        if refused_head is not None:
            self.runtime.usecases.metrics.upstream_errors.inc("bad_response_head")
            flow.response = gate_response(
                502,
                status="error",
                reason_code="upstream_response_invalid",
                message=f"the upstream's response was refused: {refused_head}",
                error="upstream_response_invalid",
                headers={"Connection": "close"},
            )
        in_flight, state.in_flight = state.in_flight, None
        if in_flight is None:
            return
        if state.upstream_timeout:
            self._record(in_flight, False, {"error": "upstream_timeout", "status_code": code})
            return
        self._record(in_flight, code < 500, {"status_code": code})

    def error(self, flow: http.HTTPFlow) -> None:
        self.runtime.upstream.discard(flow.id)
        state = state_of(flow)
        if state.deadline is not None:
            state.deadline.cancel()
        try:
            in_flight, state.in_flight = state.in_flight, None
            if in_flight is None:
                return
            message = flow.error.msg if flow.error else "unknown error"
            if not _request_sent(flow):
                # No connection (refused, unreachable, TLS handshake failed): the request
                # never left the gate, so its approval is unspent and stays usable.
                self.runtime.usecases.metrics.upstream_errors.inc("connect_failed")
                self._release(in_flight, {"error": "upstream_unreachable", "detail": message[:200]})
                return
            kind = "client_disconnected" if "client" in message.lower() else "upstream_error"
            self.runtime.usecases.metrics.upstream_errors.inc(kind)
            code = state.upstream_status
            if code is not None and not state.upstream_timeout:
                # The upstream answered (its head arrived) and only the body was cut: the
                # write ran, so the outcome is the upstream's status, not "failed" (which
                # could prompt a second refund). The ledger says the body was incomplete.
                detail = {"status_code": code, "response": "incomplete", "error": kind}
                self._record(in_flight, code < 500, {**detail, "detail": message[:200]})
                return
            self._record(in_flight, False, {"error": kind, "detail": message[:200]})
        except Exception as exc:  # nothing left to refuse; make sure it is seen
            log.error(
                "recording an upstream error failed",
                extra={"event": "hook_failed", "hook": "error", "error": type(exc).__name__},
            )

    def _release(self, in_flight: InFlight, detail: dict[str, Any]) -> None:
        task = asyncio.ensure_future(
            self.runtime.usecases.executions.release_unsent(
                in_flight.intent_id, in_flight.agent_id, detail
            )
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _record(self, in_flight: InFlight, ok: bool, detail: dict[str, Any]) -> None:
        # The outcome is written behind the response: the write-ahead record already made
        # the execution durable, and the agent should not wait for the bookkeeping.
        task = asyncio.ensure_future(
            self.runtime.usecases.executions.record_outcome(
                in_flight.intent_id, in_flight.agent_id, ok, detail
            )
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def done(self) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)
