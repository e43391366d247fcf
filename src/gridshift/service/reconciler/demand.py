"""The model gateway's observed demand in the planner's services: a fleet service whose name is a model the
gateway serves plans with the busiest minute the gateway saw per caller region over ``DEMAND_LOOKBACK``
(:meth:`gridshift.service.store.Store.observed_demand`) as its ``peak_requests_per_s`` for that region, in
place of the fleet file's figure. Only the regions the service already lists are replaced (a new region
would need the latency matrix to know where it may be served); the trace's daily and weekly shape stays."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta

from gridshift.model.scenario import Scenario
from gridshift.service.db import StateError

log = logging.getLogger("gridshift.reconciler")

DEMAND_LOOKBACK = timedelta(hours=24)


def with_observed_demand(fleet: Scenario, observed: Mapping[str, Mapping[str, float]]
                         ) -> tuple[Scenario, dict[str, dict[str, float]]]:
    """``fleet`` with its services' peak demand per region replaced by ``observed`` ``{model: {region: rps}}``
    where a service is named like the model, and the replacements made ``{service: {region: rps}}``."""
    services, used = [], {}
    for svc in fleet.workloads.services:
        seen = {r: float(v) for r, v in observed.get(svc.name, {}).items() if r in svc.demand.peak_requests_per_s}
        if not seen:
            services.append(svc)
            continue
        used[svc.name] = seen
        demand = svc.demand.model_copy(update={"peak_requests_per_s": {**svc.demand.peak_requests_per_s, **seen}})
        services.append(svc.model_copy(update={"demand": demand}))
    if not used:
        return fleet, {}
    workloads = fleet.workloads.model_copy(update={"services": services})
    return fleet.model_copy(update={"workloads": workloads}), used


def planning_fleet(store, fleet: Scenario, now: datetime) -> tuple[Scenario, dict[str, dict[str, float]]]:  # noqa: ANN001
    """``fleet`` with the gateway's observed demand (``fleet`` unchanged when it has no services or the
    store cannot be read)."""
    if not fleet.workloads.services:
        return fleet, {}
    try:
        observed = store.observed_demand(now - DEMAND_LOOKBACK, now)
    except StateError as e:
        log.warning("cannot read the gateway's observed demand: %s", e)
        return fleet, {}
    return with_observed_demand(fleet, observed)
