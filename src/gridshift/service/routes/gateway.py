"""The model gateway's accounting as the service sees it (the gateway is its own process writing to the same
database): ``GET /api/v1/gateway/usage``, totals per site, model and tenant, for the API and the dashboard."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from gridshift.service.deps import StoreDep, TenantOrOperator, threaded
from gridshift.service.schemas import API_PREFIX, error_responses, to_utc
from gridshift.service.store.gateway import USAGE_GROUPS, USAGE_SUMS

router = APIRouter(prefix=API_PREFIX, tags=["gateway"])
J_PER_KWH = 3.6e6


def _row(r: dict[str, Any]) -> dict[str, Any]:
    tokens = int(r["prompt_tokens"]) + int(r["completion_tokens"])
    return {**r, "prompt_tokens": int(r["prompt_tokens"]), "completion_tokens": int(r["completion_tokens"]),
            "failovers": int(r["failovers"]), "energy_kwh": float(r["energy_j"]) / J_PER_KWH,
            "carbon_g_per_1k_tokens": 1000.0 * float(r["carbon_g"]) / tokens if tokens else None}


@router.get("/gateway/usage", summary="The model gateway's usage per site, model and tenant",
            responses=error_responses())
@threaded
def gateway_usage(store: StoreDep, principal: TenantOrOperator,
                  since: Annotated[datetime | None, Query(description="Only requests at or after this time.")] = None,
                  ) -> dict[str, Any]:
    """Requests, errors, tokens in and out, energy (J and kWh), carbon (g, and per 1,000 tokens), energy cost
    (USD) and failovers of the requests the model gateway answered, per site, per model and per tenant, and
    in total; a tenant sees its own requests only."""
    out: dict[str, Any] = {by: [_row(r) for r in store.gateway_usage(principal, by, to_utc(since))] for by in USAGE_GROUPS}
    rows = out["site"]
    total = {"requests": sum(r["requests"] for r in rows), "errors": sum(r["errors"] for r in rows),
             **{s: sum(r[s] for r in rows) for s in USAGE_SUMS}}
    out["total"] = _row({"key": None, **total})
    return out
