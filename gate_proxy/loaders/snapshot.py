"""One immutable snapshot of the whole configuration, swapped atomically on reload.

The gate's configuration has parts that reload independently (policies, the destination
registry) and parts that are static today (the vault config). A request must see one
consistent version of all of them, so readers take ``LiveConfig.current`` once (a single
attribute read) and keep that `ConfigSnapshot` for the whole request; a reload builds a
new snapshot and replaces the attribute, never mutating one in place. A broken reload of
a part keeps that part's last good version (``Reloadable``) and counts as a failure.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from gate_proxy.core.policy import Policy
from gate_proxy.core.registry import Registry
from gate_proxy.loaders.reload import Reloadable

if TYPE_CHECKING:
    from gate_proxy.vault import VaultConfig

__all__ = ["ConfigSnapshot", "LiveConfig"]

log = logging.getLogger("gate.reload")


@dataclass(frozen=True, slots=True)
class ConfigSnapshot:
    """Every configuration part, as one version. `generation` grows with each swap."""

    registry: Registry
    policies: Mapping[str, Policy]  # read-only
    vault: VaultConfig | None
    generation: int


class LiveConfig:
    """The current `ConfigSnapshot`, rebuilt whenever a part reloads successfully."""

    def __init__(
        self,
        *,
        registry: Reloadable[Registry],
        policies: Reloadable[dict[str, Policy]],
        vault: VaultConfig | None = None,
        on_failure: Callable[[str], None] | None = None,
    ) -> None:
        self._registry = registry
        self._policies = policies
        self._vault = vault
        for part in self.parts:
            part.on_failure = on_failure  # called with the part's name
        self._generation = 0
        self.current: ConfigSnapshot = self._next_snapshot()

    @property
    def parts(self) -> tuple[Reloadable[Registry], Reloadable[dict[str, Policy]]]:
        return (self._registry, self._policies)

    def _next_snapshot(self) -> ConfigSnapshot:
        self._generation += 1
        return ConfigSnapshot(
            registry=self._registry.current,
            policies=MappingProxyType(dict(self._policies.current)),
            vault=self._vault,
            generation=self._generation,
        )

    def _publish(self) -> None:
        # One assignment: a reader sees the old snapshot or the new one, never a mix.
        self.current = self._next_snapshot()

    def reload_changed(self) -> bool:
        """Reload the parts whose files changed; True if a new snapshot was published."""
        results = [part.reload_now() for part in self.parts if part.changed()]
        if any(results):
            self._publish()
            return True
        return False

    def reload_now(self) -> bool:
        """Reload every part whatever its files say; True if a new snapshot was published."""
        results = [part.reload_now() for part in self.parts]
        if any(results):
            self._publish()
            return True
        return False

    def set_vault(self, vault: VaultConfig | None) -> None:
        """Publish a snapshot with this vault config (loaded once, when the proxy starts)."""
        self._vault = vault
        self._publish()

    async def watch(self, interval: float = 1.0) -> None:
        """Poll the parts' files every `interval` seconds, for as long as the gate runs."""
        while True:
            await asyncio.sleep(interval)
            try:
                self.reload_changed()
            except Exception:  # a watcher that dies would silently stop every reload
                log.exception("config reload check failed", extra={"event": "config_watch"})
