"""The inference routes' hot path: ``POST /v1/chat/completions``, ``/v1/completions`` and ``/v1/embeddings``
answered by one small ASGI layer instead of FastAPI's router and dependency injection (about a third of the
gateway's CPU per proxied request, measured with py-spy; see benchmarks/RESULTS.md).

It takes only the ordinary case: a JSON body that validates, from a caller whose token is in the
authenticator's cache and under its rate limit. Anything else — no or unknown token, a body that does not
validate, another content type — goes to the FastAPI routes with the body replayed, so every error answer
(and the OpenAPI document) stays theirs. What both paths share is one function each: :func:`make_call` (the
SLO class, the model, the tenant's quota) and the forwarder; the error objects are
:mod:`gridshift.service.gateway.errors`'."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gridshift.service.auth import MAX_SECRET_CHARS, Authenticator
from gridshift.service.gateway.defer import parse_deadline
from gridshift.service.gateway.errors import (
    GatewayError,
    gateway_error_response,
    http_error_response,
    internal_error_response,
)
from gridshift.service.gateway.proxy import Call, Forwarder
from gridshift.service.gateway.schemas import ChatRequest, CompletionRequest, EmbeddingRequest
from gridshift.service.store import Principal

ROUTES: dict[str, tuple[str, type[BaseModel]]] = {
    "/v1/chat/completions": ("chat", ChatRequest),
    "/v1/completions": ("completions", CompletionRequest),
    "/v1/embeddings": ("embeddings", EmbeddingRequest),
}


def tenant_of(p: Principal) -> str:
    """The account a caller's usage is charged to: a tenant token's tenant, else the operator token."""
    return p.tenant if p.role == "tenant" and p.tenant else f"operator:{p.token_id or 'system'}"


def make_call(state: Any, p: Principal, endpoint: str, body: dict[str, Any], slo: str | None,
              region: str | None, deadline: str | None = None) -> Call:
    """The :class:`Call` of a validated request body from caller ``p`` (``state``: the app's state; ``deadline``:
    the ``X-GridShift-Deadline-S`` header of a deferrable request); raises the 4xx of an unknown SLO class or
    model or a bad deadline and the 429 of a tenant over quota."""
    fwd: Forwarder = state.forwarder
    cfg = fwd.config
    tenant = tenant_of(p)
    spec = cfg.tenants.get(tenant)
    if endpoint == "embeddings":
        body.pop("stream", None)
    tier = body.pop("service_tier", None)
    slo_class = slo or ("offline" if tier == "flex" else None) or (spec.slo if spec else None) or "interactive"
    if slo_class not in cfg.slo:
        raise GatewayError(400, f"unknown SLO class '{slo_class}' (use interactive or offline)",
                           param="X-GridShift-SLO", code="invalid_value")
    deadline_s = parse_deadline(deadline, slo_class)
    model = body["model"]
    served = fwd.registry.models()
    if model not in served:
        raise GatewayError(404, f"model '{model}' is not served here; models: {', '.join(served) or 'none'}",
                           param="model", code="model_not_found", extra={"models": served})
    state.quotas.admit(tenant)
    return Call(tenant=tenant, model=model, endpoint=endpoint, slo_class=slo_class,
                region=region or (spec.region if spec else None) or cfg.default_region,
                residency=spec.residency if spec else None, body=body, stream=bool(body.get("stream")),
                deadline_s=deadline_s)


class HotPath:
    """ASGI middleware: the ordinary inference request answered directly (see the module's text); ``counts``
    (shared with ``GET /gateway/health``): ``hot``, the requests it answered, ``routes``, those it handed to the
    FastAPI routes."""

    def __init__(self, app: ASGIApp, counts: dict[str, int]) -> None:
        self.app = app
        self.counts = counts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = ROUTES.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        parts: list[bytes] = []
        while True:  # the body is bounded: the body-limit layer outside this one has read it already
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            parts.append(message.get("body", b""))
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        state = scope["app"].state
        ready = self._prepare(scope, state.auth, route, b"".join(parts))
        if ready is None:
            self.counts["routes"] += 1
            await self.app(scope, replay, send)
            return
        self.counts["hot"] += 1
        principal, data, slo, region, deadline = ready
        gone = Disconnected(receive)
        try:
            call = make_call(state, principal, route[0], data, slo, region, deadline)
            response = await state.forwarder.forward(call, gone if call.deadline_s is not None else None)
        except GatewayError as e:
            response = gateway_error_response(e)
        except StarletteHTTPException as e:
            response = http_error_response(e)
        except Exception as e:  # noqa: BLE001 - answered as the routes' handler answers it: a 500 error object
            response = internal_error_response(e)
        finally:
            gone.stop()
        await response(scope, replay, send)

    @staticmethod
    def _prepare(scope: Scope, auth: Authenticator, route: tuple[str, type[BaseModel]], body: bytes
                 ) -> tuple[Principal, dict[str, Any], str | None, str | None, str | None] | None:
        """(caller, body, SLO, region and deadline headers) when this layer can answer the request, else None."""
        secret = content_type = slo = region = deadline = None
        for name, value in scope["headers"]:
            if name == b"authorization" and secret is None:
                secret = value
            elif name == b"content-type" and content_type is None:
                content_type = value
            elif name == b"x-gridshift-slo" and slo is None:
                slo = value.decode("latin-1")
            elif name == b"x-gridshift-region" and region is None:
                region = value.decode("latin-1")
            elif name == b"x-gridshift-deadline-s" and deadline is None:
                deadline = value.decode("latin-1")
        if secret is None or content_type is None or content_type.split(b";")[0].strip() != b"application/json":
            return None
        scheme, _, token = secret.decode("latin-1").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or len(token) > MAX_SECRET_CHARS:
            return None
        principal = auth.cached(token)
        if principal is None or principal.role == "grid":
            return None
        try:
            data = route[1].model_validate_json(body).model_dump(exclude_unset=True)
        except ValidationError:
            return None
        if auth.buckets.take(principal.token_id or "") > 0:  # over the rate: the routes answer the 429
            return None
        return principal, data, slo, region, deadline


class Disconnected:
    """Whether the caller hung up (its body is read: the next ASGI message can only be a disconnect); for a
    request held by the gateway. :meth:`stop` before the response is sent."""

    def __init__(self, receive: Receive) -> None:
        self.receive = receive
        self.task: asyncio.Future[Message] | None = None

    async def __call__(self) -> bool:
        if self.task is None:
            self.task = asyncio.ensure_future(self.receive())
        await asyncio.sleep(0)
        return self.task.done() and not self.task.cancelled() and self.task.result()["type"] == "http.disconnect"

    def stop(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
