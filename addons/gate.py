"""The gate's addon set. `gate-proxy serve` embeds it; `mitmdump -s addons/gate.py` also works.

Standalone, the addon builds the gate itself from its options (data, policy and config
directories) when mitmproxy starts, and refuses every request until it is ready.
"""

import logging
import sys
from pathlib import Path
from typing import Any

from mitmproxy import ctx, http

# `mitmdump -s addons/gate.py` runs this file as a script: make the package importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from addons.decision import GateDecision
from addons.egress import EgressGuard
from addons.forwarding import GateForwarding
from addons.guard import fail_closed, gate_response, refuse
from addons.identity import GateIdentity
from addons.timeouts import RequestHeaderTimeout
from addons.vault import AgentCredentialGuard, CredentialInjector
from gate_proxy.proxy.runtime import ProxyRuntime

log = logging.getLogger("gate.proxy")


def gate_addons(runtime: ProxyRuntime) -> list[object]:
    """In hook order: who is asking, what is decided, what happens after forwarding."""
    return [
        RequestHeaderTimeout(runtime.settings.request_header_timeout_s),
        GateIdentity(runtime),
        AgentCredentialGuard(runtime),
        GateDecision(runtime),
        EgressGuard(runtime),
        GateForwarding(runtime),
        CredentialInjector(runtime),
    ]


class StandaloneGate:
    """Loads the gate inside a plain mitmproxy (mitmdump -s)."""

    def __init__(self) -> None:
        self.ready = False
        self._gate: Any = None

    def load(self, loader: Any) -> None:
        loader.add_option("gate_data_dir", str, "data", "Gate data directory (SQLite, keys).")
        loader.add_option("gate_policy_dir", str, "policies", "Gate policy directory.")
        loader.add_option("gate_config_dir", str, "config", "Gate config directory.")
        loader.add_option("gate_api_port", int, 4000, "Port of the gate's control API.")

    async def running(self) -> None:
        from gate_proxy.server import start_gate
        from gate_proxy.settings import load_settings

        settings = load_settings(
            Path(ctx.options.gate_config_dir),
            {
                "data_dir": ctx.options.gate_data_dir,
                "policy_dir": ctx.options.gate_policy_dir,
                "port": ctx.options.gate_api_port,
                "enable_proxy": False,
            },
        )
        self._gate = await start_gate(settings)
        runtime = self._gate.extras["proxy_runtime_factory"]()
        ctx.master.addons.add(*gate_addons(runtime))
        self.ready = True

    async def done(self) -> None:
        # aiosqlite's threads would keep the process alive: close the store on shutdown.
        if self._gate is not None:
            from gate_proxy.server import stop_gate

            self.ready = False
            await stop_gate(self._gate)

    @fail_closed("standalone")
    def http_connect(self, flow: http.HTTPFlow) -> None:
        self._refuse_until_ready(flow)

    @fail_closed("standalone")
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        self._refuse_until_ready(flow)

    def _refuse_until_ready(self, flow: http.HTTPFlow) -> None:
        if not self.ready and flow.response is None:
            refuse(
                flow,
                gate_response(
                    503,
                    status="error",
                    reason_code="gate_starting",
                    message="the gate is not ready yet",
                ),
            )


addons = [StandaloneGate()]
