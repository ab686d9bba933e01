"""The control API's HTTP plumbing: JSON answers, the error mapping, who is calling."""

import json
import logging
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


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        text=json.dumps(data, ensure_ascii=False, default=str),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def error_response(status: int, error: str, message: str, **extra: Any) -> web.Response:
    return json_response({"error": error, "message": message, **extra}, status=status)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except GateError as exc:
        return json_response(exc.body(), status=http_status(exc))
    except web.HTTPRequestEntityTooLarge as exc:
        return error_response(413, "payload_too_large", exc.text or "request body too large")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = exc.reason.lower().replace(" ", "_")
        return error_response(exc.status, code, exc.reason)
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
    raw = await request.read()  # aiohttp enforces client_max_size here (413)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("invalid_json", f"request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise invalid("request body must be a JSON object")
    return body
