"""Observed inference demand: the model gateway's requests per minute, model, caller region and SLO class
(``gateway_demand``, written by the gateway's accounting), read back as peak request rates for planning."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from gridshift.service.store.base import StoreBase, as_utc
from gridshift.service.tables import GatewayDemandRecord

DEMAND = GatewayDemandRecord.__table__


class DemandStore(StoreBase):
    """The gateway's observed demand."""

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
