"""The gate inside a plain mitmproxy (``mitmdump -s addons/gate.py``).

The addon builds the gate from its options (data, policy and config directories) when
mitmproxy starts, then adds the gate's addons, and refuses every request until then.
"""

import logging
from pathlib import Path
from typing import Any

from mitmproxy import ctx, http

from gate_proxy.proxy.addons import gate_addons
from gate_proxy.proxy.addons.guard import fail_closed, gate_response, refuse

log = logging.getLogger("gate.proxy")


class StandaloneGate:
    def __init__(self) -> None:
        self.ready = False
        self._gate: Any = None

    def load(self, loader: Any) -> None:
        loader.add_option("gate_data_dir", str, "data", "Gate data directory (SQLite, keys).")
        loader.add_option("gate_policy_dir", str, "policies", "Gate policy directory.")
        loader.add_option("gate_config_dir", str, "config", "Gate config directory.")
        loader.add_option("gate_api_port", int, 4000, "Port of the gate's control API.")

    async def running(self) -> None:
        from gate_proxy.loaders.settings_file import load_settings
        from gate_proxy.server import start_gate

        settings = load_settings(
            Path(ctx.options.gate_config_dir),
            {
                "data_dir": ctx.options.gate_data_dir,
                "policy_dir": ctx.options.gate_policy_dir,
                "port": ctx.options.gate_api_port,
                "enable_proxy": False,
            },
        )
        for option, wanted, why in (
            ("connection_strategy", "lazy", "upstreams are contacted before the decision"),
            ("listen_host", "127.0.0.1", "the proxy listens on every interface"),
        ):
            if getattr(ctx.options, option) != wanted:
                log.warning(
                    "mitmproxy option %s is not %r: %s (see README, 'Inside your own mitmproxy')",
                    option,
                    wanted,
                    why,
                    extra={"event": "standalone_option"},
                )
        self._gate = await start_gate(settings)
        ctx.master.addons.add(*gate_addons(self._gate.proxy_runtime()))
        self.ready = True

    async def done(self) -> None:
        # The store's threads (reader, WAL checkpoints) would keep the process alive: close
        # the store on shutdown.
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
