"""What the gate changes in mitmproxy itself, for speed only: the same behaviour, less CPU.

Three changes, each measured (bench/bench_proxy.py shows stock mitmproxy with and without
them, and every target compares with stock):

1. Cached hook dispatch (``dispatch.py``): the same hooks called in the same order, looked
   up once per hook name instead of on every addon for every event.
2. mitmproxy's debug-only type checks skipped: ``MessageData.__post_init__`` checks the
   type of every field of every request and response it builds, but only ``if __debug__``
   (``mitmproxy/http.py``): ``python -O`` skips it. We cannot run with ``-O`` (it would
   strip the gate's own asserts), so the check is made a no-op here, as ``-O`` would. It
   guards against addon code building messages from wrong types; mitmproxy's parsers and
   ``Response.make`` (all the gate uses) convert their inputs. Measured: a request and a
   response head parse in 24 µs instead of 81 µs.
3. mitmproxy names every task it creates (several per request) and, ``if __debug__``,
   looks ``PYTEST_CURRENT_TEST`` up in the environment for it (``utils/asyncio_utils.py``):
   0.6 % of the gate's CPU under load (py-spy). Skipped as ``-O`` would; the name, the
   creation time and the client stay.
"""

from __future__ import annotations

import asyncio
import time

from mitmproxy import addonmanager, http
from mitmproxy.utils import asyncio_utils

from gate_proxy.proxy import dispatch

__all__ = ["install"]


def _no_debug_type_check(self: http.MessageData) -> None:
    """``MessageData.__post_init__`` under ``python -O``."""


def _task_debug_info(task: asyncio.Task, *, name: str, client: tuple | None = None) -> None:
    """``asyncio_utils.set_task_debug_info`` under ``python -O``."""
    task.created = time.time()  # type: ignore[attr-defined]
    task.set_name(name)
    if client:
        task.client = client  # type: ignore[attr-defined]


def install(manager: addonmanager.AddonManager) -> None:
    """All three: dispatch on this manager's instance, the debug-only work process-wide."""
    dispatch.install(manager)
    if __debug__:
        http.MessageData.__post_init__ = _no_debug_type_check  # type: ignore[method-assign]
        asyncio_utils.set_task_debug_info = _task_debug_info
