"""mitmproxy embedding: the gate's CA, the proxy engine and the held-flow keepalive."""

from gate_proxy.proxy.ca import CaError, CaFiles, combined_trust_bundle, ensure_ca
from gate_proxy.proxy.engine import Listener, ListenerBindError, ProxyEngine
from gate_proxy.proxy.keepalive import find_watchdog, keep_flow_alive

__all__ = [
    "CaError",
    "CaFiles",
    "Listener",
    "ListenerBindError",
    "ProxyEngine",
    "combined_trust_bundle",
    "ensure_ca",
    "find_watchdog",
    "keep_flow_alive",
]
