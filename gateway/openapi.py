"""What ``/openapi.json`` says, and the ``/docs`` and ``/redoc`` pages, served without a network.

Every route declares its error statuses from one table (``error_responses``), each with the
error envelope's schema (``gateway.errors.ErrorEnvelope``). FastAPI adds a 422 of its own shape
to every route with parameters unless the route declares one; ``install_openapi`` drops it where
the route cannot answer 422 (``/v1/generate`` answers invalid requests with 400, a job id
cannot be invalid).
The documentation pages load Swagger UI and ReDoc from the ``fastapi-offline`` wheel's static
files instead of a CDN.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from gateway.errors import ErrorEnvelope

RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before trying again",
                               "schema": {"type": "integer"}}}

ERROR_DESCRIPTIONS = {
    400: "Bad request: malformed JSON or an unreadable file",
    401: "Missing or invalid API key (checked only when the service has keys configured)",
    404: "Unknown model or job",
    413: "Request body larger than the service's limit (MATSERVE_MAX_BODY_BYTES)",
    422: "Invalid values; `detail` locates each one",
    500: "Unexpected error (logged on the server; no details in the body)",
    503: "Not ready, draining, backend unavailable, or a queue full; retry after `Retry-After` seconds",
    504: "The request's `timeout_s` passed first; its work was cancelled",
}

# Statuses that any route can answer: the body-size limit is checked before routing, and
# an unexpected error is a 500 everywhere.
ANY_ROUTE = (413, 500)


def error_responses(*statuses: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses for ``statuses`` (plus 413 and 500), each with the error envelope.

    ``descriptions`` overrides the default text of a status for one route: ``s400="..."``.
    """
    responses: dict[int | str, dict[str, Any]] = {}
    for status in sorted({*statuses, *ANY_ROUTE}):
        response: dict[str, Any] = {"model": ErrorEnvelope,
                                    "description": descriptions.get(f"s{status}", ERROR_DESCRIPTIONS[status])}
        if status == 503:
            response["headers"] = RETRY_AFTER
        responses[status] = response
    return responses


def _fix_error_responses(schema: dict[str, Any]) -> None:
    """FastAPI's automatic 422 (``HTTPValidationError``) goes where a route does not declare 422
    (one that does declares it with the envelope); error bodies are JSON even on a text route."""
    default_422 = "#/components/schemas/HTTPValidationError"
    envelope = "#/components/schemas/ErrorEnvelope"
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            if default_422 in repr(responses.get("422", {})):
                del responses["422"]
            for response in responses.values():
                content = response.get("content", {})
                for media_type in [m for m in content if m != "application/json"]:
                    if content[media_type].get("schema", {}).get("$ref") == envelope:
                        content["application/json"] = content.pop(media_type)
    components = schema.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):  # the second is referenced only by the first
        if name in components and f"#/components/schemas/{name}'" not in repr(schema):
            del components[name]


def _path_enums(schema: dict[str, Any], enums: dict[str, list[str]]) -> None:
    """Path parameters whose values the service knows at start-up (``model``: the property models)."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "path" and enums.get(parameter["name"]):
                    parameter["schema"] = {**parameter["schema"], "enum": enums[parameter["name"]]}


def install_openapi(app: FastAPI, path_enums: dict[str, list[str]] | None = None) -> None:
    """``app.openapi`` generates the document once, pruned as described above; ``path_enums``
    lists the values a path parameter may take (the route answers 404 to others)."""
    generate = app.openapi
    done: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        if "schema" not in done:
            schema = generate()
            _fix_error_responses(schema)
            _path_enums(schema, path_enums or {})
            done["schema"] = schema
        return done["schema"]

    app.openapi = openapi  # type: ignore[method-assign]


ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"
ASSETS_URL = "/docs/assets"


def install_docs(app: FastAPI, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """Swagger UI at ``docs_url`` and ReDoc at ``redoc_url``, every asset served from ``ASSETS_URL``."""
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="docs-assets")

    @app.get(docs_url, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - Swagger UI",
                                   swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
                                   swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
                                   swagger_ui_parameters=app.swagger_ui_parameters)

    @app.get(redoc_url, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - ReDoc",
                              redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
                              redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png", with_google_fonts=False)


# ``POST /v1/{model}/prediction`` and ``/predict`` read their body themselves (gateway/structure_input.py).
_FILE_FIELD = {"type": "string", "description": "the structure: VASP 5 POSCAR or CIF text"}
STRUCTURE_FILE_BODY = {
    "requestBody": {
        "required": True,
        "description": "the structure file, as AFLOW-ML takes it: form field `file` (urlencoded or multipart), "
                       "a JSON object with a string `file`, or the file's text as the whole body",
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {"type": "object", "properties": {"file": _FILE_FIELD}, "required": ["file"]}},
            "multipart/form-data": {
                "schema": {"type": "object", "properties": {"file": _FILE_FIELD}, "required": ["file"]}},
            "application/json": {
                "schema": {"type": "object", "properties": {"file": _FILE_FIELD}, "required": ["file"]}},
            "text/plain": {"schema": _FILE_FIELD},
        },
    }
}

_READINESS = {
    "type": "object",
    "properties": {
        "status": {"type": "string", "enum": ["ready", "not ready"]},
        "backends_alive": {"type": "integer", "minimum": 0, "description": "Triton models ready"},
        "backends_total": {"type": "integer", "minimum": 0, "description": "Triton models served"},
        "backends_not_ready": {"type": "array", "items": {"type": "string"},
                               "description": "matserve extension, when not ready: the Triton models not ready"},
    },
    "required": ["status", "backends_alive", "backends_total"],
}
READINESS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Ready: Triton and every model ready, the atom budget known, not draining",
          "content": {"application/json": {"schema": _READINESS}}},
    503: {"description": "Not ready (starting, a model down, or draining); the readiness body, not the error envelope",
          "content": {"application/json": {"schema": _READINESS}}, "headers": RETRY_AFTER},
}

PROMETHEUS_TEXT = {200: {"description": "Prometheus text exposition format 0.0.4",
                         "content": {"text/plain": {"schema": {"type": "string"}}}}}
