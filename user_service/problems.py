"""Every error leaves the gateway as application/problem+json (RFC 9457), mapped here once."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pymongo.errors import ConnectionFailure
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match

from service_runtime.errors import CommandRefused, ServiceUnavailable
from user_service.domain import Forbidden
from user_service.edge import SECURITY_HEADERS

log = logging.getLogger(__name__)

RPC_STATUS = {
    "not_found": 404,
    "conflict": 409,
    "invalid": 422,
    "forbidden": 403,
    "too_large": 413,
    "unsupported_media_type": 415,
    "unavailable": 503,
    "internal": 500,
}


def problem(status: int, detail: str, *, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type="application/problem+json", headers=headers)


def _allowed_methods(app: FastAPI, request: Request) -> list[str]:
    methods: set[str] = set()
    for route in app.router.routes:
        if isinstance(route, BaseRoute) and route.matches(request.scope)[0] is Match.PARTIAL:
            methods |= getattr(route, "methods", None) or set()
    return sorted(methods)


def field_error(field: str, message: str) -> JSONResponse:
    return problem(422, f"{field}: {message}", errors=[{"field": field, "message": message}])


class FieldInvalid(Exception):
    """One field of the request is at fault: a 422 naming it from the API, a message beside it on a page."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def install(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            # Starlette names the methods of the first route on the path only; RFC 9110 wants them all.
            headers = {**(headers or {}), "Allow": ", ".join(_allowed_methods(app, request))}
        return problem(exc.status_code, str(exc.detail), headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"][1:]) or str(e["loc"][0]), "message": e["msg"]}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return problem(422, detail, errors=errors)

    @app.exception_handler(CommandRefused)
    async def refused(request: Request, exc: CommandRefused) -> JSONResponse:
        status = RPC_STATUS[exc.code]
        if status == 422 and exc.errors:
            errors = [{"field": e.field, "message": e.message} for e in exc.errors]
            return problem(422, exc.detail, errors=errors)
        if status == 422 and exc.field:
            return field_error(exc.field, exc.detail)
        if status >= 500:
            # A back-end service's own account of its failure names services and queues: log it only.
            log.warning("%s %s refused: %s %s", request.method, request.url.path, exc.code, exc.detail)
            retry = {"Retry-After": "5"} if status == 503 else None
            return problem(status, "a back-end service could not carry out the request", headers=retry)
        return problem(status, exc.detail)

    @app.exception_handler(ServiceUnavailable)
    async def unavailable(request: Request, exc: ServiceUnavailable) -> JSONResponse:
        # The cause tells a request nobody answered in time from one the broker refused (a nack).
        cause = exc.__cause__
        if cause is None:
            log.warning("%s", exc)
        else:
            log.warning("%s (%s: %s)", exc, type(cause).__name__, cause)
        return problem(
            503, "a back-end service is not answering; try again shortly", headers={"Retry-After": "5"}
        )

    @app.exception_handler(ConnectionFailure)
    async def store_away(request: Request, exc: ConnectionFailure) -> JSONResponse:
        # The gateway's own store is restarting: a 503 the client may retry, never a 500.
        log.warning(
            "user store unreachable on %s %s: %s", request.method, request.url.path, type(exc).__name__
        )
        return problem(
            503, "the service is briefly unavailable; try again shortly", headers={"Retry-After": "5"}
        )

    @app.exception_handler(FieldInvalid)
    async def field_invalid(request: Request, exc: FieldInvalid) -> JSONResponse:
        return field_error(exc.field, exc.message)

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> JSONResponse:
        return problem(403, str(exc))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Never a stack trace to the client: it goes to the log, the client gets a plain 500.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        # Answered outside every middleware, so the edge's headers are added here.
        return problem(500, "internal error", headers=SECURITY_HEADERS)


# What the OpenAPI document says any operation may answer besides its success: a problem+json body.
# Schemathesis (tests/e2e/test_schemathesis.py) holds every answer to it.
_PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}
_WHY = {
    400: "the request is malformed",
    401: "not signed in, or the token is invalid or expired",
    403: "the role may not do this",
    404: "no such record, or another patient's",
    409: "the record's state does not allow this now",
    413: "the request body is too large",
    422: "invalid input; `errors` names each field at fault",
    429: "too many attempts; see Retry-After",
    500: "an internal error (logged; no details are given)",
    503: "a back-end service or the store is briefly away; see Retry-After",
}
RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"description": why, "content": {"application/problem+json": {"schema": _PROBLEM_SCHEMA}}}
    for status, why in _WHY.items()
}
