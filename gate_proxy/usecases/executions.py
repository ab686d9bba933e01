"""Proxied executions: an approval becomes its one execution (write-ahead), and the
outcome is recorded; what a crash left in flight is reconciled at start."""

import logging
from typing import Any

from gate_proxy.clock import utc_iso
from gate_proxy.core.intents import Event, Intent, Status
from gate_proxy.errors import expired
from gate_proxy.store.base import Conflict, EventDraft, Store
from gate_proxy.usecases.agents import Agents
from gate_proxy.usecases.events import EventBus, SharedReads
from gate_proxy.usecases.expiry import Expiry
from gate_proxy.usecases.fleet import Fleet
from gate_proxy.usecases.records import execution_requested

log = logging.getLogger("gate.executions")


class Executions:
    def __init__(
        self, store: Store, agents: Agents, expiry: Expiry, events: EventBus, fleet: Fleet
    ) -> None:
        self.store = store
        self.agents = agents
        self.expiry = expiry
        self.events = events
        self.fleet = fleet
        # The agent's status, read from the store for every claim, one read per agent per
        # loop tick (a bulk approval releases thousands of one agent's held requests).
        self._active: SharedReads[str, None] = SharedReads(agents.require_active)

    async def claim(self, intent: Intent, actor: str) -> None:
        """Turn an approval into its one execution; a second claim gets Conflict.

        Refused when the agent is no longer active (NotPermitted) or the execution
        deadline has passed (Expired): an approval is for a live agent, within its window.
        """
        await self._active(intent.agent_id)
        current = await self.expiry.expire_if_due(intent)
        if current.status == Status.EXPIRED:
            raise expired("the approval's execution window has closed; the intent expired")
        await self.store.transition_intent(
            intent.id,
            (Status.APPROVED,),
            Status.SCHEDULED,
            {"executed_at": utc_iso()},
            [execution_requested(intent, actor, self.fleet.instance)],
        )

    async def record_outcome(
        self, intent_id: str, agent_id: str, ok: bool, detail: dict[str, Any]
    ) -> None:
        status = Status.SUCCEEDED if ok else Status.FAILED
        event = Event.EXECUTION_SUCCEEDED if ok else Event.EXECUTION_FAILED
        try:
            await self.store.transition_intent(
                intent_id,
                (Status.SCHEDULED,),
                status,
                {"completed_at": utc_iso()},
                [EventDraft(event, intent_id, "proxy", agent_id, detail)],
            )
        except Conflict:
            log.warning(
                "execution outcome arrived for an intent not in flight",
                extra={"intent_id": intent_id},
            )
            return
        self.events.notify(intent_id, status)
        if not self.events.listening(event):
            return
        # Re-read the intent only for someone it concerns (an open dashboard stream, a
        # webhook registered for it): nobody listening is the common case under load.
        audience = await self.events.audience(event, intent_id)
        if audience:
            intent = await self.store.get_intent(intent_id)
            if intent is not None:
                self.events.publish(event, intent, "proxy", audience)

    async def release_unsent(self, intent_id: str, agent_id: str, detail: dict[str, Any]) -> None:
        """The request never left the gate: the approval is unspent and stays usable (until
        its deadline). The ledger keeps the failed attempt: execution_requested, then
        execution_not_sent with the reason."""
        event = EventDraft(Event.EXECUTION_NOT_SENT, intent_id, "proxy", agent_id, detail)
        try:
            await self.store.transition_intent(
                intent_id, (Status.SCHEDULED,), Status.APPROVED, {"executed_at": None}, [event]
            )
        except Conflict:
            log.warning(
                "an unsent execution was no longer in flight", extra={"intent_id": intent_id}
            )
            return
        self.events.notify(intent_id, Status.APPROVED)

    async def record_client_left(self, intent: Intent, held_since: str) -> None:
        """A held client went away before the decision: say so on the ledger (and so in the
        dashboard's audit trail), so an approval given later is understood to release
        nothing until the agent re-sends with X-Gate-Intent-Id."""
        event = EventDraft(
            Event.HOLD_CLIENT_LEFT,
            intent.id,
            "proxy",
            intent.agent_id,
            {"held_since": held_since, "status": intent.status},
        )
        await self.store.append([event])

    async def reconcile_in_flight(self) -> int:
        """Proxied executions whose gate process stopped before their outcome was recorded.

        Their `execution_requested` is on the ledger (write-ahead), their outcome is not:
        the process stopped while the request was in flight, so whether the upstream got
        it is unknown. They become `failed` with reason `execution_unknown`, visible as
        such in the dashboard and the ledger, instead of staying `scheduled` forever.
        Alone on its store, a process reconciles everything at start; in a fleet, the
        sweeper reconciles what processes that are no longer alive left behind.
        """
        candidates = await self.store.list_intents(status=Status.SCHEDULED, limit=1_000_000)
        candidates = [intent for intent in candidates if intent.source == "proxy"]
        if self.fleet.shared and candidates:
            live = await self.fleet.live_instances()
            candidates = [
                intent for intent in candidates if await self._carrier(intent) not in live
            ]
        reconciled = 0
        for intent in candidates:
            message = (
                "execution_unknown: the gate stopped while this request was in flight; "
                "it may or may not have reached the upstream"
            )
            event = EventDraft(
                Event.EXECUTION_FAILED,
                intent.id,
                "system",
                intent.agent_id,
                {"error": "execution_unknown", "detail": message},
            )
            fields = {
                "completed_at": utc_iso(),
                "reason_code": "execution_unknown",
                "block_reason": message,
            }
            try:
                await self.store.transition_intent(
                    intent.id, (Status.SCHEDULED,), Status.FAILED, fields, [event]
                )
            except Conflict:
                continue
            reconciled += 1
        if reconciled:
            log.warning(
                "reconciled executions left in flight by a stopped gate process",
                extra={"event": "reconciled", "count": reconciled},
            )
        return reconciled

    async def _carrier(self, intent: Intent) -> str | None:
        """The process that carried the intent's execution (None: unknown, an older gate)."""
        events = await self.store.ledger_events(intent_id=intent.id)
        for event in reversed(events):
            if event["type"] == Event.EXECUTION_REQUESTED:
                return event["data"].get("instance")
        return None
