"""Where an intent records the MCP tool it calls: one shape, written by the proxy edge and
read by every view (dashboard, API, CLI).

Pure. The intents table has no tool column yet, so the tool lives in the intent's
metadata under ``mcp``. Only a proxied intent's metadata is the gate's own; an API
intent's metadata is whatever the agent sent, so it never names a tool.
"""

from typing import Any

from gate_proxy.core.intents import Intent

__all__ = ["intent_tool", "tool_metadata"]


def tool_metadata(tool: str) -> dict[str, Any]:
    return {"mcp": {"tool": tool, "method": "tools/call"}}


def intent_tool(intent: Intent) -> str | None:
    """The MCP tool a proxied ``tools/call`` intent names; None for any other intent."""
    if intent.source != "proxy":
        return None
    mcp = intent.metadata.get("mcp")
    tool = mcp.get("tool") if isinstance(mcp, dict) else None
    return tool if isinstance(tool, str) else None
