"""The MCP routing headers (2026-07-28): ``Mcp-Method`` and ``Mcp-Name`` must say what the
body says.

Pure: stdlib only.

Modern MCP clients repeat the method and the tool name in headers so that load balancers
and gateways can route without reading the body. The gate decides on the body; a router
or server behind it might act on the header. When both are present they must agree, and
each may appear once, or the request is refused (the SDK's own server refuses the same
mismatches; the gate does not rely on every server doing so).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from typing import Final

from gate_proxy.core.mcp.jsonrpc import (
    INVALID_REQUEST,
    TOOLS_CALL,
    McpBody,
    McpProblem,
    RequestId,
)

__all__ = ["check_routing_headers", "decode_header_value"]

_ROUTING: Final = ("mcp-method", "mcp-name", "mcp-protocol-version")
# The SDK's encoding of a non-ASCII header value: =?base64?<standard base64 of UTF-8>?=
_B64: Final = re.compile(r"=\?base64\?(?P<payload>[A-Za-z0-9+/]*={0,2})\?=")


def decode_header_value(value: str) -> str | None:
    """The header's text; None for a malformed ``=?base64?...?=`` value (never matches)."""
    found = _B64.fullmatch(value)
    if found is None:
        return value
    payload = found.group("payload")
    try:
        decoded = base64.b64decode(payload, validate=True)
        if base64.b64encode(decoded).decode("ascii") != payload:
            return None
        return decoded.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


def check_routing_headers(body: McpBody, headers: Iterable[tuple[str, str]]) -> McpProblem | None:
    """Why the routing headers disagree with the body (or repeat), if they do."""
    seen: dict[str, str] = {}
    first = None if body.batch else body.messages[0].request_id
    for name, value in headers:
        key = name.lower()
        if key in _ROUTING:
            if key in seen:
                return _mismatch(f"{name} is sent twice", first)
            seen[key] = value
    method = seen.get("mcp-method")
    tool = seen.get("mcp-name")
    if method is None and tool is None:
        return None
    if body.batch:
        return _mismatch("Mcp-Method/Mcp-Name headers name one message, but the body is a batch")
    (message,) = body.messages
    if method is not None and method != message.method:
        return _mismatch("the Mcp-Method header differs from the body's method", message.request_id)
    call = message.call if message.method == TOOLS_CALL else None
    if tool is not None and call is not None and decode_header_value(tool) != call.name:
        return _mismatch(
            "the Mcp-Name header differs from the body's tool name", message.request_id
        )
    return None


def _mismatch(message: str, request_id: RequestId | None = None) -> McpProblem:
    return McpProblem(INVALID_REQUEST, "mcp_header_mismatch", message, request_id)
