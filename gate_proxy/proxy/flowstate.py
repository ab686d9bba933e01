"""What the gate's addons know about one proxied request: one typed object per flow.

mitmproxy passes a flow from hook to hook and addon to addon; instead of string keys in
``flow.metadata``, every addon reads and writes this one object (``state_of(flow)``).
The config snapshot is taken once, when the request arrives, so every step of one
request sees the same registry and policies, whatever a reload does meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mitmproxy import http

if TYPE_CHECKING:
    from gate_proxy.core.decide import Verdict
    from gate_proxy.core.registry import Match
    from gate_proxy.loaders.snapshot import ConfigSnapshot
    from gate_proxy.principal import Principal
    from gate_proxy.proxy.addons.mcp import McpExchange
    from gate_proxy.vault import Injection

_KEY = "gate"


@dataclass(slots=True)
class InFlight:
    """A forwarded request whose outcome the ledger still owes."""

    intent_id: str
    agent_id: str


@dataclass(slots=True)
class FlowState:
    started: float = field(default_factory=time.perf_counter)
    principal: Principal | None = None
    snapshot: ConfigSnapshot | None = None
    reverse: bool = False
    match: Match | None = None
    # From the gate's own request headers (stripped before anything goes upstream).
    retry_of: str | None = None  # X-Gate-Intent-Id: re-sending an approved request
    wait: bool = False  # X-Gate-Wait: hold until a human decides
    # A parsed MCP POST (protocol: mcp): its answers speak JSON-RPC (addons/mcp.py).
    mcp: McpExchange | None = None
    # MCP protocol traffic and reads go upstream without an execution to record, yet the
    # server needs its credential for them too (read by the vault's CredentialInjector).
    inject_without_execution: bool = False
    # The decision and what came of it.
    verdict: Verdict | None = None
    intent_id: str | None = None
    in_flight: InFlight | None = None
    injection: Injection | None = None
    scrubbing: Any = None  # addons.vault.Scrubbing while a response must be cleaned
    # The gate answered this request itself (refusal, pending, error); set by refuse().
    answered: bool = False
    outcome: str | None = None  # for the record line: what the gate did
    reason: str | None = None
    # Forwarding.
    # The upstream timeout: a timer until it fires, then the task that answers 504.
    deadline: asyncio.TimerHandle | asyncio.Future[None] | None = None
    upstream_timeout: bool = False
    bad_response_head: str | None = None
    upstream_status: int | None = None
    recorded: bool = False  # the canonical line for this request has been written


def state_of(flow: http.HTTPFlow) -> FlowState:
    state = flow.metadata.get(_KEY)
    if state is None:
        state = flow.metadata[_KEY] = FlowState()
    return state
