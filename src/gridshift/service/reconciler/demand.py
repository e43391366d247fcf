"""The planner's inference services and the model gateway, both ways.

In: a fleet service whose name is a model the gateway serves plans with the demand the gateway observed per
caller region as its ``peak_requests_per_s`` for that region, in place of the fleet file's figure. The
observed series (:meth:`gridshift.service.store.Store.observed_demand_minutes`: requests per minute over the
last ``DEMAND_HISTORY``) is turned into the busiest minute of each hour, and a demand forecaster
(``DEMAND_FORECASTER`` from the forecast registry: the same hour a day before, inference demand's daily
shape) predicts those hourly peaks over the planning horizon; the largest prediction is the peak planned
with. A model and region seen for less than ``MIN_HISTORY_H`` hours (too little for a daily forecaster)
plans with the busiest minute seen. Only the regions the service already lists are replaced (a new region
would need the latency matrix to know where it may be served); the trace's daily and weekly shape stays.

Out: the replicas the pass's decision gives each service (or, with no job to decide for, the replicas every
policy places first, :func:`gridshift.plan.placement.place_services`) become the replica targets
``{site: {accelerator type: replicas}}`` of the stored service of the same name (``/api/v1/services``),
which the gateway reads to know how many backends should take requests per site."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

import numpy as np

from gridshift.forecast.registry import make_forecaster
from gridshift.model.scenario import Scenario
from gridshift.model.time import S_PER_H, floor_time
from gridshift.plan.placement import PlacementState, place_services
from gridshift.service.db import StateError
from gridshift.service.reconciler.decisions import build_observation
from gridshift.service.store import Principal

log = logging.getLogger("gridshift.reconciler")

DEMAND_LOOKBACK = timedelta(hours=24)  # the busiest minute's window (Store.observed_demand)
DEMAND_HISTORY = timedelta(days=7)  # the forecaster's input
DEMAND_FORECASTER = "seasonal-naive"
MIN_HISTORY_H = 24


def hourly_peaks(minutes: Sequence[tuple[datetime, int]], start: datetime, n_hours: int) -> np.ndarray:
    """The busiest minute of each of ``n_hours`` hours from ``start``, as requests/s (0: no request seen)."""
    out = np.zeros(n_hours)
    for at, n in minutes:
        h = int((at - start).total_seconds() // S_PER_H)
        if 0 <= h < n_hours:
            out[h] = max(out[h], n / 60.0)
    return out


def forecast_demand(series: Mapping[str, Mapping[str, Sequence[tuple[datetime, int]]]], now: datetime,
                    horizon_h: int, forecaster: str = DEMAND_FORECASTER) -> dict[str, dict[str, float]]:
    """``{model: {region: requests/s}}``: the largest hourly peak ``forecaster`` predicts over the next
    ``horizon_h`` hours from the observed ``series`` (per minute, time order), or the busiest minute seen
    for a model and region observed for less than ``MIN_HISTORY_H`` hours."""
    f = make_forecaster(forecaster)
    hour0 = floor_time(now, S_PER_H)
    max_h = int(DEMAND_HISTORY.total_seconds() // S_PER_H)
    out: dict[str, dict[str, float]] = {}
    for model, regions in series.items():
        for region, minutes in regions.items():
            if not minutes:
                continue
            seen_h = int((hour0 - floor_time(minutes[0][0], S_PER_H)).total_seconds() // S_PER_H) + 1
            if seen_h < MIN_HISTORY_H:
                out.setdefault(model, {})[region] = max(n for _, n in minutes) / 60.0
                continue
            n = min(seen_h, max_h)
            hist = hourly_peaks(minutes, hour0 - timedelta(hours=n - 1), n)
            pred = f.predict(hist[None, :], max(1, int(horizon_h)) + 1, t_abs=n - 1, slots_per_h=1)
            out.setdefault(model, {})[region] = float(max(0.0, np.nanmax(pred)))
    return out


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


def planning_fleet(store, fleet: Scenario, now: datetime, horizon_h: float = 24.0  # noqa: ANN001
                   ) -> tuple[Scenario, dict[str, dict[str, float]]]:
    """``fleet`` with the demand forecast from the gateway's observations over the next ``horizon_h`` hours
    (``fleet`` unchanged when it has no services or the store cannot be read)."""
    if not fleet.workloads.services:
        return fleet, {}
    try:
        series = store.observed_demand_minutes(now - DEMAND_HISTORY, now)
    except StateError as e:
        log.warning("cannot read the gateway's observed demand: %s", e)
        return fleet, {}
    return with_observed_demand(fleet, forecast_demand(series, now, int(math.ceil(horizon_h))))


def replica_targets(world, replicas: np.ndarray | None) -> dict[str, dict[str, dict[str, int]]]:  # noqa: ANN001
    """``{service: {site: {accelerator type: replicas}}}`` from ``replicas[n, r, p]`` (summed over regions;
    every service listed, an empty mapping for one without replicas)."""
    f, svc = world.fleet, world.services
    out: dict[str, dict[str, dict[str, int]]] = {name: {} for name in svc.names}
    if replicas is None or not replicas.size:
        return out
    per_pool = replicas.sum(axis=1)
    for n, name in enumerate(svc.names):
        for p in np.flatnonzero(per_pool[n] > 0).tolist():
            site, typ = f.site_names[f.pool_site[p]], f.type_names[f.pool_type[p]]
            out[name].setdefault(site, {})
            out[name][site][typ] = out[name][site].get(typ, 0) + int(per_pool[n, p])
    return out


def service_replicas(world, signals, t: int) -> np.ndarray:  # noqa: ANN001
    """The replicas the services get at slot ``t`` before any batch job is placed."""
    obs = build_observation(world, signals, [], t)
    return place_services(PlacementState(obs), obs)


def write_replica_targets(store, targets: dict[str, dict[str, dict[str, int]]]) -> dict[str, dict]:  # noqa: ANN001
    """Set the replica targets of the stored services named in ``targets`` where they changed; returns those
    written. A service only in the fleet file (not stored) is left alone."""
    written = {}
    for row in store.list_services(Principal.system()):
        want = targets.get(row.name)
        if want is not None and want != row.replica_targets:
            store.set_replica_targets(row.name, want, expect_version=row.version)
            written[row.name] = want
    return written
