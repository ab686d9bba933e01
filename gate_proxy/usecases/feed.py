"""Changes made by other processes on the same store, told to this one.

Every state change is a ledger event, so the ledger is the fleet's change feed: this loop
follows it and, for events another process committed, wakes the requests held here (an
approval on replica B releases a request held on replica A), drops cached keys when an
agent's status changed, and tells the dashboard's live queue. Waking is only a hint:
whoever wakes re-reads the store, so a missed or late event delays a release, never
loses one (the wait for new events times out and re-checks every ``recheck_s``).

Nobody watching (no held request, no open dashboard stream), it only keeps its place.
"""

import asyncio
import contextlib
import logging

from gate_proxy.store.base import Row, Store
from gate_proxy.usecases.agents import Agents
from gate_proxy.usecases.events import EventBus, agent_key

log = logging.getLogger("gate.feed")

BATCH = 1000


class LedgerFeed:
    def __init__(
        self, store: Store, events: EventBus, agents: Agents, *, recheck_s: float = 1.0
    ) -> None:
        self.store = store
        self.events = events
        self.agents = agents
        self.recheck_s = recheck_s
        self.last_seq = 0

    async def run(self) -> None:
        self.last_seq = await self.store.ledger_head_seq()
        while True:
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("ledger feed failed; retrying")
                await asyncio.sleep(self.recheck_s)

    async def step(self) -> None:
        """Wait for news (or for someone to care), then pass on what others wrote."""
        if not self.events.watching_remote:
            self.events.interest.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.events.interest.wait(), self.recheck_s)
            if not self.events.watching_remote:
                # Keep our place cheaply; a waiter that arrives later re-reads the store
                # itself, so nothing before this point concerns it.
                self.last_seq = await self.store.ledger_head_seq()
                return
        await self.store.wait_for_ledger(self.last_seq, self.recheck_s)
        await self.catch_up()

    async def catch_up(self) -> None:
        while True:
            events = await self.store.ledger_events(after_seq=self.last_seq, limit=BATCH)
            for event in events:
                self.last_seq = max(self.last_seq, int(event["seq"]))
                if not self.store.written_here(int(event["seq"])):
                    await self.dispatch(event)
            if len(events) < BATCH:
                return

    async def dispatch(self, event: Row) -> None:
        kind, intent_id, agent_id = event["type"], event.get("intent_id"), event.get("agent_id")
        if intent_id:
            self.events.notify(intent_id, kind)
        if kind.startswith("agent_") and agent_id:
            self.agents.forget_cached()
            self.events.notify(agent_key(agent_id), kind)
        if intent_id and self.events.remote_listening:
            intent = await self.store.get_intent(intent_id)
            if intent is not None:
                self.events.publish_remote(kind, intent, str(event.get("actor") or ""))
