"""Authentication and roles of the API.

Every request but ``/health`` and the dashboard carries ``Authorization: Bearer gs_...``, read by FastAPI's
:class:`~fastapi.security.HTTPBearer` (which also declares the scheme in the OpenAPI document of every route
that needs it). The secret is checked with :meth:`Store.authenticate` (only its SHA-256 digest is stored);
a failure is logged on the ``gridshift.auth`` logger without the secret and answered 401 with
``WWW-Authenticate``. Each token has a token bucket (``rate_per_s``, ``burst``): an empty bucket answers 429
with ``Retry-After``. A token whose role a route does not admit is answered 403.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from starlette.concurrency import run_in_threadpool

from gridshift.service.db import StateError
from gridshift.service.http_errors import ApiError
from gridshift.service.limits import TokenBucket, retry_after
from gridshift.service.settings import ApiSettings
from gridshift.service.store import Principal
from gridshift.service.tables import ROLES

log = logging.getLogger("gridshift.auth")

ROLE_NAMES = ROLES
MAX_SECRET_CHARS = 512

bearer = HTTPBearer(scheme_name="bearer", bearerFormat="gs_<token id>_<secret>", auto_error=False,
                    description="An API token made by an operator (POST /api/v1/tokens) or `gridshift token create`.")
"""The bearer scheme: parses ``Authorization`` and documents the scheme; errors are answered by
:class:`Authenticator` (``auto_error=False``), with this API's error body."""


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
            return ApiError(429, "too many failed authentications; retry later", headers=retry_after(wait))
        challenge = 'Bearer realm="gridshift"' + (', error="invalid_token"' if token_id is not None else "")
        return ApiError(401, f"authentication required: {reason}", headers={"WWW-Authenticate": challenge})

    async def authenticate(self, request: Request, credentials: HTTPAuthorizationCredentials | None) -> Principal:
        """The caller's principal from the bearer ``credentials`` (None: no usable ``Authorization`` header),
        or raise 401 (bad or missing token) / 429 (rate limit). The database is asked (in the thread pool)
        only when the token is not cached."""
        if credentials is None:
            if not request.headers.get("authorization"):
                raise self._fail(request, "no Authorization header (expected 'Bearer gs_...')", None)
            raise self._fail(request, "Authorization header is not 'Bearer <token>'", None)
        secret = credentials.credentials.strip()
        parts = secret.split("_", 2)
        token_id = parts[1][:32] if len(parts) == 3 and parts[0] == "gs" else "?"
        principal = None
        if len(secret) <= MAX_SECRET_CHARS:
            principal = self.cached(secret) or await run_in_threadpool(self.lookup, secret)
        if principal is None:
            raise self._fail(request, "unknown or revoked token", token_id)
        wait = self.buckets.take(principal.token_id or "")
        if wait > 0:
            raise ApiError(429, f"rate limit of {self.settings.rate_per_s:g} requests/s "
                                f"(burst {self.settings.burst}) exceeded; retry later", headers=retry_after(wait))
        request.state.principal = principal
        return principal


async def current_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """FastAPI dependency: the authenticated caller."""
    return await request.app.state.auth.authenticate(request, credentials)


def require(*roles: str) -> Callable[..., Awaitable[Principal]]:
    """A FastAPI dependency admitting only ``roles``; others get 403."""
    bad = [r for r in roles if r not in ROLE_NAMES]
    if bad:
        raise ValueError(f"unknown role '{bad[0]}'")
    allowed = frozenset(roles)

    async def dependency(request: Request, principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if principal.role not in allowed:
            raise ApiError(403, f"role '{principal.role}' may not use {request.method} "
                                f"{request.scope.get('route').path if request.scope.get('route') else request.url.path} "
                                f"(allowed: {', '.join(sorted(allowed))})")
        return principal

    dependency.__name__ = f"require_{'_'.join(sorted(allowed))}"
    return dependency


def is_operator(request: Request, db_reachable: bool) -> bool:
    """Whether the request carries a valid operator token (no failure logging, no rate limit: health only)."""
    scheme, secret = get_authorization_scheme_param(request.headers.get("authorization", "").strip())
    if scheme.lower() != "bearer" or not secret or len(secret) > MAX_SECRET_CHARS:
        return False
    auth: Authenticator = request.app.state.auth
    principal = auth.cached(secret.strip())
    if principal is None and db_reachable:
        with contextlib.suppress(StateError):
            principal = auth.lookup(secret.strip())
    return principal is not None and principal.role == "operator"
