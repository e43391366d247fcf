"""The gateway's FastAPI app (``create_gateway_app``): the OpenAI-compatible routes under ``/v1``, the
operator's and the explaining routes under ``/gateway``, Prometheus metrics at ``/metrics``.

Callers authenticate with the service's tokens (``Authorization: Bearer gs_...``, the ``openai`` client's
``api_key``); a tenant token's tenant is the account its usage is charged to (one key per application). The
SLO class is the ``X-GridShift-SLO`` header, else ``service_tier: flex`` (offline), else the tenant's default,
else interactive; the caller's region the ``X-GridShift-Region`` header, else the tenant's, else the
configuration's ``default_region``."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

import aiohttp
from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gridshift.service.auth import Authenticator, bearer
from gridshift.service.gateway.accounting import Accounting
from gridshift.service.gateway.backends import Registry
from gridshift.service.gateway.batch import Batches, batch_clock, batch_object, file_object, parse_upload
from gridshift.service.gateway.config import GatewayConfig, check_zones
from gridshift.service.gateway.errors import GatewayError, error_body, install_gateway_errors
from gridshift.service.gateway.grid import refresh_grid
from gridshift.service.gateway.hotpath import HotPath, make_call, tenant_of
from gridshift.service.gateway.proxy import Call, Forwarder
from gridshift.service.gateway.quotas import Quotas
from gridshift.service.gateway.routing import serving
from gridshift.service.gateway.schemas import BackendIn, BatchIn, ChatRequest, CompletionRequest, EmbeddingRequest
from gridshift.service.settings import ApiSettings
from gridshift.service.store import Principal, Store

log = logging.getLogger("gridshift.gateway")


@dataclass
class GatewaySettings:
    """Limits of the gateway: body size, per-tenant request rate and token budget (defaults for tenants
    the backends file does not list), how often the grid view is re-read, whether /metrics is public."""

    max_body_bytes: int = 1 << 20
    rate_per_s: float = 20.0
    burst: int = 40
    tokens_per_min: float | None = None
    grid_refresh_s: float = 10.0
    public_metrics: bool = False
    batch_poll_s: float = 2.0

    def __post_init__(self) -> None:
        if self.max_body_bytes < 1 or not (self.rate_per_s > 0) or self.burst < 1 or not (self.grid_refresh_s > 0):
            raise ValueError("max_body_bytes, rate_per_s, burst and grid_refresh_s must be positive")


class OpenAIBodyLimit:
    """413 in OpenAI's error shape for a body over the limit (Content-Length, or counted when chunked)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app, self.limit = app, max_body_bytes

    async def _refuse(self, send: Send) -> None:
        import json

        body = json.dumps(error_body(413, f"request body larger than {self.limit} bytes", "body",
                                     "request_too_large")).encode()
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await self._refuse(send)
                return
        received = 0
        chunks: list[Message] = []
        while True:  # read the whole (bounded) body first, so that an oversize chunked body gets a clean 413
            message = await receive()
            chunks.append(message)
            if message["type"] != "http.request":
                break
            received += len(message.get("body", b""))
            if received > self.limit:
                await self._refuse(send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return chunks.pop(0) if chunks else await receive()

        await self.app(scope, replay, send)


async def principal(request: Request, credentials: Annotated[Any, Depends(bearer)]) -> Principal:
    p = await request.app.state.auth.authenticate(request, credentials)
    if p.role == "grid":
        raise GatewayError(403, "a grid token may not call the model gateway", code="permission_denied")
    return p


async def operator(p: Annotated[Principal, Depends(principal)]) -> Principal:
    if p.role != "operator":
        raise GatewayError(403, "this route needs an operator token", code="permission_denied")
    return p


Caller = Annotated[Principal, Depends(principal)]
OperatorDep = Annotated[Principal, Depends(operator)]


SloH = Annotated[str | None, Header(alias="X-GridShift-SLO", description="interactive | offline")]
RegionH = Annotated[str | None, Header(alias="X-GridShift-Region", description="The caller's cloud region.")]
DeadlineH = Annotated[str | None, Header(alias="X-GridShift-Deadline-S", description=(
    "Defer an offline request: the answer is due within this many seconds; the gateway sends it at the time "
    "the grid favours within that (docs/service/gateway.md)."))]


def create_gateway_app(store: Store, config: GatewayConfig, settings: GatewaySettings | None = None, *,
                       latency: Any = None) -> FastAPI:
    """The gateway around ``store`` (tokens, signals, grid events) and ``config`` (the backends file).
    ``latency`` is the latency matrix (a square frame of RTT ms by region), or None to read the data registry's."""
    settings = settings or GatewaySettings()
    config = check_zones(config, "gateway config")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1000, limit_per_host=0))
        fwd: Forwarder = app.state.forwarder
        fwd.client = client
        app.state.accounting.start()
        await fwd.registry.check_all(client)
        await run_in_threadpool(refresh_grid, fwd, store, latency)

        async def clock(every: float, fn: Any) -> None:
            while True:
                await asyncio.sleep(every)
                try:
                    await fn()
                except Exception:
                    log.exception("gateway clock")

        gc.freeze()  # what start-up made lives as long as the process: no full collection walks it again (p99)
        tasks = [asyncio.create_task(clock(config.health_interval_s, lambda: fwd.registry.check_all(client))),
                 asyncio.create_task(batch_clock(app.state.batches, fwd, settings.batch_poll_s)),
                 asyncio.create_task(clock(settings.grid_refresh_s,
                                           lambda: run_in_threadpool(refresh_grid, fwd, store, latency)))]
        try:
            yield
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await client.close()
            fwd.upstream.close()
            app.state.accounting.stop()

    app = FastAPI(title="GridShift model gateway", version="1", lifespan=lifespan,
                  description="OpenAI-compatible inference routed to the site the grid favours within the SLO. "
                              "See docs/service/gateway.md.")
    registry = CollectorRegistry(auto_describe=True)
    app.state.metrics_registry = registry
    app.state.auth = Authenticator(store, ApiSettings(rate_per_s=1e6, burst=1_000_000))
    app.state.accounting = Accounting(store.engine, registry)
    app.state.quotas = Quotas(config, settings.rate_per_s, settings.burst, settings.tokens_per_min)
    app.state.forwarder = Forwarder(Registry(config), None, config, app.state.accounting,  # type: ignore[arg-type]
                                    app.state.quotas)
    app.state.store = store
    app.state.batches = Batches(store.engine)
    install_gateway_errors(app)
    app.state.path_counts = {"hot": 0, "routes": 0}
    app.add_middleware(HotPath, counts=app.state.path_counts)  # inside the body limit (added last: outermost)
    app.add_middleware(OpenAIBodyLimit, max_body_bytes=settings.max_body_bytes)
    _routes(app, store, latency, settings)
    return app


def _routes(app: FastAPI, store: Store, latency: Any, settings: GatewaySettings) -> None:
    fwd: Forwarder = app.state.forwarder

    @app.get("/v1/models", tags=["openai"])
    async def list_models(_: Caller) -> dict[str, Any]:
        return {"object": "list", "data": [{"id": m, "object": "model", "created": 0, "owned_by": "gridshift"}
                                           for m in fwd.registry.models()]}

    @app.post("/v1/chat/completions", tags=["openai"])
    async def chat(request: Request, body: ChatRequest, p: Caller, slo: SloH = None, region: RegionH = None,
                   deadline: DeadlineH = None) -> Response:
        data = body.model_dump(exclude_unset=True)
        return await fwd.forward(make_call(request.app.state, p, "chat", data, slo, region, deadline),
                                 request.is_disconnected)

    @app.post("/v1/completions", tags=["openai"])
    async def completions(request: Request, body: CompletionRequest, p: Caller, slo: SloH = None,
                          region: RegionH = None, deadline: DeadlineH = None) -> Response:
        data = body.model_dump(exclude_unset=True)
        return await fwd.forward(make_call(request.app.state, p, "completions", data, slo, region, deadline),
                                 request.is_disconnected)

    @app.post("/v1/embeddings", tags=["openai"])
    async def embeddings(request: Request, body: EmbeddingRequest, p: Caller, slo: SloH = None,
                         region: RegionH = None, deadline: DeadlineH = None) -> Response:
        data = body.model_dump(exclude_unset=True)
        return await fwd.forward(make_call(request.app.state, p, "embeddings", data, slo, region, deadline),
                                 request.is_disconnected)

    batches: Batches = app.state.batches

    def scope(p: Principal) -> str | None:
        return None if p.role == "operator" else tenant_of(p)

    @app.post("/v1/files", tags=["batch"])
    async def upload_file(request: Request, p: Caller) -> dict[str, Any]:
        purpose, name, content = parse_upload(request.headers.get("content-type", ""), await request.body())
        return await run_in_threadpool(batches.add_file, tenant_of(p), name, purpose, content)

    @app.get("/v1/files/{file_id}", tags=["batch"])
    async def get_file(file_id: str, p: Caller) -> dict[str, Any]:
        return file_object(await run_in_threadpool(batches.file, scope(p), file_id))

    @app.get("/v1/files/{file_id}/content", tags=["batch"])
    async def file_content(file_id: str, p: Caller) -> Response:
        r = await run_in_threadpool(batches.file, scope(p), file_id)
        return Response(r["content"], media_type="application/octet-stream")

    @app.post("/v1/batches", tags=["batch"])
    async def create_batch(body: BatchIn, p: Caller) -> dict[str, Any]:
        zones = sorted({s.spec.zone for s in fwd.registry.sites.values()})
        return await run_in_threadpool(batches.create, tenant_of(p), body.model_dump(), store, zones)

    @app.get("/v1/batches/{batch_id}", tags=["batch"])
    async def get_batch(batch_id: str, p: Caller) -> dict[str, Any]:
        return batch_object(await run_in_threadpool(batches.get, scope(p), batch_id))

    @app.post("/v1/batches/{batch_id}/cancel", tags=["batch"])
    async def cancel_batch(batch_id: str, p: Caller) -> dict[str, Any]:
        return await run_in_threadpool(batches.cancel, scope(p), batch_id)

    @app.get("/v1/batches", tags=["batch"])
    async def list_batches(p: Caller, limit: Annotated[int, Query(ge=1, le=100)] = 20) -> dict[str, Any]:
        data = await run_in_threadpool(batches.list, scope(p), limit)
        return {"object": "list", "data": data, "has_more": False}

    @app.get("/gateway/health", tags=["gateway"])
    async def health() -> dict[str, Any]:
        bs = fwd.registry.backends()
        return {"status": "ok", "backends": len(bs), "healthy": sum(b.healthy for b in bs),
                "models": fwd.registry.models(), "requests_by_path": dict(app.state.path_counts),
                "deferred": {"held": fwd.holder.held, "released": fwd.holder.released,
                             "dropped": fwd.holder.dropped}}

    @app.get("/gateway/route", tags=["gateway"])
    async def route(request: Request, p: Caller, model: Annotated[str, Query(min_length=1, max_length=256)],
                    slo: Annotated[str, Query(pattern="^(interactive|offline)$")] = "interactive",
                    region: Annotated[str | None, Query(max_length=64)] = None) -> dict[str, Any]:
        """Why a request would go where it goes: every site's figures, filters and score."""
        spec = fwd.config.tenants.get(tenant_of(p))
        call = Call(tenant_of(p), model, "chat", slo, region or (spec.region if spec else None)
                    or fwd.config.default_region, spec.residency if spec else None, {})
        return fwd.plan(call, explain=True).explain()

    @app.get("/gateway/usage", tags=["gateway"])
    async def usage(p: Caller, tenant: Annotated[str | None, Query(max_length=128)] = None,
                    by: Annotated[str, Query(pattern="^(model|site)$")] = "model") -> dict[str, Any]:
        """Tokens, energy, carbon and cost per tenant and model (or site); a tenant sees its own."""
        if p.role == "tenant":
            tenant = tenant_of(p)
        rows = await run_in_threadpool(app.state.accounting.totals, tenant, ("tenant", by))
        return {"usage": rows}

    @app.get("/gateway/backends", tags=["gateway"])
    async def backends(_: OperatorDep) -> dict[str, Any]:
        now = time.monotonic()
        standby = {m: sorted(b.id for site in fwd.registry.sites.values() for b in serving(site, m, now)
                             if b not in serving(site, m, now, t)) for m, t in fwd.grid.targets.items()}
        return {"backends": fwd.registry.describe(), "replica_targets": fwd.grid.targets, "standby": standby,
                "grid": {
            "carbon_g_per_kwh": fwd.grid.carbon_g_per_kwh, "price_usd_per_mwh": fwd.grid.price_usd_per_mwh,
            "events": {k: [list(e) for e in v] for k, v in fwd.grid.events.items()},
            "announced": {k: [list(e) for e in v] for k, v in fwd.grid.announced.items()}}}

    @app.post("/gateway/backends", tags=["gateway"], status_code=201)
    async def add_backend(body: BackendIn, _: OperatorDep) -> dict[str, Any]:
        try:
            b = fwd.registry.add_backend(body.site, body.backend)
        except KeyError:
            raise GatewayError(404, f"no site '{body.site}'; sites: {', '.join(fwd.registry.sites)}",
                               param="site", code="not_found") from None
        except ValueError as e:
            raise GatewayError(409, str(e), param="backend.id", code="conflict") from None
        await fwd.registry.check(fwd.client, b)
        return {"id": b.id, "site": b.site, "healthy": b.healthy, "models": sorted(b.models)}

    @app.delete("/gateway/backends/{backend_id}", tags=["gateway"], status_code=204)
    async def remove_backend(backend_id: str, _: OperatorDep) -> Response:
        if not fwd.registry.remove_backend(backend_id):
            raise GatewayError(404, f"no backend '{backend_id}'", param="backend_id", code="not_found")
        return Response(status_code=204)

    @app.post("/gateway/refresh", tags=["gateway"])
    async def refresh(_: OperatorDep) -> dict[str, Any]:
        """Re-check every backend and re-read the grid (signals, events) now."""
        t = time.perf_counter()
        await fwd.registry.check_all(fwd.client)
        await run_in_threadpool(refresh_grid, fwd, store, latency)
        return {"backends": len(fwd.registry.backends()), "took_ms": round((time.perf_counter() - t) * 1000, 1)}

    async def metrics_body() -> Response:
        return Response(generate_latest(app.state.metrics_registry), media_type=CONTENT_TYPE_LATEST)

    if settings.public_metrics:
        app.add_api_route("/metrics", metrics_body, methods=["GET"], tags=["gateway"])
    else:
        @app.get("/metrics", tags=["gateway"])
        async def metrics(_: OperatorDep) -> Response:
            return await metrics_body()

    @app.get("/", include_in_schema=False)
    async def root() -> JSONResponse:
        return JSONResponse({"service": "gridshift gateway", "openai_base_url": "/v1"})
