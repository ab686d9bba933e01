"""One canonical line per proxied request, written from one place, when it ends.

Every request the proxy answers — forwarded, passed through, refused before a policy ran
(407, 421, 431, CONNECT refusals, unrouted), decided, held, or failed upstream — ends in
exactly one ``decision`` log line with what the gate did and why. It is written when the
request ends (its response, its error, or a refused CONNECT), never by the steps along
the way, so a refusal after the decision (egress, vault) is not a second "decision".
Which refusals are also intents on the ledger is in docs/architecture.md.
"""

import logging
import time

from mitmproxy import http

from gate_proxy.logs import log_decision
from gate_proxy.proxy.flowstate import state_of
from gate_proxy.proxy.runtime import ProxyRuntime

log = logging.getLogger("gate.proxy")


class GateRecord:
    """Loaded last: its hooks run after every other addon's."""

    def __init__(self, runtime: ProxyRuntime) -> None:
        self.runtime = runtime

    def response(self, flow: http.HTTPFlow) -> None:
        self._record(flow, "proxy")

    def error(self, flow: http.HTTPFlow) -> None:
        self._record(flow, "proxy")

    def http_connect_error(self, flow: http.HTTPFlow) -> None:
        self._record(flow, "connect")

    def _record(self, flow: http.HTTPFlow, source: str) -> None:
        try:
            self._write(flow, source)
        except Exception as exc:  # the request is over; the record must not break the proxy
            log.error(
                "writing the request record failed",
                extra={"event": "hook_failed", "hook": "record", "error": type(exc).__name__},
            )

    def _write(self, flow: http.HTTPFlow, source: str) -> None:
        state = state_of(flow)
        if state.recorded:
            return
        state.recorded = True
        principal, match, verdict = state.principal, state.match, state.verdict
        outcome = state.outcome
        if outcome is None:
            outcome = "error" if flow.error is not None else "forwarded"
        if flow.error is not None and outcome in ("approved", "passthrough", "shadow"):
            outcome = "upstream_error"
        destination = (
            verdict and match and (match.destination or f"{match.host}.http")
        ) or flow.request.host
        if verdict is None and state.answered:
            # Refused before any decision was recorded (CONNECT, 407, 421, ...): counted
            # here, the decisions made by the proposals use case are counted there.
            self.runtime.usecases.metrics.decisions.inc(outcome, destination, source)
        log_decision(
            decision=outcome,
            agent=principal.name if principal is not None else "-",
            destination=destination,
            policy=(match.policy if match is not None else None) or "-",
            reason=state.reason,
            intent_id=state.intent_id,
            latency_ms=(time.perf_counter() - state.started) * 1000,
            source=source,
            method=flow.request.method,
            status=flow.response.status_code if flow.response is not None else None,
            upstream_status=state.upstream_status,
            risk=verdict.risk_level if verdict is not None else None,
            error=flow.error.msg[:120] if flow.error is not None else None,
        )
