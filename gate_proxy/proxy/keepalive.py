"""Keep a held flow's client connection from being closed by mitmproxy's idle watchdog.

Every client connection has a ``TimeoutWatchdog`` (``mitmproxy/proxy/server.py``) that closes
it after ``tcp_timeout`` seconds without activity. It is "disarmed" while a hook runs, but its
loop is ``await can_timeout.wait(); await sleep(...); if idle: kill``: ``Event.wait()`` returns
once the event was *set*, even if the next hook cleared it again before the watchdog task ran.
So when a long hook is followed directly by another long hook (say a hold in
``requestheaders`` and then one in ``request``), the watchdog sleeps through the second hold
and kills the connection although a hook is still running. Bumping ``last_activity`` every few
seconds makes that check fail, whatever the hook sequence.

The watchdog is reached through the ``proxyserver`` addon, which registers every live
connection handler in ``Proxyserver.connections`` keyed by ``flow.client_conn.id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import TracebackType
from typing import Any

from mitmproxy import ctx
from mitmproxy.flow import Flow

logger = logging.getLogger(__name__)

MAX_INTERVAL = 5.0


def find_watchdog(flow: Flow) -> Any | None:
    """The ``TimeoutWatchdog`` of ``flow``'s client connection, or None if the connection
    is gone (or no proxyserver is running)."""
    try:
        proxyserver = ctx.master.addons.get("proxyserver")
    except AttributeError:  # no master in this process
        return None
    if proxyserver is None:
        return None
    conns = proxyserver.connections
    client = flow.client_conn
    # TCP handlers are keyed by client id; mitmproxy keys UDP ones by (peername, sockname).
    handler = conns.get(client.id) or conns.get((client.peername, client.sockname))
    return getattr(handler, "timeout_watchdog", None)


class keep_flow_alive:  # lower-case: reads like a function, `with keep_flow_alive(flow):`
    """Context manager (sync or async) that refreshes the client connection's idle watchdog
    while the body runs. Use it around any wait inside a hook that may outlast ``tcp_timeout``::

        async def request(self, flow):
            with keep_flow_alive(flow):
                await self.wait_for_decision(flow)

    Must be entered with a running event loop (any mitmproxy hook qualifies). If the flow's
    connection cannot be found it does nothing.
    """

    def __init__(self, flow: Flow, interval: float | None = None) -> None:
        self._flow = flow
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def __enter__(self) -> keep_flow_alive:
        watchdog = find_watchdog(self._flow)
        if watchdog is None:
            logger.debug("keep_flow_alive: no live connection for flow %s", self._flow.id)
            return self
        interval = self._interval
        if interval is None:
            # A third of the timeout leaves two missed ticks of slack for a busy loop.
            interval = min(MAX_INTERVAL, max(0.2, watchdog.timeout / 3))
        watchdog.register_activity()
        self._task = asyncio.get_running_loop().create_task(
            _pump(watchdog, interval), name=f"keep_flow_alive {self._flow.id}"
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        # Count the end of the hold as activity, so the idle clock starts now.
        watchdog = find_watchdog(self._flow)
        if watchdog is not None:
            watchdog.register_activity()

    async def __aenter__(self) -> keep_flow_alive:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


async def _pump(watchdog: Any, interval: float) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        while True:
            await asyncio.sleep(interval)
            watchdog.register_activity()
