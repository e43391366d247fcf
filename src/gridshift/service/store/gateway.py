"""The model gateway's rows, read by the service: its usage totals per site, model or tenant (``gateway_usage``,
for the API and the dashboard) and the observed inference demand, requests per minute, model, caller region
and SLO class (``gateway_demand``), read back as peak request rates for planning. The gateway writes both."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select

from gridshift.service.store.base import PermissionDenied, StoreBase, as_utc
from gridshift.service.store.rows import Principal
from gridshift.service.tables import GatewayDemandRecord, GatewayUsageRecord

DEMAND = GatewayDemandRecord.__table__
USAGE = GatewayUsageRecord.__table__
USAGE_GROUPS = ("site", "model", "tenant")
USAGE_SUMS = ("prompt_tokens", "completion_tokens", "energy_j", "carbon_g", "cost_usd", "failovers")


class GatewayStore(StoreBase):
    """The gateway's usage and observed demand."""

    def gateway_usage(self, principal: Principal, by: str, since: datetime | None = None) -> list[dict[str, Any]]:
        """Totals per ``by`` (site, model or tenant): requests, errors (not ``ok``), tokens in and out, energy
        (J), carbon (g), cost (USD), failovers; a tenant sees its own requests only, the grid role none.
        Requests answered by no site are under site None."""
        if by not in USAGE_GROUPS:
            raise ValueError(f"by must be one of {', '.join(USAGE_GROUPS)}")
        if principal.role not in ("operator", "tenant"):
            raise PermissionDenied(f"role '{principal.role}' cannot read the gateway's usage")
        col = USAGE.c[by]
        q = select(col.label("key"), func.count().label("requests"),
                   func.sum(case((USAGE.c.status == "ok", 0), else_=1)).label("errors"),
                   *[func.coalesce(func.sum(USAGE.c[s]), 0).label(s) for s in USAGE_SUMS]).group_by(col)
        if principal.role == "tenant":
            q = q.where(USAGE.c.tenant == principal.tenant)
        if since is not None:
            q = q.where(USAGE.c.at >= as_utc(since))
        with self._tx(readonly=True) as conn:
            rows = [dict(r) for r in conn.execute(q.order_by(func.count().desc(), col)).mappings()]
        for r in rows:
            r["errors"] = int(r["errors"] or 0)
        return rows

    def observed_demand(self, since: datetime, until: datetime | None = None) -> dict[str, dict[str, float]]:
        """``{model: {region: peak requests/s}}``: the busiest minute since ``since`` (and before ``until``)
        per model and caller region, all SLO classes together, as requests per second. Requests whose caller
        region is unknown are under ``"unknown"``."""
        per_min = (select(DEMAND.c.model, DEMAND.c.region, DEMAND.c.window_start,
                          func.sum(DEMAND.c.requests).label("n"))
                   .where(DEMAND.c.window_start >= as_utc(since))
                   .group_by(DEMAND.c.model, DEMAND.c.region, DEMAND.c.window_start))
        if until is not None:
            per_min = per_min.where(DEMAND.c.window_start < as_utc(until))
        sub = per_min.subquery()
        q = select(sub.c.model, sub.c.region, func.max(sub.c.n)).group_by(sub.c.model, sub.c.region)
        out: dict[str, dict[str, float]] = {}
        with self._tx(readonly=True) as conn:
            for model, region, peak in conn.execute(q):
                out.setdefault(model, {})[region] = float(peak) / 60.0
        return out

    def observed_demand_minutes(self, since: datetime, until: datetime | None = None
                                ) -> dict[str, dict[str, list[tuple[datetime, int]]]]:
        """``{model: {region: [(minute start, requests), ...]}}`` in time order, all SLO classes together:
        the gateway's observed demand as a series, the demand forecaster's input (minutes without a request
        are not listed)."""
        q = (select(DEMAND.c.model, DEMAND.c.region, DEMAND.c.window_start, func.sum(DEMAND.c.requests))
             .where(DEMAND.c.window_start >= as_utc(since))
             .group_by(DEMAND.c.model, DEMAND.c.region, DEMAND.c.window_start)
             .order_by(DEMAND.c.model, DEMAND.c.region, DEMAND.c.window_start))
        if until is not None:
            q = q.where(DEMAND.c.window_start < as_utc(until))
        out: dict[str, dict[str, list[tuple[datetime, int]]]] = {}
        with self._tx(readonly=True) as conn:
            for model, region, start, n in conn.execute(q):
                out.setdefault(model, {}).setdefault(region, []).append((as_utc(start), int(n)))
        return out
