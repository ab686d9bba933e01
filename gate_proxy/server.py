"""`gate-proxy serve`: the control API and the proxy, in one asyncio process."""

import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
from collections.abc import Callable

from aiohttp import web

from gate_proxy import key_material
from gate_proxy.api.app import build_app, server_options
from gate_proxy.api.http import caller, json_response
from gate_proxy.clock import install_from_environment as install_clock_from_environment
from gate_proxy.core.intents import Event
from gate_proxy.dashboard import add_dashboard
from gate_proxy.gate import Gate
from gate_proxy.keys import tighten_mode
from gate_proxy.loaders.live import StartupError, load_live_config
from gate_proxy.metrics import GateMetrics
from gate_proxy.notify import SlackNotifier
from gate_proxy.proxy.addons import gate_addons
from gate_proxy.proxy.ca import CaError, combined_trust_bundle, ensure_ca
from gate_proxy.proxy.engine import Listener, ListenerBindError, ProxyEngine
from gate_proxy.settings import PRIVATE_UMASK, Settings
from gate_proxy.store.base import Store
from gate_proxy.store.open import describe as describe_store
from gate_proxy.store.open import open_store
from gate_proxy.usecases import Fleet, UseCases
from gate_proxy.usecases.events import Concerns, SharedReads
from gate_proxy.usecases.feed import LedgerFeed
from gate_proxy.webhooks import FIRED_ON as WEBHOOK_EVENTS
from gate_proxy.webhooks import Webhooks

log = logging.getLogger("gate.server")


async def start_gate(settings: Settings) -> Gate:
    """Start everything; raise StartupError with a clear reason if any part cannot start."""
    os.umask(PRIVATE_UMASK)  # `gate-proxy` sets it too; this covers `mitmdump -s addons/gate.py`
    if install_clock_from_environment() is not None:
        log.warning(
            "the gate's clock is shifted by the file in GATE_CLOCK_OFFSET_FILE (tests and "
            "drills only: deadlines follow it)",
            extra={"event": "clock_offset"},
        )
    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        data_dir.chmod(0o700)
    shared = settings.database_url is not None  # a fleet: keys come from mounted files
    try:
        admin = key_material.admin_key(data_dir, shared=shared)
        signer = key_material.signer(data_dir, shared=shared)
    except key_material.KeyMaterialError as exc:
        raise StartupError(str(exc)) from None
    if admin.created:
        # Printed once, to the terminal only (not the JSON log stream).
        print(
            f"gate-proxy: generated an admin key in {data_dir / 'admin.key'} (mode 0600):\n"
            f"  {admin.value}\n  It is shown only this once.",
            file=sys.stderr,
            flush=True,
        )
    admin_key = admin.value
    public_key = data_dir / "signing.pub"
    if not public_key.exists() or public_key.read_text() != signer.public_pem():
        key_material.atomic_write(public_key, signer.public_pem().encode(), 0o600)
    tighten_mode(public_key)  # a file left by an older version keeps its mode otherwise
    metrics = GateMetrics()
    config = load_live_config(settings, metrics)
    store = open_store(
        data_dir, signer, database_url=settings.database_url, durability=settings.durability
    )
    try:
        await store.open()
    except Exception as exc:
        where = describe_store(settings.database_url, data_dir)
        raise StartupError(f"store {where}: {type(exc).__name__}: {exc}") from None
    webhooks = Webhooks.from_settings(store, metrics, settings)  # the proxy's egress policy
    # Other processes may write this store (replicas on PostgreSQL, --workers on SQLite):
    # leases, the ledger feed and a shared sweeper (usecases/fleet.py, usecases/feed.py).
    fleet = Fleet(store) if settings.database_url or settings.workers > 1 else Fleet.single()
    usecases = UseCases.build(
        store,
        lambda: config.current.policies,
        signer,
        admin_key,
        environment=settings.environment,
        metrics=metrics,
        fleet=fleet,
    )
    usecases.events.subscribe(
        webhooks.on_event, events=WEBHOOK_EVENTS, concerns=webhook_concerns(store)
    )
    notifier = SlackNotifier.from_settings(settings)  # None unless slack_webhook_url is set
    if notifier is not None:
        # It posts one message per intent that starts waiting for a human (a "proposed").
        usecases.events.subscribe(notifier.on_event, events=(Event.PROPOSED,))
    gate = Gate(settings, signer, store, usecases, webhooks, config)
    try:
        await fleet.join()
        # Before any new request: what a stopped process left in flight is reconciled.
        await usecases.executions.reconcile_in_flight()
        await _start_api(gate)
    except BaseException:
        await store.close()
        raise
    if fleet.shared:
        feed = LedgerFeed(store, usecases.events, usecases.agents)
        gate.tasks.append(asyncio.create_task(feed.run(), name="gate-ledger-feed"))
        gate.tasks.append(asyncio.create_task(_fleet_duties(usecases), name="gate-fleet"))
    if settings.enable_proxy:
        try:
            await _start_proxy(gate)
        except BaseException:
            await stop_gate(gate)
            raise
    gate.tasks.append(asyncio.create_task(usecases.expiry.run(), name="gate-expiry"))
    gate.tasks.append(asyncio.create_task(config.watch(), name="gate-config-watch"))
    log.info(
        "gate started",
        extra={
            "event": "started",
            "api": f"http://{settings.host}:{gate.api_port}",
            "policies": sorted(config.current.policies),
            "data_dir": str(data_dir),
        },
    )
    return gate


def webhook_concerns(store: Store) -> Concerns:
    """Whether a change of this intent concerns the webhooks: only if one is registered for
    it. Whether any webhook exists at all is one read per loop tick for every change of the
    tick (usecases/events.py, SharedReads): it answers the common case (none) without a
    lookup per intent; registrations made by other processes are seen, since the read
    starts after the change was committed."""
    any_webhook: SharedReads[None, bool] = SharedReads(lambda _: store.has_webhooks())

    async def concerns(intent_id: str) -> bool:
        if not await any_webhook(None):
            return False
        return bool(await store.webhooks_for(intent_id))

    return concerns


async def _fleet_duties(usecases: UseCases) -> None:
    """Stay known as alive; as the sweeper, reconcile what dead processes left in flight."""
    fleet = usecases.fleet
    while True:
        await asyncio.sleep(fleet.heartbeat_s)
        try:
            await fleet.heartbeat()
            if await fleet.is_sweeper():
                await usecases.executions.reconcile_in_flight()
        except Exception:
            log.exception("fleet duties failed; retrying")


async def _start_api(gate: Gate) -> None:
    from gate_proxy.api.http import caller, json_response, read_json

    async def register_webhook(request: web.Request) -> web.Response:
        principal = await caller(request)
        result = await gate.webhooks.register(principal, await read_json(request))
        return json_response(result, status=201)

    def extra_routes(app: web.Application) -> None:
        app.router.add_post("/v1/webhooks/register", register_webhook)
        proxy_routes(gate)(app)
        add_dashboard(app, gate)

    app = build_app(
        gate.usecases,
        body_limit=gate.settings.api_body_limit,
        extra_routes=extra_routes,
        health_extra={"policies": lambda: len(gate.config.current.policies)},
    )
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        **server_options(gate.settings.request_header_timeout_s),
    )
    await runner.setup()
    site = web.TCPSite(
        runner,
        gate.settings.host,
        gate.settings.port,
        reuse_address=True,
        reuse_port=gate.settings.workers > 1,  # --workers share the port (SO_REUSEPORT)
    )
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise StartupError(
            f"control API cannot listen on {gate.settings.host}:{gate.settings.port}: "
            f"{exc.strerror or exc}"
        ) from exc
    gate.runner = runner


async def _start_proxy(gate: Gate) -> None:
    settings = gate.settings
    try:
        key_material.install_ca(settings.certs_dir, shared=settings.database_url is not None)
        ca = ensure_ca(settings.certs_dir)
        bundle = combined_trust_bundle(settings.upstream_ca_bundle, settings.certs_dir)
    except (CaError, OSError, ValueError, key_material.KeyMaterialError) as exc:
        raise StartupError(f"TLS: {exc}") from exc
    gate.ca = ca
    runtime = gate.proxy_runtime()
    host = settings.host
    listeners = [
        Listener("forward", f"regular@{host}:{settings.proxy_port}"),
        # The reverse listener's own target is a placeholder: every request is routed by
        # its path prefix (config `routes:`), and an unrouted path is answered 404.
        Listener("reverse", f"reverse:http://127.0.0.1:9@{host}:{settings.reverse_port}"),
    ]
    engine = ProxyEngine(
        listeners=listeners,
        addons=gate_addons(runtime),
        confdir=settings.certs_dir,
        trusted_ca_bundle=bundle,
        extra_options={
            "body_size_limit": str(settings.proxy_body_limit + 1),
            "tcp_timeout": settings.tcp_timeout_s,
        },
        reuse_port=settings.workers > 1,
    )
    try:
        await engine.start()
    except (ListenerBindError, RuntimeError, ValueError) as exc:
        raise StartupError(f"proxy: {exc}") from exc
    gate.engine = engine
    ports = engine.bound_ports
    print(
        f"gate-proxy: forward proxy on http://{host}:{ports.get('forward')}, "
        f"reverse proxy on http://{host}:{ports.get('reverse')}",
        file=sys.stderr,
        flush=True,
    )


def proxy_routes(gate: Gate) -> Callable[[web.Application], None]:
    async def ca_certificate(request: web.Request) -> web.Response:
        path = gate.settings.certs_dir / "mitmproxy-ca-cert.pem"
        if not path.exists():
            raise web.HTTPNotFound(reason="CA not generated (proxy disabled)")
        return web.Response(
            body=path.read_bytes(),
            content_type="application/x-pem-file",
            headers={"Content-Disposition": 'attachment; filename="gate-ca.crt"'},
        )

    async def held(request: web.Request) -> web.Response:
        principal = await caller(request)
        runtime = gate.runtime
        items = runtime.held.visible_to(principal) if runtime else []
        return json_response({"held": items, "count": len(items)})

    def add(app: web.Application) -> None:
        app.router.add_get("/v1/proxy/ca.crt", ca_certificate)
        app.router.add_get("/v1/proxy/held", held)

    return add


DRAIN_S = 10.0


async def stop_gate(gate: Gate) -> None:
    if gate.engine is not None:
        # New connections are refused at once; requests already upstream may finish.
        upstream = gate.runtime.upstream if gate.runtime is not None else set()
        await gate.engine.stop(drained=lambda: not upstream, drain_s=DRAIN_S)
    if gate.runtime is not None:
        await gate.runtime.held.close()
        if gate.runtime.vault is not None:
            gate.runtime.vault.close()
    for task in gate.tasks:
        task.cancel()
    for task in gate.tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    if gate.runner is not None:
        await gate.runner.cleanup()
    await gate.webhooks.close()
    await gate.usecases.fleet.leave()
    await gate.usecases.close()
    await gate.store.close()


def freeze_startup_heap() -> None:
    """Move what start-up built (modules, config, mitmproxy, the policy and registry
    objects) out of the garbage collector's sight: a full collection would otherwise walk
    all of it again and again under load, although none of it is ever garbage."""
    gc.collect()
    gc.freeze()


async def serve(settings: Settings) -> int:
    try:
        gate = await start_gate(settings)
    except StartupError as exc:
        log.error("gate cannot start: %s", exc, extra={"event": "startup_failed"})
        print(f"gate-proxy: cannot start: {exc}", file=sys.stderr)
        return 2
    freeze_startup_heap()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(
        f"gate-proxy: control API on http://{settings.host}:{gate.api_port}",
        file=sys.stderr,
        flush=True,
    )
    await stop.wait()
    log.info("gate stopping", extra={"event": "stopping"})
    await stop_gate(gate)
    return 0
