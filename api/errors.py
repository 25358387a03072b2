"""One place that turns every failure into the JSON error body `{code, message, details?}`.

LoyaltyError subclasses render with their own code and status; request validation becomes 422
`validation_error` with the field errors; Starlette's HTTP errors (unknown route, wrong method)
keep their status; anything else is a 500 whose details stay in the log, never in the response.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from loyalty.core.errors import LoyaltyError

log = logging.getLogger("loyalty.api")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


class ErrorBody(BaseModel):
    """Every error response: a stable machine code, a human message, optional details."""

    code: str = Field(examples=["wallet_not_found"])
    message: str
    details: dict[str, Any] | None = None


_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})

# Every endpoint behind a bearer token can answer these.
AUTHENTICATED_ERRORS = (401, 403, 422)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """A route's `responses=`: ErrorBody for the authenticated errors and `statuses`."""
    return {status: {"model": ErrorBody} for status in (*AUTHENTICATED_ERRORS, *statuses)}


class ServiceUnavailable(LoyaltyError):
    """A dependency of the request (database, Temporal, the identity provider) is unreachable."""

    code = "service_unavailable"
    status_code = 503


def _render(status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None) -> Any:
    return JSONResponse(status_code=status, content=body, headers=headers)


async def _loyalty_error(request: Request, exc: Exception) -> Any:
    assert isinstance(exc, LoyaltyError)
    # An expected refusal: one line at info (5xx: a dependency is down, at warning).
    log.log(
        logging.WARNING if exc.status_code >= 500 else logging.INFO,
        "refused %s %s: %s %s: %s",
        request.method,
        request.url.path,
        exc.status_code,
        exc.code,
        exc.message,
    )
    # Auth errors carry a WWW-Authenticate header (api.auth sets `response_headers`).
    headers = getattr(exc, "response_headers", None)
    return _render(exc.status_code, exc.to_dict(), headers)


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Only location, message and type: echoing `input` would reflect oversize values back.
    return [
        {"loc": list(err.get("loc", ())), "message": err.get("msg", ""), "type": err.get("type")}
        for err in exc.errors()
    ]


async def _validation_error(request: Request, exc: Exception) -> Any:
    assert isinstance(exc, RequestValidationError)
    body = {
        "code": "validation_error",
        "message": "the request is malformed",
        "details": {"errors": _field_errors(exc)},
    }
    return _render(422, body)


async def _http_error(request: Request, exc: Exception) -> Any:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
        # FastAPI answers 422 json_invalid for a body that is not JSON, but a bare 400 for one
        # that is not even text; both are a malformed body, so both get the documented 422.
        error = {"loc": ["body"], "message": "the body is not UTF-8 JSON", "type": "json_invalid"}
        body = {
            "code": "validation_error",
            "message": "the request is malformed",
            "details": {"errors": [error]},
        }
        return _render(422, body)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    headers = exc.headers
    if exc.status_code == 405:
        headers = {**(headers or {}), **_allow(request)}
    return _render(exc.status_code, {"code": code, "message": message}, headers)


def _allow(request: Request) -> dict[str, str]:
    """`Allow` with every method the API documents at the path of the route that answered 405.
    Starlette names only that route's methods, though other routes may serve the same path with
    other methods (GET and PUT /wallets/{userId} are two routes)."""
    path = getattr(request.scope.get("route"), "path", None)
    operations = request.app.openapi().get("paths", {}).get(path, {})
    methods = sorted(method.upper() for method in operations if method in _METHODS)
    return {"Allow": ", ".join(methods)} if methods else {}


async def unexpected_error(request: Request, exc: Exception) -> Any:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _render(500, {"code": "internal_error", "message": "internal server error"})


def install(app: FastAPI) -> None:
    app.add_exception_handler(LoyaltyError, _loyalty_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, unexpected_error)
