"""The OpenAPI 3.1 document of the control API, served at GET /v1/openapi.json.

``routes.py`` lists every operation, ``requests.py`` and ``responses.py`` hold the schemas,
``document.py`` assembles them. tests/test_api.py checks the table against the routes the
app serves; tests/test_api_contract.py fuzzes the real gate against the document.
"""

import json
from functools import cache

from aiohttp import web

from gate_proxy.api.openapi.document import build_openapi
from gate_proxy.api.openapi.routes import ROUTES, Route

__all__ = ["ROUTES", "Route", "build_openapi", "openapi_handler"]


@cache
def _document_bytes() -> bytes:
    return json.dumps(build_openapi(), ensure_ascii=False).encode("utf-8")


async def openapi_handler(request: web.Request) -> web.Response:
    return web.Response(body=_document_bytes(), content_type="application/json")
