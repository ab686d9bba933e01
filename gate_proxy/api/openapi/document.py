"""Builds the OpenAPI 3.1 document served at GET /v1/openapi.json (docs/api.md)."""

from typing import Any

from gate_proxy import __version__
from gate_proxy.api.http import WWW_AUTHENTICATE
from gate_proxy.api.openapi.requests import (
    INTENT_EXAMPLE,
    PARAMETERS,
    REQUEST_SCHEMAS,
    path_parameter,
)
from gate_proxy.api.openapi.responses import RESPONSE_SCHEMAS, ref
from gate_proxy.api.openapi.routes import ROUTES, Route

JSON = "application/json"
SECURITY = [{"bearerAuth": []}, {"gateKey": []}]  # either one
EXAMPLES = {"IntentRequest": INTENT_EXAMPLE}

DESCRIPTION = """\
The control API of Gate Proxy: agents submit intents, reviewers decide, workers report.

* Authenticate with `Authorization: Bearer <key>` (or `X-Gate-Key: <key>`). No or an
  unknown key: 401 with `WWW-Authenticate`; a suspended or revoked agent, or a role that may
  not do this: 403. Who is asking is settled before what was sent (401 comes before 400).
* Bodies are JSON objects (I-JSON: finite numbers, valid Unicode). `null` is the same as
  leaving an optional field out; unknown fields are ignored.
* Every refusal is JSON `{"error": <stable code>, "message": <for humans>}`.
* 405 answers carry `Allow`.

The contract, status codes and how it is tested: docs/api.md in the repository.
"""

ERROR_RESPONSES: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "Malformed request: the message names the field"),
    401: ("Unauthorized", "No key, or a key the gate does not know"),
    403: ("Forbidden", "The key's agent is suspended or revoked, or its role may not do this"),
    404: ("NotFound", "No such thing, or none the caller may see (the two answer alike)"),
    409: ("Conflict", "Not in a state that allows this (already decided, already used, ...)"),
    410: ("Expired", "A deadline has passed (review window, execution window)"),
    413: ("PayloadTooLarge", "The body is over the API's size limit"),
    503: ("Unavailable", "The gate cannot decide now (failed closed); nothing was recorded"),
}

TAGS = {
    "intents": "Submit, read and review intents",
    "executions": "Signed one-time execution orders and their reports",
    "agents": "Agents and their keys",
    "webhooks": "Signed notifications of decisions (docs/webhooks.md)",
    "ledger": "The hash-chained ledger",
    "proxy": "The forward proxy's CA and held requests",
    "gate": "Health, metrics, keys and this document",
    "legacy": "Seed 004's routes (docs/compat.md)",
}


def error_response(name: str, description: str) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {JSON: {"schema": ref("Error")}},
    }
    if name == "Unauthorized":
        response["headers"] = {
            "WWW-Authenticate": {
                "required": True,
                "description": f"`{WWW_AUTHENTICATE}`",
                "schema": {"type": "string"},
            }
        }
    return response


def success_response(route: Route) -> dict[str, Any]:
    if route.answer is not None:
        schema: dict[str, Any] = ref(route.answer)
    elif route.media == JSON:
        schema = {"type": "object"}
    else:
        schema = {"type": "string"}
    description = "Created" if route.status == 201 else "OK"
    if route.status >= 400:
        description = ERROR_RESPONSES.get(route.status, ("", "Refused"))[1]
    return {"description": description, "content": {route.media: {"schema": schema}}}


def operation(route: Route) -> dict[str, Any]:
    responses: dict[str, Any] = {str(route.status): success_response(route)}
    for status in sorted(set(route.errors)):
        responses[str(status)] = {"$ref": f"#/components/responses/{ERROR_RESPONSES[status][0]}"}
    op: dict[str, Any] = {
        "operationId": operation_id(route),
        "summary": route.summary,
        "tags": [route.tag],
        "responses": responses,
    }
    params = [path_parameter(s[1:-1]) for s in route.path.split("/") if s.startswith("{")]
    params += [{"$ref": f"#/components/parameters/{name}"} for name in route.params]
    if params:
        op["parameters"] = params
    if route.auth:
        op["security"] = SECURITY
    if route.body is not None:
        content: dict[str, Any] = {"schema": ref(route.body)}
        if route.body in EXAMPLES:
            content["example"] = EXAMPLES[route.body]
        # An empty body reads as {}: required exactly when {} is not a valid body.
        schema = REQUEST_SCHEMAS[route.body]
        needed = bool(schema.get("required") or schema.get("anyOf"))
        op["requestBody"] = {"required": needed, "content": {JSON: content}}
    return op


def operation_id(route: Route) -> str:
    if route.name is not None:
        return route.name
    words = [s.strip("{}") for s in route.path.split("/") if s and s != "v1"]
    return route.method + "".join(word.title().replace("_", "").replace(".", "") for word in words)


def build_openapi() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method] = operation(route)
    schemas = {**REQUEST_SCHEMAS, **RESPONSE_SCHEMAS}
    assert len(schemas) == len(REQUEST_SCHEMAS) + len(RESPONSE_SCHEMAS), "schema name clash"
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Gate Proxy control API",
            "version": __version__,
            "description": DESCRIPTION,
        },
        "tags": [{"name": name, "description": text} for name, text in TAGS.items()],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "parameters": PARAMETERS,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key (gate_sk_...); on the report route also the "
                    "execution token (gex_...)",
                },
                "gateKey": {"type": "apiKey", "in": "header", "name": "X-Gate-Key"},
            },
            "responses": {
                name: error_response(name, description)
                for name, description in ERROR_RESPONSES.values()
            },
        },
    }
