"""The composition root: everything one running gate is made of, typed, in one object.

``gate_proxy/server.py`` builds it (``start_gate``) and tears it down; the API, the
dashboard and the proxy receive the parts they need from it.
"""

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from gate_proxy.keys import Signer
from gate_proxy.loaders.live import StartupError
from gate_proxy.loaders.snapshot import LiveConfig
from gate_proxy.proxy.ca import CaFiles
from gate_proxy.proxy.engine import ProxyEngine
from gate_proxy.proxy.runtime import ProxyRuntime
from gate_proxy.settings import Settings
from gate_proxy.store.base import Store
from gate_proxy.usecases import UseCases
from gate_proxy.vault import VaultManager
from gate_proxy.webhooks import Webhooks


@dataclass
class Gate:
    settings: Settings
    signer: Signer
    store: Store
    usecases: UseCases
    webhooks: Webhooks
    # Registry, policies and vault config as one snapshot: read `config.current` once.
    config: LiveConfig
    runner: web.AppRunner | None = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    runtime: ProxyRuntime | None = None
    engine: ProxyEngine | None = None
    ca: CaFiles | None = None

    @property
    def api_port(self) -> int:
        assert self.runner is not None
        for site in self.runner.sites:
            server = getattr(site, "_server", None)
            if server is not None and server.sockets:
                return int(server.sockets[0].getsockname()[1])
        return self.settings.port

    def proxy_runtime(self) -> ProxyRuntime:
        """What the proxy addons share (built once: it loads the credential vault)."""
        if self.runtime is None:
            try:
                vault = VaultManager.from_config_dir(self.settings.config_dir)
            except Exception as exc:
                raise StartupError(f"vault: {exc}") from exc
            self.config.set_vault(vault.config)  # static today: loaded once, here
            self.tasks.append(asyncio.create_task(vault.run_maintenance(), name="gate-vault"))
            config = self.config
            self.runtime = ProxyRuntime(
                self.usecases, lambda: config.current, self.settings, vault=vault
            )
        return self.runtime
