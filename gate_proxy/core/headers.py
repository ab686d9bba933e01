"""Header blocks: limits, syntax and hygiene, in one linear pass.

Pure: stdlib only, no I/O. Works on raw ``(name, value)`` byte pairs, the form mitmproxy
keeps in ``Headers.fields``. (``Headers.keys()`` is quadratic in the number of headers in
mitmproxy 12: 10,000 headers cost seconds of event-loop time, so nothing here uses it.)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "BOUND_HEADERS",
    "GATE_HEADER_PREFIX",
    "HOP_BY_HOP",
    "SAFE_METHODS",
    "HeadLimits",
    "HeadProblem",
    "check_head",
    "hygienic_fields",
    "override_signals",
]

Field = tuple[bytes, bytes]

GATE_HEADER_PREFIX = b"x-gate-"
# Headers that describe one hop, never the request (RFC 9110 §7.6.1), plus proxy ones.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authorization",
        b"proxy-authenticate",
        b"te",
        b"trailer",
        b"upgrade",
    }
)

# RFC 9110 §5.1: field-name = token.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 9110 §5.5: no CR, LF or NUL in a value; other controls but HTAB are refused too,
# since servers disagree on them.
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class HeadLimits:
    max_headers: int = 200
    max_bytes: int = 64 * 1024  # names + values + ": " + CRLF, as on the wire


@dataclass(frozen=True, slots=True)
class HeadProblem:
    status: int  # 431 for too much, 400 for malformed
    error: str
    message: str


def check_head(fields: Sequence[Field], limits: HeadLimits) -> HeadProblem | None:
    """Refuse header blocks that are too large or that servers could read differently."""
    if len(fields) > limits.max_headers:
        return HeadProblem(
            431,
            "too_many_headers",
            f"{len(fields)} header fields; the gate accepts at most {limits.max_headers}",
        )
    size = 0
    for name, value in fields:
        size += len(name) + len(value) + 4
    if size > limits.max_bytes:
        return HeadProblem(
            431,
            "headers_too_large",
            f"{size} bytes of header fields; the gate accepts at most {limits.max_bytes}",
        )
    for name, value in fields:
        if not _TOKEN.fullmatch(name):
            return HeadProblem(
                400, "invalid_header_name", f"invalid header field name {name[:64]!r}"
            )
        if _BAD_VALUE.search(value):
            if b"\n" in value:
                return HeadProblem(
                    400,
                    "obsolete_line_folding",
                    f"header {name.decode()!r} is folded over several lines (obs-fold, "
                    "refused by RFC 9112 §5.2)",
                )
            return HeadProblem(
                400,
                "invalid_header_value",
                f"header {name.decode()!r} holds a control character",
            )
    return None


def hygienic_fields(fields: Sequence[Field]) -> tuple[Field, ...]:
    """The fields minus the gate's own (X-Gate-*), Proxy-* and hop-by-hop ones.

    Applied to requests going upstream and to responses coming back, so neither side
    sees the other hop's headers and an upstream cannot pose as the gate. The headers a
    websocket handshake needs (Upgrade, Connection) stay when it is one.
    """
    listed: set[bytes] = set()
    websocket = False
    for name, value in fields:
        lower = name.lower()
        if lower == b"connection":
            listed.update(t.strip().lower() for t in value.split(b",") if t.strip())
        elif lower == b"upgrade" and value.strip().lower() == b"websocket":
            websocket = True
    kept: list[Field] = []
    for name, value in fields:
        lower = name.lower()
        if websocket and lower in (b"upgrade", b"connection"):
            kept.append((name, value))
            continue
        if (
            lower.startswith(GATE_HEADER_PREFIX)
            or lower.startswith(b"proxy-")
            or lower in HOP_BY_HOP
            or lower in listed
        ):
            continue
        kept.append((name, value))
    return tuple(kept)


# -- headers that change what a request means ------------------------------------------------

# Headers (and parameters) with which frameworks let a request act as another method or
# on another path than its request line says: Rails/Laravel/Symfony/Express middlewares,
# IIS URL Rewrite, Google and Microsoft APIs.
_METHOD_OVERRIDE = frozenset(
    {b"x-http-method-override", b"x-http-method", b"x-method-override", b"x-original-method"}
)
_PATH_OVERRIDE = frozenset({b"x-original-url", b"x-rewrite-url"})
METHOD_OVERRIDE_PARAMS = frozenset({"_method", "x-http-method-override"})

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

# An approval is bound to these request headers (with the method, URL and body): a retry
# that changes one of them is another request. Tenancy headers decide *whose* account a
# write lands in; the override family decides *what* it does.
BOUND_HEADERS = (
    "host",
    "content-type",
    "content-encoding",
    "idempotency-key",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-original-method",
    "x-original-url",
    "x-rewrite-url",
    "stripe-account",
    "stripe-context",
    "stripe-version",
    "openai-organization",
    "openai-project",
    "anthropic-version",
    "x-tenant-id",
    "x-account-id",
    "x-organization-id",
    "x-workspace-id",
    "x-on-behalf-of",
    "x-act-as",
)


def override_signals(
    fields: Sequence[Field], query_keys: Sequence[str], form_keys: Sequence[str] = ()
) -> tuple[str, ...]:
    """Names of the method/path override signals a request carries, in order."""
    found: list[str] = []
    for name, _ in fields:
        lower = name.lower()
        if lower in _METHOD_OVERRIDE or lower in _PATH_OVERRIDE:
            found.append(lower.decode())
    for key in (*query_keys, *form_keys):
        if key.lower() in METHOD_OVERRIDE_PARAMS:
            found.append(f"{key} parameter")
    return tuple(dict.fromkeys(found))
