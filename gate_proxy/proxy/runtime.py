"""What the proxy addons share with the rest of the gate, and the requests held open."""

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mitmproxy import connection

from gate_proxy.clock import utc_iso
from gate_proxy.loaders.snapshot import ConfigSnapshot
from gate_proxy.principal import Principal
from gate_proxy.settings import Settings
from gate_proxy.usecases import UseCases
from gate_proxy.vault import VaultManager

CLIENT_LEFT = "client_left"  # what wakes a hold whose client went away
HOLD_TIMEOUT = "hold_timeout"  # what wakes a hold whose time is up


@dataclass(slots=True)
class HeldRequest:
    """One request held open by X-Gate-Wait. Everything that ends a hold early (its
    intent decided, its agent changed, its client gone) resolves the one ``wake`` future:
    a hold costs one future and this object, no task of its own."""

    intent_id: str
    agent_id: str
    agent: str
    destination: str
    method: str
    url: str
    client_id: str
    held_since: str
    release_at: str
    client: connection.Client | None = None
    wake: asyncio.Future[Any] | None = None
    # The client connection's idle watchdog (proxy/keepalive.py): kept fresh while held.
    watchdog: Any = None
    client_left: bool = False

    def leave(self) -> None:
        """The client went away: end the hold; nothing will be sent for it."""
        self.client_left = True
        if self.wake is not None and not self.wake.done():
            self.wake.set_result(CLIENT_LEFT)

    def view(self) -> dict[str, Any]:
        return {
            "intentId": self.intent_id,
            "agentId": self.agent_id,
            "agent": self.agent,
            "destination": self.destination,
            "method": self.method,
            "url": self.url,
            "heldSince": self.held_since,
            "releaseAt": self.release_at,
        }


def client_gone(flow: Any) -> bool:
    """True once the client closed (or reset) its side of the connection."""
    client = flow.client_conn
    return not (client.state & connection.ConnectionState.CAN_READ)


class HeldRequests:
    """Requests held open by X-Gate-Wait, so they can be listed and released.

    Indexed by client connection too: a mass disconnect must not scan every hold.
    mitmproxy reports a client that leaves only after the hook that holds its request
    returns, and its idle watchdog may close a connection whose hook runs long
    (proxy/keepalive.py): so one watcher task, for all holds, looks at every held client's
    socket every WATCH_INTERVAL_S, ends the holds of those that left and refreshes the
    watchdogs of the others. One task for ten thousand holds, instead of two each.
    """

    WATCH_INTERVAL_S = 0.5

    def __init__(self) -> None:
        self._held: dict[int, HeldRequest] = {}
        self._by_client: dict[str, set[int]] = {}
        self._next = 0
        self._watcher: asyncio.Task[None] | None = None
        self._interval = self.WATCH_INTERVAL_S

    def add(self, held: HeldRequest) -> int:
        self._next += 1
        self._held[self._next] = held
        self._by_client.setdefault(held.client_id, set()).add(self._next)
        watchdog = held.watchdog
        if watchdog is not None:
            # A third of the idle timeout leaves two missed ticks of slack for a busy loop.
            self._interval = min(self._interval, max(0.05, watchdog.timeout / 3))
            watchdog.register_activity()
        if (held.client is not None or watchdog is not None) and (
            self._watcher is None or self._watcher.done()
        ):
            self._watcher = asyncio.get_running_loop().create_task(
                self._watch_clients(), name="gate held-client watcher"
            )
        return self._next

    async def _watch_clients(self) -> None:
        while self._held:
            await asyncio.sleep(self._interval)
            for held in list(self._held.values()):
                client = held.client
                if client is not None and not (client.state & connection.ConnectionState.CAN_READ):
                    held.leave()
                elif held.watchdog is not None:
                    held.watchdog.register_activity()
        self._interval = self.WATCH_INTERVAL_S

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher

    def remove(self, token: int) -> None:
        held = self._held.pop(token, None)
        if held is not None:
            if held.watchdog is not None:
                held.watchdog.register_activity()  # the idle clock starts when the hold ends
            tokens = self._by_client.get(held.client_id)
            if tokens is not None:
                tokens.discard(token)
                if not tokens:
                    del self._by_client[held.client_id]

    def visible_to(self, caller: Principal) -> list[dict[str, Any]]:
        return [h.view() for h in self._held.values() if caller.can_see(h.agent_id)]

    def client_gone(self, client_id: str) -> None:
        for token in self._by_client.get(client_id, ()):
            self._held[token].leave()

    def is_held(self, intent_id: str) -> bool:
        return any(h.intent_id == intent_id for h in self._held.values())

    def held_until(self, intent_id: str) -> str | None:
        """When the hold of this intent's request ends (``hold_timeout_ms``), if one is
        held: a hold may end well before the intent's own review deadline."""
        ends = [h.release_at for h in self._held.values() if h.intent_id == intent_id]
        return max(ends) if ends else None

    def __len__(self) -> int:
        return len(self._held)


@dataclass
class ProxyRuntime:
    """What the proxy addons share with the rest of the gate (the composition root builds
    it): the use cases, the live config (read ``config()`` once per request), settings,
    the held requests and the credential vault."""

    usecases: UseCases
    config: Callable[[], ConfigSnapshot]
    settings: Settings
    held: HeldRequests = field(default_factory=HeldRequests)
    vault: VaultManager | None = None
    started_at: str = field(default_factory=utc_iso)
    # Flows sent upstream and not yet answered (by id): a stopping gate waits for them.
    upstream: set[str] = field(default_factory=set)
