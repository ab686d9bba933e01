"""SO_REUSEPORT for mitmproxy's TCP listeners, so ``--workers`` processes share one port.

mitmproxy 12 has no option for it and takes no pre-bound socket: its listener calls
``asyncio.start_server(handler, host, port)`` (``proxy/mode_servers.py``). This wraps that
one method to pass ``reuse_port=True`` for TCP listeners on a fixed port; the kernel then
spreads new connections over the processes. Anything else goes to mitmproxy's own code.
"""

import asyncio
from typing import Any

from mitmproxy.proxy import mode_servers

_original_listen = mode_servers.AsyncioServerInstance.listen


async def _listen_reusing_port(self: Any, host: str, port: int) -> list[Any]:
    if self.mode.transport_protocol != "tcp" or port == 0:
        return await _original_listen(self, host, port)
    return [await asyncio.start_server(self.handle_stream, host, port, reuse_port=True)]


def enable() -> None:
    """Process-wide (mitmproxy allows one master per process anyway); idempotent."""
    mode_servers.AsyncioServerInstance.listen = _listen_reusing_port  # type: ignore[method-assign]
