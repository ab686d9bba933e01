"""Request fingerprint: binds an approval to one exact request.

Pure: stdlib only, no I/O.

The fingerprint is the hex SHA-256 of a JSON array (JSON strings are self-delimiting, so
no two different inputs encode to the same bytes)::

    ["gate-proxy.request.v1", METHOD, normalized_url, sha256(body),
     [[header-name, [value, ...] | null], ...]]

* ``METHOD`` is upper-cased; ``normalized_url`` should come from
  :func:`gate_proxy.core.urlnorm.normalize_url`.
* Only the *relevant* headers count. Names are lower-cased, de-duplicated and sorted.
  A missing header is ``null``; a present-but-empty header is ``[""]``; a repeated header
  keeps every value in order. Pass a list of ``(name, value)`` pairs to keep repeats
  (a plain mapping holds one value per name).

An MCP ``tools/call`` is bound to the call, not to its envelope
(:func:`mcp_call_fingerprint`)::

    ["gate-proxy.mcp.v1", normalized_url, sha256(binding), [[header-name, ...], ...]]

where ``binding`` is the canonical JSON (RFC 8785) of the tool name, its arguments and
the other members of ``params`` but ``_meta`` (``core/mcp/jsonrpc.py``). The JSON-RPC
``id`` and the ``Mcp-Session-Id`` are not part of it: the same call re-sent with a new id,
or in a new session, is the same call; different arguments make another (compared as
canonical JSON, so key order and number spelling such as ``1.0``/``1`` do not count).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence

__all__ = [
    "FINGERPRINT_VERSION",
    "MCP_FINGERPRINT_VERSION",
    "body_sha256",
    "mcp_call_fingerprint",
    "request_fingerprint",
]

FINGERPRINT_VERSION = "gate-proxy.request.v1"
MCP_FINGERPRINT_VERSION = "gate-proxy.mcp.v1"

Headers = Mapping[str, str] | Iterable[tuple[str, str]]


def body_sha256(body: bytes | bytearray | memoryview | None) -> str:
    """Hex SHA-256 of the request body (``None`` counts as empty)."""
    return hashlib.sha256(bytes(body) if body is not None else b"").hexdigest()


def _header_values(headers: Headers) -> dict[str, list[str]]:
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    out: dict[str, list[str]] = {}
    for name, value in pairs:
        out.setdefault(name.lower(), []).append(value)
    return out


def request_fingerprint(
    method: str,
    normalized_url: str,
    body: bytes | bytearray | memoryview | None,
    headers: Headers,
    relevant_headers: Sequence[str] = (),
) -> str:
    """Hex SHA-256 fingerprint of method, URL, body hash and the relevant header values."""
    values = _header_values(headers)
    names = sorted({name.lower() for name in relevant_headers})
    payload = [
        FINGERPRINT_VERSION,
        method.upper(),
        normalized_url,
        body_sha256(body),
        [[name, values.get(name)] for name in names],
    ]
    encoded = json.dumps(payload, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(encoded.encode("ascii")).hexdigest()


def mcp_call_fingerprint(
    normalized_url: str,
    binding: bytes,
    headers: Headers,
    relevant_headers: Sequence[str] = (),
) -> str:
    """Hex SHA-256 fingerprint of one MCP tool call at ``normalized_url`` (see above)."""
    values = _header_values(headers)
    names = sorted({name.lower() for name in relevant_headers})
    payload = [
        MCP_FINGERPRINT_VERSION,
        normalized_url,
        body_sha256(binding),
        [[name, values.get(name)] for name in names],
    ]
    encoded = json.dumps(payload, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(encoded.encode("ascii")).hexdigest()
