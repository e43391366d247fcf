"""OpenAI-style error objects: every error answer of the gateway is
``{"error": {"message", "type", "param", "code"}}`` (the shape the official clients parse), with
``Retry-After`` on 429 and 503 where a wait helps."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gridshift.service.http_errors import ApiError

log = logging.getLogger("gridshift.gateway")

TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
         404: "invalid_request_error", 405: "invalid_request_error", 413: "invalid_request_error",
         422: "invalid_request_error", 429: "rate_limit_error", 500: "server_error", 502: "server_error",
         503: "service_unavailable", 504: "server_error"}


class GatewayError(Exception):
    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 headers: Mapping[str, str] | None = None, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, " ".join(message.split()), param, code
        self.headers = dict(headers or {})
        self.extra = extra or {}


def error_body(status: int, message: str, param: str | None = None, code: str | None = None,
               **extra: Any) -> dict[str, Any]:
    return {"error": {"message": message, "type": TYPES.get(status, "server_error"), "param": param,
                      "code": code, **extra}}


def error_json(status: int, message: str, param: str | None = None, code: str | None = None,
               headers: Mapping[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse(error_body(status, message, param, code, **extra), status_code=status,
                        headers=dict(headers) if headers else None)


def sse_error(message: str, code: str = "backend_error") -> bytes:
    """An error event inside a stream (the openai client raises it as an APIError)."""
    return b"data: " + json.dumps(error_body(502, message, None, code)).encode() + b"\n\n"


def _param(loc: tuple[Any, ...]) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or None


def gateway_error_response(e: GatewayError) -> JSONResponse:
    return error_json(e.status, e.message, e.param, e.code, e.headers, **e.extra)


def http_error_response(e: StarletteHTTPException) -> JSONResponse:
    field = getattr(e, "field", None) if isinstance(e, ApiError) else None
    code = {401: "invalid_api_key", 429: "rate_limit_exceeded", 404: "not_found"}.get(e.status_code)
    return error_json(e.status_code, str(e.detail), field, code, e.headers)


def internal_error_response(e: Exception) -> JSONResponse:
    log.exception("unexpected error", exc_info=e)
    return error_json(500, f"internal error ({type(e).__name__})", None, "internal_error")


def install_gateway_errors(app: FastAPI) -> None:
    @app.exception_handler(GatewayError)
    async def _gateway(_: Request, e: GatewayError) -> JSONResponse:
        return gateway_error_response(e)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0] if e.errors() else {"loc": (), "msg": "invalid request"}
        param = _param(tuple(first.get("loc", ())))
        msg = f"{param}: {first.get('msg')}" if param else str(first.get("msg"))
        return error_json(400, msg, param, "invalid_value")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, e: StarletteHTTPException) -> JSONResponse:
        return http_error_response(e)

    @app.exception_handler(Exception)
    async def _other(_: Request, e: Exception) -> JSONResponse:
        return internal_error_response(e)
