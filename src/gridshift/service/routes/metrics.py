"""``GET /metrics``: Prometheus metrics (for a grid or operator token, or public with ``public_metrics``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gridshift.service.auth import require
from gridshift.service.deps import threaded
from gridshift.service.schemas import error_responses

router = APIRouter(tags=["service"], dependencies=[Depends(require("grid", "operator"))])
"""``/metrics`` for a grid or operator token."""
public_router = APIRouter(tags=["service"])
"""``/metrics`` without a token (``ApiSettings.public_metrics``)."""


@threaded
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics_registry), media_type=CONTENT_TYPE_LATEST)


for _router in (router, public_router):
    _router.add_api_route(
        "/metrics", metrics, methods=["GET"], response_class=PlainTextResponse, summary="Prometheus metrics",
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format."},
                   **error_responses()})
