"""Several gate processes on one store: who is alive, who sweeps, what a dead one left.

- Each process holds the lease ``instance:<id>`` and renews it every ``heartbeat_s``;
  when it stops renewing (killed, host lost) the lease lapses after ``ttl_s``.
- One process at a time holds ``sweeper``: it expires intents on time and reconciles.
  Others may still expire an intent lazily when they read it; the store's conditional
  transition lets exactly one of them record it (and tell its webhooks).
- Proxied executions record which process carried them (``execution_requested`` has
  ``instance``). One whose process is gone was in flight when it died: whether the
  upstream got it is unknown, so it becomes ``failed`` with ``execution_unknown``
  (the write-ahead record says it may have been sent), never left ``scheduled``.

A lone process (SQLite, one worker) needs none of this: ``Fleet.single()``.
"""

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from gate_proxy.clock import current as current_clock
from gate_proxy.keys import random_id
from gate_proxy.store.base import Store

log = logging.getLogger("gate.fleet")

SWEEPER = "sweeper"
INSTANCE_PREFIX = "instance:"


@dataclass
class Fleet:
    store: Store | None  # None: this process is alone on its store
    # Names the process in the ledger (execution_requested) and its lease: pid + random.
    instance: str = field(default_factory=lambda: random_id(f"gw_{os.getpid()}_", 4))
    ttl_s: float = 15.0
    heartbeat_s: float = 5.0
    # The gate's clock (gate_proxy/clock.py): tests and drills move it, leases follow.
    clock: Callable[[], float] = field(default=lambda: current_clock().time())

    @classmethod
    def single(cls) -> "Fleet":
        return cls(None)

    @property
    def shared(self) -> bool:
        return self.store is not None

    async def join(self) -> None:
        """Announce this process (before it carries any execution)."""
        await self.heartbeat()

    async def heartbeat(self) -> None:
        if self.store is not None:
            await self.store.try_lease(
                INSTANCE_PREFIX + self.instance, self.instance, self.clock(), self.ttl_s
            )

    async def run_heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            try:
                await self.heartbeat()
            except Exception:
                log.exception("fleet heartbeat failed")

    async def is_sweeper(self) -> bool:
        """Whether this process should run the expiry sweep now (takes or renews the lease)."""
        if self.store is None:
            return True
        return await self.store.try_lease(SWEEPER, self.instance, self.clock(), self.ttl_s)

    async def live_instances(self) -> set[str]:
        if self.store is None:
            return {self.instance}
        leases = await self.store.live_leases(INSTANCE_PREFIX, self.clock())
        return {name.removeprefix(INSTANCE_PREFIX) for name in leases}

    async def leave(self) -> None:
        """A clean stop: give up the leases at once, so another process sweeps now."""
        if self.store is None:
            return
        for name in (SWEEPER, INSTANCE_PREFIX + self.instance):
            with contextlib.suppress(Exception):
                await self.store.release_lease(name, self.instance)
