"""MCP (Model Context Protocol) governance, pure: reading JSON-RPC bodies strictly
(``jsonrpc.py``), checking the routing headers against them (``headers.py``) and a
policy's ``tools:`` rules (``rules.py``). No I/O, no mitmproxy.

The proxy edge (``proxy/addons/mcp.py``) uses them for registry entries with
``protocol: mcp``: protocol traffic is forwarded without an intent, a ``tools/call`` is
decided like any write with its ``arguments`` as the payload. docs/mcp.md has the whole
story.
"""

from gate_proxy.core.mcp.headers import check_routing_headers, decode_header_value
from gate_proxy.core.mcp.jsonrpc import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    MAX_BATCH,
    MAX_DEPTH,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    PROTOCOL_METHODS,
    TOOLS_CALL,
    McpBody,
    McpProblem,
    Message,
    MessageKind,
    RequestId,
    ToolCall,
    parse_mcp_body,
)
from gate_proxy.core.mcp.rules import (
    MAX_TOOL_NAME,
    ToolPattern,
    ToolRule,
    ToolRules,
    ToolRuling,
    rule_for_tool,
    valid_tool_name,
    valid_tool_pattern,
)

__all__ = [
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "MAX_BATCH",
    "MAX_DEPTH",
    "MAX_TOOL_NAME",
    "METHOD_NOT_FOUND",
    "PARSE_ERROR",
    "PROTOCOL_METHODS",
    "TOOLS_CALL",
    "McpBody",
    "McpProblem",
    "Message",
    "MessageKind",
    "RequestId",
    "ToolCall",
    "ToolPattern",
    "ToolRule",
    "ToolRules",
    "ToolRuling",
    "check_routing_headers",
    "decode_header_value",
    "parse_mcp_body",
    "rule_for_tool",
    "valid_tool_name",
    "valid_tool_pattern",
]
