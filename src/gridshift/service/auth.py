"""Authentication, roles, rate and size limits, and the mapping of errors to HTTP answers for the API.

Every request but ``/health`` and the dashboard carries ``Authorization: Bearer gs_...``. The secret is
checked with :meth:`Store.authenticate` (only its SHA-256 digest is stored); a failure is logged on the
``gridshift.auth`` logger without the secret and answered 401 with ``WWW-Authenticate``. Each token has a
token bucket (``rate_per_s``, ``burst``): an empty bucket answers 429 with ``Retry-After``. Bodies larger
than ``max_body_bytes`` are refused with 413, whether announced by ``Content-Length`` or sent chunked.

Every error answer has the body ``{"detail": "<one line>", "field": "<field or null>"}``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gridshift.errors import GridShiftError
from gridshift.service.db import ConflictError, DatabaseUnavailable, StateError
from gridshift.service.tables import ROLES
from gridshift.service.store import InvalidSpec, NotFound, PermissionDenied, Principal

log = logging.getLogger("gridshift.auth")
errors_log = logging.getLogger("gridshift.api")

ROLE_NAMES = ROLES
DB_RETRY_AFTER_S = 5


@dataclass
class ApiSettings:
    """Limits and options of the API.

    ``rate_per_s`` and ``burst`` set each token's bucket; ``auth_failure_rate_per_s`` and
    ``auth_failure_burst`` limit failed authentications per client address. ``auth_cache_s`` keeps a
    checked token for that long (0 = check every request; a token revoked through the API is dropped at
    once, one revoked elsewhere within ``auth_cache_s``). ``pull_interval_s`` (None = off) pulls
    ``pull_zones``' registry signals on a clock, for ``[now - pull_interval_s, now + pull_horizon_s)``,
    reading the data ``pull_shift_s`` seconds earlier (to replay a past year as the present).
    ``signal_files_dir`` (None = off) lets an operator pull signals from CSV files in that directory.
    """

    max_body_bytes: int = 1 << 20
    rate_per_s: float = 50.0
    burst: int = 100
    auth_failure_rate_per_s: float = 1.0
    auth_failure_burst: int = 20
    auth_cache_s: float = 2.0
    public_metrics: bool = False
    pull_interval_s: float | None = None
    pull_zones: tuple[str, ...] = ()
    pull_signals: tuple[str, ...] = ("carbon_g_per_kwh",)
    pull_horizon_s: float = 48 * 3600.0
    pull_shift_s: float = 0.0
    signal_files_dir: str | None = None

    def __post_init__(self) -> None:
        if self.max_body_bytes < 1:
            raise ValueError("max_body_bytes must be >= 1")
        if not (self.rate_per_s > 0) or self.burst < 1:
            raise ValueError("rate_per_s must be > 0 and burst >= 1")
        if self.pull_interval_s is not None and not (self.pull_interval_s > 0):
            raise ValueError("pull_interval_s must be > 0 (or None)")


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


class BodyTooLarge(ApiError):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes", field="body")


# ------------------------------------------------------------------------------------------ rate limits


class TokenBucket:
    """Token buckets per key (thread-safe): ``rate_per_s`` refill, at most ``burst`` stored."""

    MAX_KEYS = 100_000

    def __init__(self, rate_per_s: float, burst: int) -> None:
        self.rate_per_s = float(rate_per_s)
        self.burst = float(burst)
        self._state: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, now: float | None = None) -> float:
        """Take one token for ``key``: 0.0 if allowed, else the seconds until one is available."""
        now = time.monotonic() if now is None else now
        with self._lock:
            level, last = self._state.get(key, (self.burst, now))
            level = min(self.burst, level + (now - last) * self.rate_per_s)
            if level >= 1.0:
                self._state[key] = (level - 1.0, now)
                wait = 0.0
            else:
                self._state[key] = (level, now)
                wait = (1.0 - level) / self.rate_per_s
            if len(self._state) > self.MAX_KEYS:  # forget full buckets (they behave like new ones)
                full = [k for k, (lv, t) in self._state.items() if lv + (now - t) * self.rate_per_s >= self.burst]
                for k in full:
                    del self._state[k]
        return wait


def _retry_after(wait_s: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(wait_s)))}


# ------------------------------------------------------------------------------------------- tokens


class Authenticator:
    """Checks bearer tokens against the store, with a short cache and the rate limits."""

    def __init__(self, store: Any, settings: ApiSettings) -> None:
        self.store = store
        self.settings = settings
        self.buckets = TokenBucket(settings.rate_per_s, settings.burst)
        self.failures = TokenBucket(settings.auth_failure_rate_per_s, settings.auth_failure_burst)
        self._cache: dict[str, tuple[Principal, float]] = {}
        self._lock = threading.Lock()

    def forget(self, token_id: str) -> None:
        """Drop a token from the cache (after it was revoked)."""
        with self._lock:
            for k in [k for k, (p, _) in self._cache.items() if p.token_id == token_id]:
                del self._cache[k]

    def _cache_key(self, secret: str) -> str:
        return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()

    def cached(self, secret: str) -> Principal | None:
        """The principal of a token checked less than ``auth_cache_s`` ago (no database access)."""
        if self.settings.auth_cache_s <= 0:
            return None
        with self._lock:
            hit = self._cache.get(self._cache_key(secret))
        return hit[0] if hit is not None and hit[1] > time.monotonic() else None

    def lookup(self, secret: str) -> Principal | None:
        """Check ``secret`` against the store (blocking) and cache the answer."""
        principal = self.store.authenticate(secret)
        ttl = self.settings.auth_cache_s
        if ttl > 0:
            key, now = self._cache_key(secret), time.monotonic()
            with self._lock:
                if principal is None:
                    self._cache.pop(key, None)
                else:
                    if len(self._cache) > 10_000:
                        self._cache = {k: v for k, v in self._cache.items() if v[1] > now}
                    self._cache[key] = (principal, now + ttl)
        return principal

    def _fail(self, request: Request, reason: str, token_id: str | None) -> ApiError:
        client = request.client.host if request.client else "unknown"
        log.warning("authentication failed: %s (token id %s, client %s, %s %s)", reason, token_id or "-",
                    client, request.method, request.url.path)
        wait = self.failures.take(f"ip:{client}")
        if wait > 0:
            return ApiError(429, "too many failed authentications; retry later", headers=_retry_after(wait))
        challenge = 'Bearer realm="gridshift"' + (', error="invalid_token"' if token_id is not None else "")
        return ApiError(401, f"authentication required: {reason}", headers={"WWW-Authenticate": challenge})

    async def authenticate(self, request: Request) -> Principal:
        """The caller's principal, or raise 401 (bad or missing token) / 429 (rate limit). The database is
        asked (in the thread pool) only when the token is not cached."""
        header = request.headers.get("authorization")
        if not header:
            raise self._fail(request, "no Authorization header (expected 'Bearer gs_...')", None)
        scheme, _, secret = header.strip().partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret:
            raise self._fail(request, "Authorization header is not 'Bearer <token>'", None)
        parts = secret.split("_", 2)
        token_id = parts[1][:32] if len(parts) == 3 and parts[0] == "gs" else "?"
        principal = None
        if len(secret) <= 512:
            principal = self.cached(secret) or await run_in_threadpool(self.lookup, secret)
        if principal is None:
            raise self._fail(request, "unknown or revoked token", token_id)
        wait = self.buckets.take(principal.token_id or "")
        if wait > 0:
            raise ApiError(429, f"rate limit of {self.settings.rate_per_s:g} requests/s "
                                f"(burst {self.settings.burst}) exceeded; retry later", headers=_retry_after(wait))
        request.state.principal = principal
        return principal


BEARER_SCHEME = {"type": "http", "scheme": "bearer", "bearerFormat": "gs_<token id>_<secret>",
                 "description": "An API token made by an operator (POST /api/v1/tokens) or "
                                "`gridshift token create`."}


def document_security(app: FastAPI, public: set[str]) -> None:
    """Declare the bearer scheme in the app's OpenAPI document, on every operation but ``public`` paths."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = build()
            doc.setdefault("components", {}).setdefault("securitySchemes", {})["bearer"] = BEARER_SCHEME
            for path, ops in doc.get("paths", {}).items():
                if path not in public:
                    for op in ops.values():
                        op["security"] = [{"bearer": []}]
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


async def current_principal(request: Request) -> Principal:
    """FastAPI dependency: the authenticated caller."""
    return await request.app.state.auth.authenticate(request)


def require(*roles: str) -> Callable[[Request], Principal]:
    """A FastAPI dependency admitting only ``roles``; others get 403."""
    bad = [r for r in roles if r not in ROLE_NAMES]
    if bad:
        raise ValueError(f"unknown role '{bad[0]}'")
    allowed = frozenset(roles)

    async def dependency(request: Request) -> Principal:
        principal = await current_principal(request)
        if principal.role not in allowed:
            raise ApiError(403, f"role '{principal.role}' may not use {request.method} "
                                f"{request.scope.get('route').path if request.scope.get('route') else request.url.path} "
                                f"(allowed: {', '.join(sorted(allowed))})")
        return principal

    dependency.__name__ = f"require_{'_'.join(sorted(allowed))}"
    return dependency


# ------------------------------------------------------------------------------------------ body limit


class BodyLimitMiddleware:
    """Refuses request bodies over ``max_body_bytes`` with 413 (Content-Length checked up front, chunked
    bodies counted as they arrive)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = int(max_body_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    n = int(value)
                except ValueError:
                    await _send_error(send, 400, "Content-Length is not an integer", "Content-Length")
                    return
                if n > limit:
                    await _send_error(send, 413, f"request body larger than {limit} bytes", "body")
                    return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if started:
                raise
            await _send_error(send, 413, f"request body larger than {limit} bytes", "body")


async def _send_error(send: Send, status: int, detail: str, field: str | None) -> None:
    body = json.dumps({"detail": detail, "field": field}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


# ----------------------------------------------------------------------------------------- error answers


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
        return error_response(status, str(exc), exc.field, headers)

    @app.exception_handler(PoolTimeout)
    async def _pool(request: Request, exc: PoolTimeout) -> JSONResponse:
        errors_log.warning("%s %s: no database connection free", request.method, request.url.path)
        return error_response(503, "database busy: no connection free in the pool; retry later",
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
