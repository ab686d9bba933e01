"""Embed mitmproxy 12 in the gate's own asyncio loop.

Why not ``mitmproxy.tools.main`` or ``DumpMaster``: they own the loop (``asyncio.run``), parse
argv, install signal handlers and ``sys.exit`` on startup errors. We build a bare ``Master``
instead, with only the addons the gate needs, and check listener binding ourselves because
mitmproxy only logs a failed bind.

One ``Master`` per process: it sets the global ``mitmproxy.ctx.master``, and while it runs it
puts the loop on ``asyncio.eager_task_factory`` and installs its own loop exception handler
(both restored when it stops). Eager tasks mean ``asyncio.create_task(coro)`` runs ``coro``
up to its first real suspension *before* returning, for every task in the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mitmproxy import exceptions, master, options
from mitmproxy.addons import (
    block,
    core,
    disable_h2c,
    next_layer,
    proxyserver,
    tlsconfig,
    update_alt_svc,
)
from mitmproxy.proxy import mode_specs

from gate_proxy.proxy import speedups

logger = logging.getLogger(__name__)

START_TIMEOUT = 15.0  # binding loopback sockets takes milliseconds; this only bounds a hang
STOP_TIMEOUT = 10.0

# Options the engine sets unless extra_options overrides them.
DEFAULT_OPTIONS: dict[str, Any] = {
    # Connect upstream only after the request hooks ran, so a refused request never
    # reaches (not even TCP/TLS) its destination.
    "connection_strategy": "lazy",
    # Listeners given without an explicit host bind loopback, not every interface.
    "listen_host": "127.0.0.1",
    # Without this, bytes inside a CONNECT tunnel that look neither like TLS nor HTTP are
    # relayed as raw TCP, which no HTTP hook ever sees: a governance bypass.
    "rawtcp": False,
}


@dataclass(frozen=True)
class Listener:
    name: str
    mode: str  # mitmproxy mode spec, e.g. "regular@127.0.0.1:4001"


class ListenerBindError(RuntimeError):
    """A listener could not be bound; the message names the listener and address."""


_active_engine: ProxyEngine | None = None  # mitmproxy's ctx.master is process-global


def _mitmproxy_addons() -> list[object]:
    """The minimal mitmproxy addon set. mitmproxy dispatches every hook to every addon, so
    each one costs throughput (less with the cached dispatch of proxy/speedups.py); see
    docs/tls.md for why each is here and why the others are not."""
    return [
        core.Core(),  # option validation + the core commands other addons call
        block.Block(),  # refuses clients with public IPs (block_global): not an open proxy
        disable_h2c.DisableH2C(),  # strips h2c upgrades, kills HTTP/2 prior-knowledge flows
        proxyserver.Proxyserver(),  # the listeners and connection handlers
        next_layer.NextLayer(),  # decides HTTP/TLS/... layers for each connection
        tlsconfig.TlsConfig(),  # our CA, leaf certs, upstream verification
        update_alt_svc.UpdateAltSvc(),  # reverse: Alt-Svc must not point clients past us
    ]


class _ReadySignal:
    """Loaded last so its ``running`` fires after proxyserver has tried to bind."""

    name = "gate_engine_ready"

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def running(self) -> None:
        self.event.set()


class ProxyEngine:
    def __init__(
        self,
        *,
        listeners: list[Listener],
        addons: list[object],
        confdir: Path,
        trusted_ca_bundle: Path | None = None,
        ssl_insecure: bool = False,
        extra_options: dict[str, Any] | None = None,
        reuse_port: bool = False,
        mitmproxy_speedups: bool = True,
    ) -> None:
        if not listeners:
            raise ValueError("at least one listener is required")
        names = [lst.name for lst in listeners]
        if len(set(names)) != len(names):
            raise ValueError(f"listener names must be unique: {names}")
        self._listeners = list(listeners)
        self._addons = list(addons)
        self._confdir = Path(confdir)
        self._trusted_ca_bundle = trusted_ca_bundle
        self._ssl_insecure = ssl_insecure
        self._extra_options = dict(extra_options or {})
        self._reuse_port = reuse_port  # several processes on the same ports (--workers)
        # Cached hook dispatch, no debug-only type checks (proxy/speedups.py); off only to
        # measure stock mitmproxy (bench/bench_proxy.py).
        self._mitmproxy_speedups = mitmproxy_speedups
        self._master: master.Master | None = None
        self._task: asyncio.Task[None] | None = None
        self._specs: dict[str, str] = {}  # listener name -> spec given to mitmproxy

    @property
    def master(self) -> master.Master | None:
        return self._master

    @property
    def running(self) -> bool:
        return self._master is not None

    async def start(self) -> None:
        """Start mitmproxy in the running loop; return once every listener is bound.

        Raises ListenerBindError (after cleaning up) if any listener failed to bind.
        """
        global _active_engine
        if self._master is not None:
            raise RuntimeError("engine already started")
        if _active_engine is not None:
            raise RuntimeError(
                "another ProxyEngine is running in this process (mitmproxy's ctx.master is global)"
            )
        self._specs = self._resolve_specs()
        if self._reuse_port:
            from gate_proxy.proxy import reuseport

            reuseport.enable()

        opts = options.Options()
        m = master.Master(opts, event_loop=asyncio.get_running_loop(), with_termlog=False)
        if self._mitmproxy_speedups:
            speedups.install(m.addons)
        # The deprecated add_log bridge turns every log record in the process into an
        # addon event; nothing of ours uses it.
        legacy_log = getattr(m, "_legacy_log_events", None)
        if legacy_log is not None:
            legacy_log.uninstall()
        ready = _ReadySignal()
        try:
            # Addons first: their options only exist once they are loaded.
            m.addons.add(*_mitmproxy_addons())
            m.addons.add(*self._addons)
            m.addons.add(ready)
            settings: dict[str, Any] = {
                **DEFAULT_OPTIONS,
                "confdir": str(self._confdir),
                "ssl_insecure": self._ssl_insecure,
                "ssl_verify_upstream_trusted_ca": (
                    str(self._trusted_ca_bundle) if self._trusted_ca_bundle else None
                ),
                **self._extra_options,
                "mode": [self._specs[lst.name] for lst in self._listeners],
            }
            m.options.update(**settings)
        except (exceptions.OptionsError, KeyError) as e:  # KeyError: unknown option name
            self._discard_master(m)
            raise ValueError(f"invalid proxy options: {e}") from e
        except BaseException:
            self._discard_master(m)
            raise

        _active_engine = self
        self._master = m
        self._task = asyncio.get_running_loop().create_task(m.run(), name="mitmproxy master")
        ready_wait = asyncio.ensure_future(ready.event.wait())
        try:
            done, _ = await asyncio.wait(
                {self._task, ready_wait},
                timeout=START_TIMEOUT,
                return_when=asyncio.FIRST_COMPLETED,
            )
        except BaseException:  # e.g. start() cancelled: don't leave a half-started master
            await self.stop()
            raise
        finally:
            ready_wait.cancel()
        if not ready.event.is_set():
            exc = None
            if self._task in done and not self._task.cancelled():
                exc = self._task.exception()
            await self.stop()
            if exc is not None:
                raise RuntimeError(f"mitmproxy failed to start: {exc!r}") from exc
            raise RuntimeError(f"mitmproxy did not start within {START_TIMEOUT:.0f}s")

        failures = self._bind_failures()
        if failures:
            await self.stop()
            raise ListenerBindError("; ".join(failures))
        logger.info(
            "proxy engine listening: %s",
            ", ".join(f"{n}={p}" for n, p in self.bound_ports.items()),
        )

    async def stop(
        self, *, drained: Callable[[], bool] | None = None, drain_s: float = 0.0
    ) -> None:
        """Close the listeners, let requests already upstream finish (while ``drained()``
        is false, at most ``drain_s``), abort open client connections, stop the master.

        Idempotent. Held flows see ``client_disconnected`` as their connections close.
        """
        global _active_engine
        m, task = self._master, self._task
        if m is None:
            return
        try:
            ps = m.addons.get("proxyserver")
            if ps is not None:
                # Proxyserver has no `done` hook: without this the sockets stay bound after
                # the master exits. (servers.update([]) would also "stop" instances that
                # never bound, which logs an empty AssertionError.)
                for inst in list(ps.servers):
                    if not inst.is_running:
                        continue
                    try:
                        await asyncio.wait_for(inst.stop(), STOP_TIMEOUT)
                    except Exception as e:  # stopping must not be blocked by a close error
                        logger.warning("closing proxy listener %s failed: %r", inst.mode, e)
                if drained is not None:
                    await _drain(drained, drain_s)
                await self._close_connections(ps)
            m.shutdown()
            if task is not None:
                try:
                    await asyncio.wait_for(asyncio.shield(task), STOP_TIMEOUT)
                except TimeoutError:
                    logger.warning("mitmproxy master did not stop in %.0fs", STOP_TIMEOUT)
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        await task
                except Exception as e:
                    logger.warning("mitmproxy master ended with %r", e)
        finally:
            self._master = None
            self._task = None
            if _active_engine is self:
                _active_engine = None

    @property
    def bound_ports(self) -> dict[str, int]:
        """Listener name -> actual TCP port (useful with port 0)."""
        if self._master is None:
            return {}
        ps = self._master.addons.get("proxyserver")
        ports: dict[str, int] = {}
        for lst in self._listeners:
            try:
                addrs = ps.servers[self._specs[lst.name]].listen_addrs
            except KeyError:
                continue
            if addrs:
                ports[lst.name] = addrs[0][1]  # TCP first for modes that also bind UDP
        return ports

    def _resolve_specs(self) -> dict[str, str]:
        """Validate specs; turn port 0 into a concrete free port.

        mitmproxy handles port 0 itself, but its duplicate-address check rejects two
        listeners on the same host with port 0, and we want to map ports back to names.
        Picking a free port and binding it later is racy in theory; a lost race surfaces
        as ListenerBindError.
        """
        specs: dict[str, str] = {}
        seen: dict[tuple[str, int], str] = {}
        for lst in self._listeners:
            try:
                mode = mode_specs.ProxyMode.parse(lst.mode)
            except ValueError as e:
                raise ValueError(f"listener {lst.name!r}: invalid mode {lst.mode!r}: {e}") from e
            spec = lst.mode
            host = mode.listen_host(
                self._extra_options.get("listen_host", DEFAULT_OPTIONS["listen_host"])
            )
            port = mode.listen_port(self._extra_options.get("listen_port"))
            if port == 0:
                port = _free_port(host, udp=mode.transport_protocol != "tcp")
                head = spec.rpartition("@")[0] if "@" in spec else spec
                spec = f"{head}@{host}:{port}" if host else f"{head}@{port}"
            if port is not None:
                key = (host, port)
                if key in seen:
                    raise ListenerBindError(
                        f"listeners {seen[key]!r} and {lst.name!r} both use {host or '*'}:{port}"
                    )
                seen[key] = lst.name
            specs[lst.name] = spec
        return specs

    def _bind_failures(self) -> list[str]:
        assert self._master is not None
        ps = self._master.addons.get("proxyserver")
        failures = []
        for lst in self._listeners:
            spec = self._specs[lst.name]
            try:
                inst = ps.servers[spec]
            except KeyError:
                failures.append(f"listener {lst.name!r} ({spec}) was not started")
                continue
            if not inst.is_running or inst.last_exception is not None:
                # mitmproxy's message already reads "... failed to listen on HOST:PORT with ..."
                reason = inst.last_exception or "not running"
                failures.append(f"listener {lst.name!r} ({spec}): {reason}")
        return failures

    @staticmethod
    async def _close_connections(ps: Any) -> None:
        handlers = list(ps.connections.values())
        for h in handlers:
            io = h.transports.get(h.client)
            if io is not None and io.handler is not None:
                io.handler.cancel("proxy engine stopping")
        # Connection handlers unregister themselves once their hooks have run.
        for _ in range(int(STOP_TIMEOUT / 0.05)):
            if not ps.connections:
                return
            await asyncio.sleep(0.05)
        logger.warning("%d proxy connections still open at shutdown", len(ps.connections))

    @staticmethod
    def _discard_master(m: master.Master) -> None:
        """Undo what Master.__init__ did when run() never started."""
        legacy_log = getattr(m, "_legacy_log_events", None)
        if legacy_log is not None:
            legacy_log.uninstall()


async def _drain(drained: Callable[[], bool], drain_s: float) -> None:
    deadline = asyncio.get_running_loop().time() + drain_s
    while not drained() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    if not drained():
        logger.warning("stopping with requests still upstream after %.0fs", drain_s)


def _free_port(host: str, *, udp: bool) -> int:
    """A port free on ``host`` for TCP (and UDP when the mode also binds QUIC)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    bind_host = host or ("::" if family == socket.AF_INET6 else "0.0.0.0")
    for _ in range(20):
        with socket.socket(family, socket.SOCK_STREAM) as tcp:
            tcp.bind((bind_host, 0))
            port: int = tcp.getsockname()[1]
            if not udp:
                return port
            try:
                with socket.socket(family, socket.SOCK_DGRAM) as u:
                    u.bind((bind_host, port))
            except OSError:
                continue
            return port
    raise ListenerBindError(f"no free port found on {host or '*'}")
