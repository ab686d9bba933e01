"""The gate's mitmproxy addons, one concern each, in the order of the data path.

agent -> identity -> routing -> vault guard -> decision -> egress -> forwarding ->
credential injection -> MCP answers -> record. ``gate-proxy serve`` loads them into its embedded
mitmproxy; ``mitmdump -s addons/gate.py`` loads them into a plain one. Either way as one
mitmproxy addon (``GatePipeline``, pipeline.py) that runs the steps in this order.
"""

from gate_proxy.proxy.addons.decision import GateDecision
from gate_proxy.proxy.addons.egress import EgressGuard
from gate_proxy.proxy.addons.forwarding import GateForwarding
from gate_proxy.proxy.addons.identity import GateIdentity
from gate_proxy.proxy.addons.mcp import McpAnswers
from gate_proxy.proxy.addons.pipeline import GatePipeline
from gate_proxy.proxy.addons.record import GateRecord
from gate_proxy.proxy.addons.routing import GateRouting
from gate_proxy.proxy.addons.timeouts import RequestHeaderTimeout
from gate_proxy.proxy.addons.vault import AgentCredentialGuard, CredentialInjector
from gate_proxy.proxy.runtime import ProxyRuntime

__all__ = ["GatePipeline", "gate_addons", "gate_steps"]


def gate_addons(runtime: ProxyRuntime) -> list[object]:
    """What mitmproxy loads: the steps as one addon (one dispatch per hook)."""
    return [GatePipeline(gate_steps(runtime))]


def gate_steps(runtime: ProxyRuntime) -> list[object]:
    """In hook order: who is asking, where it goes, what is decided, what happens after."""
    return [
        RequestHeaderTimeout(runtime.settings.request_header_timeout_s),
        GateIdentity(runtime),  # who is asking (407/401), gate and hop-by-hop headers
        GateRouting(runtime),  # snapshot, reverse routes, one authority, one registry match
        AgentCredentialGuard(runtime),  # the agent's own credentials on vault destinations
        GateDecision(runtime),  # core.decide, via the proposals use case; holds, retries
        EgressGuard(runtime),  # SSRF check, pinned resolution
        GateForwarding(runtime),  # streaming, 504, response hygiene, the execution outcome
        CredentialInjector(runtime),  # inject the credential, scrub it from the answer
        # After every request-hook refusal (decision, hold, egress, vault): the gate's own
        # answers to an MCP request become JSON-RPC responses with the request's id.
        McpAnswers(runtime),
        GateRecord(runtime),  # one canonical line per request
    ]
