"""An approval runs once: the bound retry (X-Gate-Intent-Id) and the hold (X-Gate-Wait).

- A retry must come from the same agent with the same request fingerprint (method,
  normalised URL, body and the bound headers); an approved intent is then claimed —
  once, within its execution window, for an active agent — and forwarded.
- A hold keeps the connection open until a reviewer decides, the hold times out, the
  agent is suspended or revoked, or the client leaves; then it forwards, answers, or
  sends nothing at all.
"""

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from mitmproxy import http

from gate_proxy.clock import iso_in, utc_iso
from gate_proxy.core.intents import Intent, Status
from gate_proxy.errors import GateError
from gate_proxy.principal import Principal
from gate_proxy.proxy.addons.answers import answer_for, error_answer, retry_refusal
from gate_proxy.proxy.addons.guard import refuse
from gate_proxy.proxy.flowstate import InFlight, state_of
from gate_proxy.proxy.keepalive import find_watchdog
from gate_proxy.proxy.runtime import (
    CLIENT_LEFT,
    HOLD_TIMEOUT,
    HeldRequest,
    ProxyRuntime,
    client_gone,
)
from gate_proxy.store.base import Conflict
from gate_proxy.usecases import agent_key

_USED = {Status.SCHEDULED, Status.SUCCEEDED, Status.FAILED}


@dataclass(frozen=True, slots=True)
class HoldTicket:
    """What a hold needs of its request's intent: ids and the strings the held list shows."""

    principal: Principal
    intent_id: str
    destination: str
    url: str

    @classmethod
    def of(cls, principal: Principal, intent: Intent) -> "HoldTicket":
        return cls(principal, intent.id, intent.destination, intent.url or "")


class Approvals:
    def __init__(self, runtime: ProxyRuntime) -> None:
        self.runtime = runtime

    async def retry(
        self, flow: http.HTTPFlow, principal: Principal, intent_id: str, fingerprint: str
    ) -> HoldTicket | None:
        """Answer a re-send, or let it go as the approval's execution; what to hold (a
        still-pending intent with X-Gate-Wait), which the caller holds in a frame of its own."""
        usecases = self.runtime.usecases
        intent = await usecases.store.get_intent(intent_id)
        if intent is None or intent.source != "proxy":
            refuse(flow, retry_refusal(intent_id, "intent_not_found", "no such proxied intent"))
            return None
        state_of(flow).intent_id = intent_id
        if intent.agent_id != principal.id:
            refuse(
                flow,
                retry_refusal(
                    intent_id,
                    "intent_agent_mismatch",
                    "the intent belongs to another agent",
                    intent,
                ),
            )
            return None
        if intent.fingerprint != fingerprint:
            refuse(
                flow,
                retry_refusal(
                    intent_id,
                    "fingerprint_mismatch",
                    "this request differs from the one that was proposed (method, URL, body or "
                    "bound headers)",
                    intent,
                ),
            )
            return None
        intent = await usecases.expiry.current(intent)
        if intent.status == Status.PENDING:
            if state_of(flow).wait:
                return HoldTicket.of(principal, intent)
            refuse(flow, answer_for(intent))
            return None
        await self.execute(flow, principal, intent)
        return None

    async def execute(self, flow: http.HTTPFlow, principal: Principal, intent: Intent) -> None:
        """Claim the approval (the write-ahead execution_requested) and let it go upstream."""
        if intent.status != Status.APPROVED:
            status = intent.status
            reason = "already_executed" if status in _USED else f"intent_{status}"
            refuse(
                flow,
                retry_refusal(
                    intent.id,
                    reason,
                    f"the intent is {status}; an approval authorises exactly one execution",
                    intent,
                ),
            )
            return
        try:
            await self.runtime.usecases.executions.claim(intent, principal.name)
        except Conflict:
            refuse(
                flow,
                retry_refusal(
                    intent.id, "already_executed", "this approval has already been used", intent
                ),
            )
            return
        except GateError as exc:  # the deadline passed, or the agent is no longer active
            refuse(flow, error_answer(exc, intent))
            return
        state = state_of(flow)
        state.intent_id = intent.id
        state.outcome = "approved"
        state.in_flight = InFlight(intent.id, principal.id)

    async def hold(self, flow: http.HTTPFlow, ticket: HoldTicket) -> None:
        """Hold the request until its intent is decided, its agent is no longer active, its
        client leaves or the time is up. Only the ticket's strings stay alive meanwhile, not the
        intent (with ten thousand holds every kilobyte counts)."""
        runtime = self.runtime
        usecases = runtime.usecases
        timeout = runtime.settings.hold_timeout_s
        loop = asyncio.get_running_loop()
        # One future wakes the hold: the intent changed or the agent's status changed (here,
        # or elsewhere through the ledger feed), the client gone (HeldRequests), the time up.
        # A wake that ends nothing (the agent set active again, one vote of several) re-arms
        # it until the same deadline instead of answering "still pending" early.
        wake: asyncio.Future[Any] = loop.create_future()
        principal, intent_id = ticket.principal, ticket.intent_id
        held = HeldRequest(
            intent_id=intent_id,
            agent_id=principal.id,
            agent=principal.name,
            destination=ticket.destination,
            method=flow.request.method,
            url=ticket.url,
            client_id=flow.client_conn.id,
            client=flow.client_conn,
            held_since=utc_iso(),
            release_at=iso_in(timedelta(seconds=timeout)),
            wake=wake,
            watchdog=find_watchdog(flow),
        )
        token = runtime.held.add(held)
        usecases.metrics.held.set(len(runtime.held))
        deadline = loop.time() + timeout
        try:
            while True:
                usecases.events.wait_on(wake, intent_id, agent_key(principal.id))
                timer = loop.call_at(deadline, _resolve, wake, HOLD_TIMEOUT)
                try:
                    current, woken = await self._wait(intent_id, wake)
                finally:
                    timer.cancel()
                    wake.cancel()  # no-op when resolved; drops it from the event bus
                if not await self._hold_on(held, current, woken):
                    break
                wake = held.wake = loop.create_future()
        finally:
            runtime.held.remove(token)
            usecases.metrics.held.set(len(runtime.held))
        if held.client_left or client_gone(flow):
            # The client left (mitmproxy reports it only after this hook returns, so
            # HeldRequests watches the socket): nothing goes upstream, and the intent
            # stays as it is; the agent re-sends with X-Gate-Intent-Id.
            state_of(flow).outcome = "client_left"
            flow.kill()
            if current is None:
                current = await usecases.store.get_intent(intent_id)
            if current is not None:
                await usecases.executions.record_client_left(current, held.held_since)
            return
        if current is None:
            raise RuntimeError("held intent vanished")
        if current.status == Status.APPROVED:
            # Revoked or suspended while held: the claim refuses (it reads the agent first).
            await self.execute(flow, principal, current)
            return
        try:
            # Revoked or suspended while held: nothing is released for it.
            await usecases.agents.require_active(principal.id)
        except GateError as exc:
            refuse(flow, error_answer(exc, current))
            return
        if current.status == Status.PENDING:
            refuse(flow, answer_for(current, held_timeout=True))
            return
        refuse(flow, answer_for(current))

    async def _hold_on(self, held: HeldRequest, current: Intent | None, woken: Any) -> bool:
        """Whether a woken hold goes on: not for its time running out or its client
        leaving; otherwise only while the intent is still pending, the client still there
        and the agent active (read from the store, not the auth cache)."""
        # woken None: decided before the wait began. An Intent or a status: a change,
        # here or from another process (one vote of several leaves it pending).
        if held.client_left or woken is None or woken in (CLIENT_LEFT, HOLD_TIMEOUT):
            return False
        if current is None or current.status != Status.PENDING:
            return False
        try:
            await self.runtime.usecases.agents.require_active(held.agent_id)
        except GateError:
            return False
        return not held.client_left

    async def _wait(self, intent_id: str, wake: asyncio.Future[Any]) -> tuple[Intent | None, Any]:
        """The intent once the hold ends, and what ended it (None: it was decided before
        the wait). The waiting frame keeps nothing else alive."""
        store = self.runtime.usecases.store
        # Decided between the proposal and now? Then there is nothing to wait for.
        now = await store.get_intent(intent_id)
        if now is None:
            return None, None
        now = await self.runtime.usecases.expiry.current(now)
        if now.status != Status.PENDING:
            return now, None
        del now
        woken = await wake
        if isinstance(woken, Intent) and woken.id == intent_id:
            # Woken here by the change itself, as committed (EventBus.transitioned): no
            # re-read. What happened since is the claim's business: it only turns an
            # approved intent into its execution, in one conditional write.
            return woken, woken
        return await store.get_intent(intent_id), woken


def _resolve(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)
