"""Errors as HTTP answers: every error answer has the body ``{"detail": "<one line>", "field": "<field or
null>"}``; store, validation and GridShift errors are mapped to status codes here."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from gridshift.errors import GridShiftError
from gridshift.service.db import ConflictError, DatabaseBusy, DatabaseUnavailable, StateError
from gridshift.service.store import InvalidSpec, NotFound, PermissionDenied

errors_log = logging.getLogger("gridshift.api")

DB_RETRY_AFTER_S = 5


class ErrorResponse(BaseModel):
    """The body of every error answer."""

    detail: str
    field: str | None = None


class ApiError(StarletteHTTPException):
    """An HTTP error answer with one-line ``detail``, the field it concerns and extra headers."""

    def __init__(self, status_code: int, detail: str, *, field: str | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status_code=status_code, detail=" ".join(str(detail).split()),
                         headers=dict(headers) if headers else None)
        self.field = field


def error_response(status: int, detail: str, field: str | None = None,
                   headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": " ".join(str(detail).split()), "field": field}, status_code=status,
                        headers=dict(headers) if headers else None)


_CONTAINERS = {"body", "query", "path", "header", "cookie"}
SERVER_SET_FIELDS = {"job_id": "set by the service (a new UUID), leave it out",
                     "arrival": "set by the service (the submission time), leave it out"}


def _validation_detail(exc: RequestValidationError) -> tuple[str, str | None]:
    errs = exc.errors()
    if not errs:
        return "invalid request", None
    e = errs[0]
    loc = [str(x) for x in e.get("loc", ())]
    if loc and loc[0] in _CONTAINERS:
        where, loc = loc[0], loc[1:]
    else:
        where = "body"
    etype = e.get("type", "")
    if etype == "json_invalid":
        cause = (e.get("ctx") or {}).get("error", "")
        return f"request body is not valid JSON: {cause}".strip(), "body"
    if etype == "missing" and not loc:
        return f"request {where} is required", where
    field = ".".join(loc) if loc else where
    msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
    if etype == "extra_forbidden":
        msg = SERVER_SET_FIELDS.get(field, "unknown field")
    return f"field '{field}': {msg}", field


DB_UNAVAILABLE = "database unavailable; retry later"
DB_BUSY = "database busy: no connection free in the pool; retry later"


def install_error_handlers(app: FastAPI) -> None:
    """Map store and validation errors to status codes, with one clear line."""

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        return error_response(exc.status_code, detail, getattr(exc, "field", None), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail, field = _validation_detail(exc)
        return error_response(422, detail, field)

    @app.exception_handler(GridShiftError)
    async def _state(request: Request, exc: GridShiftError) -> JSONResponse:
        status, headers = status_of(exc)
        if status >= 500 and status != 503:
            errors_log.error("%s %s failed: %s", request.method, request.url.path, exc)
        elif status == 503:
            errors_log.warning("%s %s: %s", request.method, request.url.path, exc)
            # the cause names the database (URL, user, host, port): the log has it, the caller gets the gist
            return error_response(503, DB_BUSY if isinstance(exc, DatabaseBusy) else DB_UNAVAILABLE, None, headers)
        return error_response(status, str(exc), exc.field, headers)

    @app.exception_handler(PoolTimeout)
    async def _pool(request: Request, exc: PoolTimeout) -> JSONResponse:
        errors_log.warning("%s %s: no database connection free", request.method, request.url.path)
        return error_response(503, DB_BUSY,
                              headers={"Retry-After": str(DB_RETRY_AFTER_S)})

    @app.exception_handler(OverflowError)
    async def _overflow(request: Request, exc: OverflowError) -> JSONResponse:
        return error_response(422, f"value out of range: {exc}")


def status_of(exc: GridShiftError) -> tuple[int, dict[str, str] | None]:
    """HTTP status (and headers) for a GridShift error."""
    if isinstance(exc, NotFound):
        return 404, None
    if isinstance(exc, PermissionDenied):
        return 403, None
    if isinstance(exc, InvalidSpec):
        return 422, None
    if isinstance(exc, ConflictError):
        return 409, None
    if isinstance(exc, DatabaseUnavailable):
        return 503, {"Retry-After": str(DB_RETRY_AFTER_S)}
    if isinstance(exc, StateError):
        return 500, None
    return 422, None  # data, catalog, scenario errors: the request named something that does not fit
