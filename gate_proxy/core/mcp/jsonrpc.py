"""Read an MCP request body (JSON-RPC 2.0) the way a strict server does, or say why not.

Pure: stdlib and ``core.canonical`` only, no I/O.

A governed MCP endpoint is only as safe as the gate's reading of its bodies: if the gate
and the server read one body two ways, a call could be decided as one tool and executed as
another. So every body that more than one server could read differently is refused, never
guessed at (docs/mcp.md, "What the gate refuses"):

* JSON: one UTF-8 text (the caller decodes charsets and BOMs with ``core.body``), no
  duplicate object keys at any depth (servers disagree on which wins), no NaN/Infinity,
  no number that overflows a double, no lone UTF-16 surrogate in a string, at most
  ``MAX_DEPTH`` levels of nesting.
* JSON-RPC: an object, or a non-empty array of at most ``MAX_BATCH`` objects (a batch)
  with distinct request ids; each has ``"jsonrpc": "2.0"`` and only the members of a
  request, notification or response (a ``Method`` beside ``method`` is refused, not
  ignored); ids are strings or integers; ``params`` is an object.
* Methods are matched exactly, as JSON-RPC servers do. A method the gate does not know is
  refused (a lenient server might route ``TOOLS/CALL`` to ``tools/call``).
* ``tools/call`` has an id (a notification could still be executed by a lax server), a
  ``name`` string and ``arguments`` that are an object or absent. ``arguments`` given as a
  string holding JSON is refused: some SDKs parse it, others reject it, so the gate cannot
  know which object would run. Keys in ``params`` that differ from ``name`` or
  ``arguments`` only in case are refused.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from gate_proxy.core.canonical import canonical_bytes

__all__ = [
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "MAX_BATCH",
    "MAX_DEPTH",
    "METHOD_NOT_FOUND",
    "PARSE_ERROR",
    "McpBody",
    "McpProblem",
    "Message",
    "MessageKind",
    "RequestId",
    "ToolCall",
    "parse_mcp_body",
]

# JSON-RPC 2.0 error codes.
PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602

MAX_DEPTH: Final = 64  # deeper JSON is refused: no tool needs it, and parsers' limits differ
MAX_BATCH: Final = 32  # messages in one batch

TOOLS_CALL: Final = "tools/call"

RequestId = str | int

# Client-to-server methods that are protocol traffic: they read, negotiate or end a
# session, and never run a tool (docs/mcp.md). Anything else but tools/call is refused.
PROTOCOL_METHODS: Final = frozenset(
    {
        "initialize",
        "ping",
        "server/discover",
        "tools/list",
        "resources/list",
        "resources/templates/list",
        "resources/read",
        "resources/subscribe",
        "resources/unsubscribe",
        "prompts/list",
        "prompts/get",
        "completion/complete",
        "logging/setLevel",
        "subscriptions/listen",
        "tasks/get",
        "tasks/list",
        "tasks/result",
        "tasks/cancel",
    }
)
NOTIFICATION_PREFIX: Final = "notifications/"

_REQUEST_MEMBERS: Final = frozenset({"jsonrpc", "id", "method", "params"})
_RESPONSE_MEMBERS: Final = frozenset({"jsonrpc", "id", "result", "error"})


class MessageKind(StrEnum):
    REQUEST = "request"  # method and id: expects an answer
    NOTIFICATION = "notification"  # method, no id
    RESPONSE = "response"  # result or error: the client answering a server's request


@dataclass(frozen=True, slots=True)
class McpProblem:
    """Why a body is refused, as a JSON-RPC error (``request_id`` when it was readable)."""

    code: int
    reason_code: str
    message: str
    request_id: RequestId | None = None


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One ``tools/call``: what the policy sees and what an approval is bound to."""

    request_id: RequestId
    name: str
    arguments: Mapping[str, Any]
    # The arguments as canonical JSON (RFC 8785): the payload the policy evaluates.
    arguments_json: str
    # Canonical JSON of everything that decides what runs: the name, the arguments and
    # every other member of params but `_meta` (progress tokens, client info). The
    # JSON-RPC id and the session are not part of it.
    binding: bytes


@dataclass(frozen=True, slots=True)
class Message:
    kind: MessageKind
    request_id: RequestId | None
    method: str | None
    call: ToolCall | None = None

    @property
    def is_protocol(self) -> bool:
        return self.call is None


@dataclass(frozen=True, slots=True)
class McpBody:
    messages: tuple[Message, ...]
    batch: bool

    @property
    def calls(self) -> tuple[ToolCall, ...]:
        return tuple(m.call for m in self.messages if m.call is not None)

    @property
    def requests(self) -> tuple[Message, ...]:
        """The messages that expect an answer, in body order."""
        return tuple(m for m in self.messages if m.kind is MessageKind.REQUEST)


class _Refused(Exception):
    def __init__(self, problem: McpProblem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def _parse_error(reason_code: str, message: str) -> _Refused:
    return _Refused(McpProblem(PARSE_ERROR, reason_code, message))


# -- strict JSON ------------------------------------------------------------------------------


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)  # in C; the loop below runs only when a key repeats
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _parse_error(
                    "mcp_duplicate_key",
                    f"duplicate key {key!r}: servers disagree on which one counts",
                )
            seen.add(key)
    return result


def _constant(name: str) -> Any:
    raise _parse_error("mcp_invalid_json", f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _parse_error("mcp_invalid_json", f"the number {text[:40]} is out of range")
    return value


_DECODER: Final = json.JSONDecoder(
    object_pairs_hook=_object, parse_constant=_constant, parse_float=_finite
)


def _load(text: str) -> Any:
    try:
        value = _DECODER.decode(text)
    except _Refused:
        raise
    except RecursionError:
        raise _parse_error("mcp_too_deep", f"JSON nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # JSONDecodeError, and int() refusing 4300+ digits
        raise _parse_error("mcp_invalid_json", f"the body is not JSON: {exc}") from None
    if text.count("{") + text.count("[") > MAX_DEPTH:  # else it cannot be that deep
        _check_depth(value)
    return value


def _check_depth(root: Any) -> None:
    # Iterative: a recursive walk would be the stack overflow the limit exists to avoid.
    stack: list[tuple[Any, int]] = [(root, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Iterable[Any] = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > MAX_DEPTH:
            raise _parse_error("mcp_too_deep", f"JSON nested deeper than {MAX_DEPTH} levels")
        stack.extend((child, depth + 1) for child in children)


# -- JSON-RPC ---------------------------------------------------------------------------------


def parse_mcp_body(text: str) -> McpBody | McpProblem:
    """One MCP POST body (already decoded to text), read strictly; see the module doc."""
    try:
        root = _load(text)
        if isinstance(root, dict):
            return McpBody((_message(root),), batch=False)
        if isinstance(root, list):
            return McpBody(_batch(root), batch=True)
        raise _invalid("a JSON-RPC body is an object or an array of objects")
    except _Refused as refused:
        return refused.problem


def _invalid(message: str, request_id: RequestId | None = None) -> _Refused:
    return _Refused(McpProblem(INVALID_REQUEST, "mcp_invalid_request", message, request_id))


def _batch(items: list[Any]) -> tuple[Message, ...]:
    if not items:
        raise _invalid("an empty batch is not a JSON-RPC request")
    if len(items) > MAX_BATCH:
        raise _invalid(f"a batch holds at most {MAX_BATCH} messages")
    messages = tuple(_message(item) for item in items)
    ids = [m.request_id for m in messages if m.kind is MessageKind.REQUEST]
    if len({(type(i).__name__, i) for i in ids}) != len(ids):
        raise _invalid("two requests in one batch share an id: their answers would be ambiguous")
    return messages


def _request_id(message: dict[str, Any]) -> RequestId | None:
    raw = message.get("id")
    if isinstance(raw, str) or (isinstance(raw, int) and not isinstance(raw, bool)):
        return raw
    return None


def _message(raw: Any) -> Message:
    if not isinstance(raw, dict):
        raise _invalid("every JSON-RPC message is an object")
    request_id = _request_id(raw)
    if raw.get("jsonrpc") != "2.0":
        raise _invalid('"jsonrpc" must be "2.0"', request_id)
    if "id" in raw and request_id is None and "method" in raw:
        raise _invalid("a request id is a string or an integer")
    if "method" in raw:
        return _call_or_protocol(raw, request_id)
    if "result" in raw or "error" in raw:
        unexpected = sorted(set(raw) - _RESPONSE_MEMBERS)
        if unexpected:
            raise _invalid(f"unexpected member {unexpected[0]!r} in a response")
        if ("result" in raw) == ("error" in raw) or "id" not in raw:
            raise _invalid("a response has an id and exactly one of result or error")
        return Message(MessageKind.RESPONSE, request_id, None)
    raise _invalid("a message has a method (request, notification) or a result or error")


def _call_or_protocol(raw: dict[str, Any], request_id: RequestId | None) -> Message:
    unexpected = sorted(set(raw) - _REQUEST_MEMBERS)
    if unexpected:
        raise _invalid(f"unexpected member {unexpected[0]!r} in a request", request_id)
    method = raw["method"]
    if not isinstance(method, str):
        raise _invalid("method must be a string", request_id)
    params = raw.get("params")
    if params is not None and not isinstance(params, dict):
        raise _Refused(
            McpProblem(INVALID_PARAMS, "mcp_invalid_params", "params must be an object", request_id)
        )
    kind = MessageKind.NOTIFICATION if "id" not in raw else MessageKind.REQUEST
    if method == TOOLS_CALL:
        if request_id is None:
            raise _invalid("tools/call must be a request with an id, not a notification")
        return Message(kind, request_id, method, _tool_call(params, request_id))
    if method in PROTOCOL_METHODS or method.startswith(NOTIFICATION_PREFIX):
        return Message(kind, request_id, method)
    raise _Refused(
        McpProblem(
            METHOD_NOT_FOUND,
            "mcp_method_not_governed",
            f"the gate does not pass the MCP method {method[:80]!r} (methods are case-sensitive)",
            request_id,
        )
    )


def _invalid_params(message: str, request_id: RequestId) -> _Refused:
    return _Refused(McpProblem(INVALID_PARAMS, "mcp_invalid_params", message, request_id))


def _tool_call(params: dict[str, Any] | None, request_id: RequestId) -> ToolCall:
    if params is None:
        raise _invalid_params("tools/call needs params with a tool name", request_id)
    for key in params:
        folded = key.casefold()
        if folded in ("name", "arguments") and key != folded:
            raise _invalid_params(
                f"params has {key!r} beside {folded!r}: servers differ on whether case matters",
                request_id,
            )
    name = params.get("name")
    if not isinstance(name, str):
        raise _invalid_params("params.name must be the tool's name (a string)", request_id)
    arguments = params.get("arguments")
    if arguments is None:
        arguments = {}
    if isinstance(arguments, str):
        raise _invalid_params(
            "params.arguments must be a JSON object, not a string holding JSON: servers "
            "disagree on whether to parse it",
            request_id,
        )
    if not isinstance(arguments, dict):
        raise _invalid_params("params.arguments must be a JSON object", request_id)
    rest = {k: v for k, v in params.items() if k not in ("name", "arguments", "_meta")}
    try:
        arguments_bytes = canonical_bytes(arguments)
        # The canonical JSON of [name, arguments, rest], without encoding the arguments twice.
        binding = b"".join(
            (b"[", canonical_bytes(name), b",", arguments_bytes, b",", canonical_bytes(rest), b"]")
        )
        # canonical_bytes passes lone surrogates through; no server reads them alike.
        arguments_bytes.decode("utf-8")
        binding.decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise _parse_error(
            "mcp_invalid_json", "a string holds a lone UTF-16 surrogate, which is not text"
        ) from None
    return ToolCall(
        request_id=request_id,
        name=name,
        arguments=arguments,
        arguments_json=arguments_bytes.decode("utf-8"),
        binding=binding,
    )
