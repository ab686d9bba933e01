"""Deadlines: a pending intent past its review window, or an approved one past its
execution window, expires — on time (a sweeper sleeps until the next one) and lazily
(whoever reads an intent sees it expired the moment its deadline passed)."""

import asyncio
import contextlib
import logging
from typing import Any

from gate_proxy.clock import parse_iso, utc_iso, utc_now
from gate_proxy.core.intents import Event, Intent, Status
from gate_proxy.errors import not_found
from gate_proxy.store.base import Conflict, EventDraft, Store
from gate_proxy.usecases.events import EventBus
from gate_proxy.usecases.fleet import Fleet

log = logging.getLogger("gate.expiry")

MAX_SLEEP_S = 60.0


class Expiry:
    def __init__(self, store: Store, events: EventBus, fleet: Fleet | None = None) -> None:
        self.store = store
        self.events = events
        self.fleet = fleet or Fleet.single()
        self.wakeup = asyncio.Event()  # set when an earlier deadline may exist

    async def current(self, intent: Intent | None) -> Intent:
        """The intent as it stands now (expired first if its deadline passed)."""
        if intent is None:
            raise not_found("intent")
        return await self.expire_if_due(intent)

    async def expire_if_due(self, intent: Intent) -> Intent:
        if intent.status not in (Status.PENDING, Status.APPROVED):
            return intent
        if not intent.expires_at or intent.expires_at > utc_iso():
            return intent
        return await self._expire(intent)

    async def _expire(self, intent: Intent) -> Intent:
        was = intent.status
        data: dict[str, Any] = {"expires_at": intent.expires_at}
        fields: dict[str, str] = {}
        if was == Status.APPROVED:
            data["reason"] = "approved but not executed before the deadline"
        else:
            fields = {"decided_at": utc_iso(), "decided_by": "system"}
        events = [EventDraft(Event.EXPIRED, intent.id, "system", intent.agent_id, data)]
        try:
            await self.store.transition_intent(intent.id, (was,), Status.EXPIRED, fields, events)
        except Conflict:
            # Decided (or executed) by someone else a moment earlier: that state stands.
            return await self.store.get_intent(intent.id) or intent
        expired = intent.with_status(Status.EXPIRED, **fields)
        self.events.transitioned(expired, Event.EXPIRED, "system")
        return expired

    async def sweep(self) -> float:
        """Expire everything due now; return the seconds until the next deadline."""
        for intent in await self.store.due_pending(utc_iso()):
            await self._expire(intent)
        next_at = await self.store.next_pending_expiry()
        if not next_at:
            return MAX_SLEEP_S
        delay = max(0.0, (parse_iso(next_at) - utc_now()).total_seconds()) + 0.001
        return min(delay, MAX_SLEEP_S)

    async def run(self) -> None:
        """Expire intents at their deadline, sleeping exactly until the next one. In a
        fleet only the holder of the sweeper lease sweeps, and everyone looks again each
        heartbeat (a deadline set by another process wakes nobody here)."""
        fleet = self.fleet
        while True:
            try:
                delay = await self.sweep() if await fleet.is_sweeper() else MAX_SLEEP_S
            except Exception:
                log.exception("expiry sweep failed")
                delay = MAX_SLEEP_S
            if fleet.shared:
                delay = min(delay, fleet.heartbeat_s)
            self.wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wakeup.wait(), timeout=delay)
