"""The control API's HTTP plumbing: JSON answers, the error mapping, who is calling."""

import json
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from gate_proxy.api.errors import http_status
from gate_proxy.errors import GateError, InvalidInput, invalid
from gate_proxy.principal import Principal
from gate_proxy.usecases import UseCases

log = logging.getLogger("gate.api")

USECASES = web.AppKey("usecases", UseCases)
EXTRA = web.AppKey("extra", dict)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# What a 401 from the control API says about how to authenticate (RFC 9110 §11.6.1).
WWW_AUTHENTICATE = 'Bearer realm="gate-proxy"'
# Headers of aiohttp's own HTTP errors worth keeping on our JSON answer (405's Allow above all).
KEPT_ERROR_HEADERS = ("Allow", "Retry-After")


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    try:
        body = json.dumps(data, ensure_ascii=False, default=str).encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate stored before bodies were checked (or reaching a preview some
        # other way) must not make a listing fail for good: \u escapes are valid JSON.
        body = json.dumps(data, ensure_ascii=True, default=str).encode("ascii")
    return web.Response(
        body=body,
        status=status,
        content_type="application/json",
        charset="utf-8",
        headers=headers,
    )


def error_response(
    status: int, error: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> web.Response:
    return json_response({"error": error, "message": message, **extra}, status, headers)


def _auth_challenge(request: web.Request, status: int) -> dict[str, str] | None:
    # The dashboard's 401s are about its session cookie, not a bearer key.
    if status == 401 and request.path.startswith("/v1/"):
        return {"WWW-Authenticate": WWW_AUTHENTICATE}
    return None


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except GateError as exc:
        status = http_status(exc)
        return json_response(exc.body(), status, _auth_challenge(request, status))
    except web.HTTPRequestEntityTooLarge as exc:
        return error_response(413, "payload_too_large", exc.text or "request body too large")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = exc.reason.lower().replace(" ", "_")
        kept = {name: exc.headers[name] for name in KEPT_ERROR_HEADERS if name in exc.headers}
        return error_response(exc.status, code, exc.reason, kept)
    except Exception:
        # Never echo internals: the exception text could carry request data.
        log.exception("unhandled error in %s %s", request.method, request.path)
        usecases = request.app.get(USECASES)
        if usecases is not None:
            usecases.metrics.internal_errors.inc("api")
        return error_response(500, "internal_error", "the gate hit an internal error")


def bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("X-Gate-Key") or None


async def caller(request: web.Request) -> Principal:
    return await request.app[USECASES].agents.authenticate(bearer(request))


async def read_json(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object; an empty body is ``{}``.

    The body must be I-JSON (RFC 7493): numbers finite (no NaN, no Infinity, no 1e400) and
    strings real Unicode (no lone surrogate escapes, which no database or log can hold)."""
    raw = await request.read()  # aiohttp enforces client_max_size here (413)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("invalid_json", f"request body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise InvalidInput("invalid_json", "request body is nested too deeply") from exc
    if not isinstance(body, dict):
        raise invalid("request body must be a JSON object")
    require_i_json(body)
    return body


def require_i_json(body: dict[str, Any]) -> None:
    """InvalidInput naming the first non-finite number or lone surrogate in ``body``."""
    try:
        # One pass in C for the common case; the slow walk only runs to name the culprit.
        json.dumps(body, ensure_ascii=False, allow_nan=False).encode("utf-8")
        return
    except (ValueError, UnicodeEncodeError):
        pass
    stack: list[tuple[str, Any]] = [(key, value) for key, value in body.items()]
    while stack:
        path, value = stack.pop()
        if not _is_text(path):
            raise invalid("a field name is not valid Unicode (a lone surrogate escape)")
        if isinstance(value, float) and not math.isfinite(value):
            raise invalid(f"{path} must be a finite number (no NaN, Infinity or overflow)")
        if isinstance(value, str) and not _is_text(value):
            raise invalid(f"{path} is not valid Unicode text (a lone surrogate escape)")
        if isinstance(value, dict):
            stack.extend((f"{path}.{key}", item) for key, item in value.items())
        elif isinstance(value, list):
            stack.extend((f"{path}[{index}]", item) for index, item in enumerate(value))


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def header_text(request: web.Request, name: str) -> str | None:
    """A request header as text, or None; InvalidInput if its bytes are not UTF-8 (aiohttp
    keeps such bytes as lone surrogates, which nothing downstream can store)."""
    value = request.headers.get(name)
    if value and not _is_text(value):
        raise invalid(f"the {name} header must be UTF-8 text")
    return value or None
