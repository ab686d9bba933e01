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
        # Other processes on the same store (usecases/feed.py): listeners told of their
        # changes too, while ``active()`` says someone is watching (dashboard streams).
        self._remote: list[tuple[Listener, Callable[[], bool]]] = []
        self.interest = asyncio.Event()  # set whenever a waiter is added

    # -- waiters (held requests) ------------------------------------------------------------

    def wait(self, key: str) -> asyncio.Future[str]:
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(key, set()).add(future)
        self.interest.set()
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

    def subscribe_remote(self, listener: Listener, active: Callable[[], bool]) -> None:
        """Also be told of changes made by other processes on this store (the dashboard's
        live queue). Webhooks and Slack are not: the process that made a change tells them,
        so nothing fires twice."""
        self._remote.append((listener, active))

    @property
    def remote_listening(self) -> bool:
        return any(active() for _, active in self._remote)

    @property
    def watching_remote(self) -> bool:
        """Someone here cares what other processes change: a held request or a stream."""
        return bool(self._waiters) or self.remote_listening

    def publish_remote(self, event: str, intent: Intent, actor: str) -> None:
        for listener, active in self._remote:
            if active():
                self._spawn(listener(event, intent, actor))

    def publish(self, event: str, intent: Intent, actor: str) -> None:
        for listener in self._listeners:
            self._spawn(listener(event, intent, actor))

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def transitioned(self, intent: Intent, event: str, actor: str) -> None:
        """An intent changed status: wake its waiters, tell the listeners."""
        self.notify(intent.id, intent.status)
        self.publish(event, intent, actor)

    async def drain(self, timeout_s: float) -> None:
        """Wait for the listeners already told (a short-lived process, e.g. the CLI)."""
        if self._background:
            await asyncio.wait(set(self._background), timeout=timeout_s)

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
