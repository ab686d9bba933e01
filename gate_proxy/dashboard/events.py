"""Live intent events for the dashboard's server-sent-event streams.

``EventHub.on_event`` is subscribed to the event bus: it renders each new intent or
transition once and fans it out to every open stream through a bounded queue. A stream
that cannot keep up is closed (the browser reconnects and reloads the queue) rather than
letting memory grow or slowing the decision path.
"""

import asyncio
import json
import logging
from collections.abc import Awaitable
from typing import Any, Protocol

from gate_proxy.core.intents import Intent

log = logging.getLogger("gate.dashboard")

QUEUE_LIMIT = 256


class Render(Protocol):
    """Dashboard.render: an intent as the dashboard shows it."""

    def __call__(
        self, intent: Intent, *, approvals: int | None = None
    ) -> Awaitable[dict[str, Any]]: ...


class Subscriber:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=QUEUE_LIMIT)
        self.overflowed = False

    def offer(self, message: bytes | None) -> None:
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.overflowed = True


def sse_message(event: str, data: Any) -> bytes:
    # json.dumps escapes newlines inside strings, so the data is always one line.
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)
    try:
        return f"event: {event}\ndata: {payload}\n\n".encode()
    except UnicodeEncodeError:  # a lone surrogate: escape it rather than end the stream
        payload = json.dumps(data, separators=(",", ":"), default=str)
        return f"event: {event}\ndata: {payload}\n\n".encode()


class EventHub:
    def __init__(self, render: Render) -> None:
        self._render = render
        self._subscribers: set[Subscriber] = set()
        self.closed = False

    def subscribe(self) -> Subscriber:
        subscriber = Subscriber()
        self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

    def __len__(self) -> int:
        return len(self._subscribers)

    async def on_event(
        self, event: str, intent: Intent, actor: str, *, approvals: int | None = None
    ) -> None:
        """Event-bus listener: called (as a background task) for every intent event.
        ``approvals``: the votes so far, for an approval_vote short of the quorum."""
        if not self._subscribers:
            return
        try:
            view = await self._render(intent, approvals=approvals)
        except Exception:
            log.exception("dashboard could not render an intent event")
            return
        self.publish(sse_message("intent", {"event": event, "actor": actor, "intent": view}))

    def publish(self, message: bytes) -> None:
        for subscriber in list(self._subscribers):
            subscriber.offer(message)

    def close(self) -> None:
        """Gate shutdown: end every stream so the server need not wait for them."""
        self.closed = True
        for subscriber in list(self._subscribers):
            subscriber.offer(None)  # None ends the stream; a full queue ends it too
