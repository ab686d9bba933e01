"""What the gate changes in mitmproxy itself, for speed only: the same behaviour, less CPU.

Two changes, both measured (bench/bench_proxy.py shows stock mitmproxy with and without
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
"""

from __future__ import annotations

from mitmproxy import addonmanager, http

from gate_proxy.proxy import dispatch

__all__ = ["install"]


def _no_debug_type_check(self: http.MessageData) -> None:
    """``MessageData.__post_init__`` under ``python -O``."""


def install(manager: addonmanager.AddonManager) -> None:
    """Both changes: dispatch on this manager's instance, the type check process-wide."""
    dispatch.install(manager)
    if __debug__:
        http.MessageData.__post_init__ = _no_debug_type_check  # type: ignore[method-assign]
