"""Who is told when an intent or an agent changes: held requests, the dashboard, webhooks.

Two audiences, one object:
- *waiters*: a held proxy request waits for its intent's next decision (or its agent's
  status change) on a future, keyed by intent id or ``agent:<id>``;
- *listeners*: subscribers (dashboard, webhooks, Slack) are told of every new intent and
  every transition, as background tasks, so a slow one never delays a decision, and only
  when someone listens.
"""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from gate_proxy.core.intents import Intent

Listener = Callable[[str, Intent, str], Awaitable[None]]


def agent_key(agent_id: str) -> str:
    """The waiter key that fires when an agent's status changes."""
    return f"agent:{agent_id}"


class EventBus:
    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Future[str]]] = {}
        self._listeners: list[Listener] = []
        self._background: set[asyncio.Task[Any]] = set()

    # -- waiters (held requests) ------------------------------------------------------------

    def wait(self, key: str) -> asyncio.Future[str]:
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(key, set()).add(future)
        future.add_done_callback(lambda f: self._discard(key, f))
        return future

    def _discard(self, key: str, future: asyncio.Future[str]) -> None:
        waiters = self._waiters.get(key)
        if waiters is not None:
            waiters.discard(future)
            if not waiters:
                del self._waiters[key]

    def notify(self, key: str, status: str) -> None:
        for future in list(self._waiters.get(key, ())):
            if not future.done():
                future.set_result(status)

    def waiting(self) -> int:
        return sum(len(waiters) for waiters in self._waiters.values())

    # -- listeners (dashboard, webhooks, Slack) ----------------------------------------------

    def subscribe(self, listener: Listener) -> None:
        """Be told of every new intent ("proposed") and every later transition."""
        self._listeners.append(listener)

    @property
    def has_listeners(self) -> bool:
        return bool(self._listeners)

    def publish(self, event: str, intent: Intent, actor: str) -> None:
        for listener in self._listeners:
            task = asyncio.create_task(listener(event, intent, actor))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    def transitioned(self, intent: Intent, event: str, actor: str) -> None:
        """An intent changed status: wake its waiters, tell the listeners."""
        self.notify(intent.id, intent.status)
        self.publish(event, intent, actor)

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
