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


@dataclass(slots=True)
class HeldRequest:
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
    cancel: asyncio.Event = field(default_factory=asyncio.Event)

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
    returns, so one watcher task looks at every held client's socket state every
    WATCH_INTERVAL_S and cancels the holds of those that left.
    """

    WATCH_INTERVAL_S = 0.5

    def __init__(self) -> None:
        self._held: dict[int, HeldRequest] = {}
        self._by_client: dict[str, set[int]] = {}
        self._next = 0
        self._watcher: asyncio.Task[None] | None = None

    def add(self, held: HeldRequest) -> int:
        self._next += 1
        self._held[self._next] = held
        self._by_client.setdefault(held.client_id, set()).add(self._next)
        if held.client is not None and (self._watcher is None or self._watcher.done()):
            self._watcher = asyncio.get_running_loop().create_task(
                self._watch_clients(), name="gate held-client watcher"
            )
        return self._next

    async def _watch_clients(self) -> None:
        while self._held:
            await asyncio.sleep(self.WATCH_INTERVAL_S)
            for held in list(self._held.values()):
                client = held.client
                if client is not None and not (client.state & connection.ConnectionState.CAN_READ):
                    held.cancel.set()

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher

    def remove(self, token: int) -> None:
        held = self._held.pop(token, None)
        if held is not None:
            tokens = self._by_client.get(held.client_id)
            if tokens is not None:
                tokens.discard(token)
                if not tokens:
                    del self._by_client[held.client_id]

    def visible_to(self, caller: Principal) -> list[dict[str, Any]]:
        return [h.view() for h in self._held.values() if caller.can_see(h.agent_id)]

    def client_gone(self, client_id: str) -> None:
        for token in self._by_client.get(client_id, ()):
            self._held[token].cancel.set()

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
