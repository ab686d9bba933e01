"""The control API in the CLI's own process, on the store named by ``--database-url``.

For a fleet whose gates are not reachable from where the operator stands (or none runs):
the command goes through the same handlers as a running gate (authentication, roles,
review hashes), on a loopback-only server that lives as long as the command. Changes
reach running gates through the store (their ledger feed). Webhooks for a change made
here are delivered from here; the command waits for them (retries included) before it
exits.
"""

import argparse
import asyncio
import secrets
import sys
from pathlib import Path
from typing import Any, ClassVar

from aiohttp.test_utils import TestClient, TestServer

WEBHOOK_WAIT_S = 60.0


class LocalApi:
    _open: ClassVar["LocalApi | None"] = None

    @classmethod
    def for_args(cls, args: argparse.Namespace) -> "LocalApi":
        if cls._open is None:
            cls._open = cls(args.database_url, Path(args.data_dir))
        return cls._open

    @classmethod
    def close_open(cls) -> None:
        if cls._open is not None:
            cls._open.close()
            cls._open = None

    def __init__(self, database_url: str, data_dir: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self._start(database_url, data_dir))

    async def _start(self, database_url: str, data_dir: Path) -> None:
        from gate_proxy import key_material
        from gate_proxy.api.app import build_app
        from gate_proxy.metrics import GateMetrics
        from gate_proxy.settings import Settings
        from gate_proxy.store.open import open_store
        from gate_proxy.usecases import Fleet, UseCases
        from gate_proxy.webhooks import Webhooks

        settings = Settings(database_url=database_url, data_dir=data_dir)
        signer = key_material.signer(data_dir, shared=True)  # checkpoints, execution orders
        try:
            admin = key_material.admin_key(data_dir, shared=True).value
        except key_material.KeyMaterialError:
            admin = secrets.token_urlsafe(32)  # no admin key here: nobody is admin
        self.store = open_store(data_dir, signer, database_url=database_url)
        await self.store.open()
        metrics = GateMetrics()
        # Decisions are the gates' job: the CLI records reviews, so it needs no policies.
        self.usecases = UseCases.build(
            self.store, dict, signer, admin, metrics=metrics, fleet=Fleet(self.store)
        )
        self.webhooks = Webhooks.from_settings(self.store, metrics, settings)
        self.usecases.events.subscribe(self.webhooks.on_event)
        app = build_app(self.usecases, body_limit=settings.api_body_limit)
        self.client = TestClient(TestServer(app, host="127.0.0.1"))
        await self.client.start_server()

    def call(self, method: str, path: str, key: str, body: Any) -> tuple[int, Any]:
        async def send() -> tuple[int, Any]:
            response = await self.client.request(
                method, path, json=body, headers={"Authorization": f"Bearer {key}"}
            )
            return response.status, await response.json()

        return self.loop.run_until_complete(send())

    def close(self) -> None:
        async def stop() -> None:
            await self.usecases.events.drain(WEBHOOK_WAIT_S)  # listeners start deliveries
            if self.webhooks.pending:
                print("gate-proxy: delivering webhooks…", file=sys.stderr, flush=True)
                await self.webhooks.drain(WEBHOOK_WAIT_S)
            await self.client.close()
            await self.webhooks.close()
            await self.usecases.close()
            await self.store.close()

        try:
            self.loop.run_until_complete(stop())
        finally:
            self.loop.close()
