"""One exception per error condition and one envelope for all of them.

Every error body is ``{"error": "<one line>", "detail": [{"loc", "msg", "type"}, ...]}``:
``error`` keeps CrystaLLM and KServe clients working, ``detail`` keeps the BGR 422 schema.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.admission import QueueFull
from gateway.triton_client import TritonRejected, TritonUnavailable
from matserve.contract import InvalidInput

log = logging.getLogger("matserve.gateway")


class APIError(Exception):
    status_code = 500
    error_type = "server_error"

    def __init__(self, message: str, detail: list[dict[str, Any]] | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.detail = detail or [{"loc": [], "msg": message, "type": self.error_type}]
        self.headers = headers


class BadRequest(APIError):
    status_code = 400
    error_type = "bad_request"


class Unauthorized(APIError):
    status_code = 401
    error_type = "unauthorized"


class NotFound(APIError):
    status_code = 404
    error_type = "not_found"


class PayloadTooLarge(APIError):
    status_code = 413
    error_type = "payload_too_large"


class Unprocessable(APIError):
    status_code = 422
    error_type = "value_error"


class NotReady(APIError):
    status_code = 503
    error_type = "not_ready"

    def __init__(self, message: str = "service not ready", retry_after_s: int = 5):
        super().__init__(message, headers={"Retry-After": str(retry_after_s)})


class Saturated(APIError):
    """A queue is at its bound: come back after ``Retry-After`` seconds."""

    status_code = 503
    error_type = "saturated"

    def __init__(self, message: str, retry_after_s: int):
        super().__init__(message, headers={"Retry-After": str(retry_after_s)})


class GatewayTimeout(APIError):
    status_code = 504
    error_type = "timeout"


class ErrorDetail(BaseModel):
    """One problem: where it is (``["body", "atoms", 0, "coord"]``), what is wrong, and its kind."""

    loc: list[str | int] = Field(description="path to the offending value: body, path, query or header first")
    msg: str = Field(description="what is wrong with it")
    type: str = Field(description="kind of problem, e.g. missing, value_error, not_found")


class ErrorEnvelope(BaseModel):
    """The body of every error response (the readiness probe's 503 excepted: it has its own body)."""

    error: str = Field(description="one-line human message")
    detail: list[ErrorDetail]


def envelope(message: str, detail: list[dict[str, Any]]) -> dict[str, Any]:
    return {"error": message, "detail": detail}


def _clean_detail(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pydantic errors reduced to the documented keys (no input echo, no URLs)."""
    return [{"loc": list(e.get("loc", [])), "msg": _message(str(e.get("msg", ""))), "type": str(e.get("type", ""))}
            for e in errors]


def _message(msg: str) -> str:
    """A validator's own message without pydantic's "Value error, " prefix."""
    return msg.removeprefix("Value error, ")


def _summary(detail: list[dict[str, Any]]) -> str:
    first = detail[0]
    where = ".".join(str(part) for part in first["loc"] if part != "body")
    more = f" (and {len(detail) - 1} more)" if len(detail) > 1 else ""
    return f"{where}: {first['msg']}{more}" if where else f"{first['msg']}{more}"


# Routes whose original API answers every invalid request with 400 (CrystaLLM).
STATUS_400_PREFIXES = ("/v1/generate",)


async def handle_api_error(request: Request, error: APIError) -> JSONResponse:
    if error.status_code >= 500 and error.__cause__ is not None:  # the body says it in user terms; the log says why
        log.warning("%s %s: %d %s (%s: %s)", request.method, request.url.path, error.status_code, error.message,
                    type(error.__cause__).__name__, error.__cause__)
    return JSONResponse(envelope(error.message, error.detail), status_code=error.status_code, headers=error.headers)


async def handle_validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    detail = _clean_detail(list(error.errors()))
    if any(d["type"] == "json_invalid" for d in detail):
        return JSONResponse(envelope("malformed JSON body", detail), status_code=400)
    return JSONResponse(envelope(_summary(detail), detail), status_code=_invalid_status(request))


async def handle_http_exception(request: Request, error: StarletteHTTPException) -> JSONResponse:
    message = error.detail if isinstance(error.detail, str) else json.dumps(error.detail)
    if error.status_code == 404:
        message = f"no route {request.method} {request.url.path}"
    detail = [{"loc": ["path"], "msg": message, "type": f"http_{error.status_code}"}]
    return JSONResponse(envelope(message, detail), status_code=error.status_code, headers=getattr(error, "headers", None))


async def handle_unexpected(request: Request, error: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    detail = [{"loc": [], "msg": "internal server error", "type": "server_error"}]
    return JSONResponse(envelope("internal server error", detail), status_code=500)


def _invalid_status(request: Request) -> int:
    return 400 if request.url.path.startswith(STATUS_400_PREFIXES) else 422


async def handle_invalid_input(request: Request, error: InvalidInput) -> JSONResponse:
    """A model's refusal of a request's input, raised in the gateway (the contract's checks)."""
    loc = ["body", error.field] if error.field else []
    detail = [{"loc": loc, "msg": str(error), "type": "value_error"}]
    return JSONResponse(envelope(str(error), detail), status_code=_invalid_status(request))


async def handle_triton_rejected(request: Request, error: TritonRejected) -> JSONResponse:
    """A model's refusal of a request's input, answered by Triton (its InvalidInput, passed on)."""
    detail = [{"loc": [], "msg": str(error), "type": "value_error"}]
    return JSONResponse(envelope(str(error), detail), status_code=_invalid_status(request))


def backend_title(triton_model: str) -> str:
    """How a message names a Triton model: the force field, the generator, the alignn model."""
    return {"forcefield": "the force field", "generator": "the generator"}.get(triton_model,
                                                                               f"the {triton_model} model")


async def handle_triton_unavailable(request: Request, error: TritonUnavailable) -> JSONResponse:
    failure = NotReady(f"backend unavailable: {backend_title(error.model)} is not answering; retry later")
    log.warning("%s %s: 503 (%s)", request.method, request.url.path, error)  # the body says it in user terms
    return await handle_api_error(request, failure)


async def handle_queue_full(request: Request, error: QueueFull) -> JSONResponse:
    return await handle_api_error(request, Saturated(str(error), error.retry_after_s))


def install_error_handlers(app: FastAPI) -> None:
    """Every handler, registered once: routes raise the condition and never translate it themselves."""
    app.add_exception_handler(APIError, handle_api_error)
    app.add_exception_handler(InvalidInput, handle_invalid_input)
    app.add_exception_handler(TritonRejected, handle_triton_rejected)
    app.add_exception_handler(TritonUnavailable, handle_triton_unavailable)
    app.add_exception_handler(QueueFull, handle_queue_full)
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, handle_http_exception)
    app.add_exception_handler(Exception, handle_unexpected)
