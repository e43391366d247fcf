"""Command line: ``gridshift gateway``, the OpenAI-compatible model gateway (see docs/service/gateway.md)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from gridshift.cli.serve import DbUrl, StateDir, db_url
from gridshift.errors import GridShiftError, require


def register(app: typer.Typer) -> None:
    """Add ``gateway`` to ``app``."""

    @app.command("gateway")
    def gateway_cmd(
        backends: Annotated[Path | None, typer.Option(
            help="Backends file (YAML): sites (zone, region, residency, power cap) with their OpenAI-compatible "
                 "backends, tenants' regions and quotas, SLO classes and weights.")] = None,
        fleet: Annotated[Path | None, typer.Option(
            help="Scenario YAML whose sites give the backends file's sites their zone, region and power cap "
                 "(matched by name), as for `gridshift serve --fleet`.")] = None,
        db: DbUrl = None,
        state: StateDir = None,
        host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port to listen on.")] = 8100,
        max_body_bytes: Annotated[int, typer.Option(help="Largest request body (413 above).")] = 1 << 20,
        rate_per_s: Annotated[float, typer.Option(help="Default requests/s per tenant (429 above).")] = 20.0,
        burst: Annotated[int, typer.Option(help="Default burst per tenant.")] = 40,
        tokens_per_min: Annotated[float | None, typer.Option(help="Default tokens/min per tenant (none: no "
                                                                  "limit).")] = None,
        grid_refresh_s: Annotated[float, typer.Option(help="Re-read signals and grid events this often.")] = 10.0,
        public_metrics: Annotated[bool, typer.Option(help="Serve /metrics without a token.")] = False,
        log_level: Annotated[str, typer.Option(help="Log level.")] = "info",
    ) -> None:
        """Serve the OpenAI-compatible model gateway: each request goes to the site the grid favours within its
        SLO. Uses the same database (tokens, signals, grid events) as `gridshift serve`."""
        from gridshift.cli.common import fail

        try:
            for module in ("fastapi", "sqlalchemy", "uvicorn", "aiohttp", "prometheus_client"):
                require(module, "service", "the model gateway")
            import uvicorn

            from gridshift.service.db import upgrade
            from gridshift.service.gateway.app import GatewaySettings, create_gateway_app
            from gridshift.service.gateway.config import check_zones, load_gateway_config, with_fleet
            from gridshift.service.store import Store

            config = load_gateway_config(backends)
            if fleet is not None:
                from gridshift.data.scenario import load_scenario

                config = with_fleet(config, load_scenario(fleet).sites, str(backends))
            else:
                config = check_zones(config, str(backends))
            try:
                settings = GatewaySettings(max_body_bytes=max_body_bytes, rate_per_s=rate_per_s, burst=burst,
                                           tokens_per_min=tokens_per_min, grid_refresh_s=grid_refresh_s,
                                           public_metrics=public_metrics)
            except ValueError as e:
                raise GridShiftError(str(e)) from None
            url = db_url(db, state)
            upgrade(url)
            store = Store(url)
            store.check_schema()
        except GridShiftError as e:
            fail(e)
        logging.basicConfig(level=getattr(logging, log_level.upper(), logging.INFO),
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per backend call is too many
        app_ = create_gateway_app(store, config, settings)
        # the accounting writer and the grid refresh run in threads: give the event loop the GIL back within
        # 1 ms rather than Python's default 5 ms, which would otherwise show in the requests' p99 latency
        sys.setswitchinterval(0.001)
        try:
            uvicorn.run(app_, host=host, port=port, access_log=False, log_level=log_level.lower(),
                        timeout_graceful_shutdown=10)
        finally:
            store.close()
