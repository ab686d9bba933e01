"""Fail closed: every gate hook runs under a guard that answers 503 on any exception.

mitmproxy's default is to log an addon's exception and forward the flow upstream. For a
gate that would turn every bug into a bypass, so no hook of ours runs unguarded.
"""

import functools
import json
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from mitmproxy import http

from gate_proxy.proxy.flowstate import state_of

log = logging.getLogger("gate.proxy")

# Chaos switch for fail-closed drills (and the tests): hooks named here raise on entry.
# Documented in docs/operations.md; never set it in production.
CHAOS_FAIL_HOOKS = frozenset(
    name.strip() for name in os.environ.get("GATE_CHAOS_FAIL_HOOKS", "").split(",") if name.strip()
)


def gate_response(
    status_code: int,
    *,
    status: str,
    reason_code: str,
    message: str | None = None,
    intent_id: str | None = None,
    destination: str | None = None,
    policy: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> http.Response:
    """Every answer the gate gives itself: JSON with the decision, and X-Gate-Decision."""
    body = {
        "status": status,
        "intentId": intent_id,
        "reason_code": reason_code,
        "blockReason": message,
        "message": message,
        "destination": destination,
        "policy": policy,
        **extra,
    }
    all_headers = {
        "Content-Type": "application/json",
        "X-Gate-Decision": status,
        "Cache-Control": "no-store",
        **(headers or {}),
    }
    if intent_id:
        all_headers["X-Gate-Intent-Id"] = intent_id
    return http.Response.make(status_code, json.dumps(body).encode(), all_headers)


def refuse(flow: http.HTTPFlow, response: http.Response) -> None:
    """The gate answers this request itself; nothing is sent upstream."""
    flow.response = response
    state = state_of(flow)
    state.answered = True
    if state.outcome is None:
        state.outcome = response.headers.get("X-Gate-Decision", "blocked")
    if state.reason is None:
        state.reason = _reason_of(response)


def _reason_of(response: http.Response) -> str | None:
    try:
        body = json.loads(response.content or b"{}")
    except ValueError:
        return None
    reason = body.get("reason_code") if isinstance(body, dict) else None
    return reason if isinstance(reason, str) else None


def internal_error(where: str) -> http.Response:
    return gate_response(
        503,
        status="error",
        reason_code="gate_internal_error",
        message=f"the gate could not decide this request ({where}); nothing was forwarded",
        error="gate_unavailable",
    )


Hook = Callable[..., Awaitable[None] | None]


def fail_closed(where: str) -> Callable[[Hook], Hook]:
    """Guard an HTTP hook: an exception becomes a 503 JSON answer, never a forward.

    The guarded method is awaitable whether the hook is sync or async (callers in tests
    await it). The gate's pipeline (``pipeline.py``) does not call this wrapper: it calls
    the hook itself (``__wrapped__``) inside the same guard (``hook_failed``), so a sync
    hook stays sync and the guard is a bare ``try`` on the happy path.
    """

    def decorate(hook: Hook) -> Hook:
        @functools.wraps(hook)
        async def guarded(self: Any, flow: http.HTTPFlow, *args: Any) -> None:
            try:
                if CHAOS_FAIL_HOOKS and where in CHAOS_FAIL_HOOKS:
                    raise RuntimeError(f"chaos: injected fault in {where}")
                result = hook(self, flow, *args)
                if result is not None:
                    await result
            except Exception as exc:
                hook_failed(self, flow, where, exc)

        guarded.__gate_guard__ = where  # type: ignore[attr-defined]
        return guarded

    return decorate


def guard_of(method: Any) -> str | None:
    """The ``fail_closed`` name a (bound) hook method is guarded under, if any."""
    return getattr(method, "__gate_guard__", None)


def hook_failed(addon: Any, flow: http.HTTPFlow, where: str, exc: Exception) -> None:
    """What a failed gate hook leaves behind: a logged error, a metric and a 503."""
    log.error(
        "gate hook failed; refusing the request",
        extra={"event": "hook_failed", "hook": where, "error": type(exc).__name__},
        exc_info=log.isEnabledFor(logging.DEBUG),
    )
    usecases = getattr(getattr(addon, "runtime", None), "usecases", None)
    if usecases is not None:
        usecases.metrics.internal_errors.inc(where)
    if flow.live or flow.response is None:
        refuse(flow, internal_error(where))
        # The request body may be half-streamed; make sure it goes nowhere.
        flow.request.stream = False
