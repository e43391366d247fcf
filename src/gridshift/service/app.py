"""The HTTP API of ``gridshift serve`` (FastAPI; routes under ``/api/v1``, OpenAPI at ``/openapi.json``).

``create_app(store, fleet=..., reconciler=..., settings=...)`` builds the app around a
:class:`~gridshift.service.store.Store`. The fleet (sites, zones, accelerator pools) is fixed when the app is
built and exposed read-only. A reconciler, if given, is any object with ``notify(reason)`` and ``status()``:
the API calls ``notify`` after changes that matter (a job submitted or cancelled, a grid event, signals)
and reads ``status()`` for ``/health``, ``/power`` and ``/metrics``.

The routes are in :mod:`gridshift.service.routes` (one module per area), their dependencies in
:mod:`gridshift.service.deps`, the bodies in :mod:`gridshift.service.schemas`. Roles, limits and error
answers are described in ``docs/service/api.md``; authentication lives in :mod:`gridshift.service.auth`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from gridshift.service.auth import Authenticator
from gridshift.service.http_errors import install_error_handlers
from gridshift.service.limits import BodyLimitMiddleware
from gridshift.service.metrics import Collector, MetricsMiddleware, http_metrics
from gridshift.service.provider_pull import ProviderPuller, provider_clock
from gridshift.service.routes import (
    carbon_aware,
    dashboard,
    events,
    fleet,
    health,
    jobs,
    metrics,
    plan,
    services,
    signals,
    tokens,
)
from gridshift.service.routes import gateway as gateway_routes
from gridshift.service.routes import settings as settings_routes
from gridshift.service.schemas import API_VERSION
from gridshift.service.security import SecurityHeaders, install_docs
from gridshift.service.settings import ApiSettings
from gridshift.service.signal_pull import pull_clock
from gridshift.service.state import ApiState, fleet_from_sites, fleet_model
from gridshift.service.store import Store

__all__ = ["ApiSettings", "create_app", "fleet_from_sites"]

API_ROUTERS = (health.router, fleet.router, jobs.router, services.router, plan.router, signals.router,
               events.router, tokens.router, settings_routes.router, gateway_routes.router)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Runs the signal puller's clock while the app serves (if ``pull_interval_s`` and ``pull_zones``), and
    one clock per configured provider."""
    settings: ApiSettings = app.state.settings
    tasks = []
    if settings.pull_interval_s and settings.pull_zones:
        tasks.append(asyncio.create_task(pull_clock(app)))
    if app.state.providers is not None:
        tasks += [asyncio.create_task(provider_clock(app, c.name)) for c in app.state.providers.configs]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def create_app(store: Store, *, fleet: dict | None = None, reconciler: Any = None,
               settings: ApiSettings | None = None, providers: ProviderPuller | None = None) -> FastAPI:
    """The API app around ``store``; ``fleet`` is ``{"sites": [...], "zones": [...]}`` (see
    :func:`fleet_from_sites`), ``reconciler`` any object with ``notify(reason)`` and ``status()``,
    ``providers`` the live grid-signal providers to pull on their clocks."""
    from gridshift import __version__

    settings = settings or ApiSettings()
    app = FastAPI(
        title="GridShift API", version=API_VERSION, lifespan=lifespan,
        description="Jobs, inference services, plans, grid signals and events of a GridShift service. "
                    "Authenticate with `Authorization: Bearer gs_...`; see docs/service/api.md for roles and limits.",
        docs_url=None, redoc_url=None,  # /docs from the package (gridshift.service.security), no CDN
    )
    app.state.api = ApiState(store, fleet_model(fleet), settings)
    app.state.store = store
    app.state.reconciler = reconciler
    app.state.settings = settings
    app.state.providers = providers
    if providers is not None and reconciler is not None and getattr(reconciler, "forecast_source", False) is None:
        from gridshift.service.provider_forecasts import ProviderForecasts

        reconciler.forecast_source = ProviderForecasts(providers, providers.forecast_use).choose
    app.state.auth = Authenticator(store, settings)
    app.state.gridshift_version = __version__
    registry = CollectorRegistry(auto_describe=True)
    app.state.metrics_registry = registry
    requests, latency = http_metrics(registry)
    registry.register(Collector(app))
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, requests=requests, latency=latency)
    app.add_middleware(SecurityHeaders)
    install_docs(app)

    for router in API_ROUTERS:
        app.include_router(router)
    app.include_router(metrics.public_router if settings.public_metrics else metrics.router)
    app.include_router(dashboard.router)
    app.include_router(carbon_aware.public_router if settings.public_carbon_aware else carbon_aware.router)
    return app
