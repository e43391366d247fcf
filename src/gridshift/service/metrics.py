"""Prometheus metrics of the API: requests and latency per route (:class:`MetricsMiddleware`) and gauges
read at scrape time from the store and the reconciler (:class:`Collector`)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gridshift.service.db import StateError
from gridshift.service.state import ApiState, first_number, reconciler_status


class Collector:
    """Gauges read at scrape time from the store and the reconciler."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def describe(self) -> list:
        return []

    def collect(self):  # noqa: ANN201
        st: ApiState = self.app.state.api
        rec_status = reconciler_status(self.app.state.reconciler)
        up = GaugeMetricFamily("gridshift_database_up", "1 if the database answered this scrape.")
        queue = GaugeMetricFamily("gridshift_queue_jobs", "Jobs per status.", labels=["status"])
        power = GaugeMetricFamily("gridshift_site_power_mw", "Facility power per site, MW.", labels=["site"])
        plan = None
        try:
            for status, n in st.store.queue_stats().items():
                queue.add_metric([status], n)
            if rec_status is None:
                plan = st.store.current_plan()
            sites, _ = st.power(self.app.state.reconciler, rec_status, plan if rec_status is None else False)
            for site, mw in sorted(sites.items()):
                power.add_metric([site], mw)
            up.add_metric([], 1)
        except StateError:
            up.add_metric([], 0)
        yield up
        yield queue
        yield power
        plan_s = first_number(rec_status, "plan_seconds", "plan_time_s")
        if plan_s is None and plan is not None:
            plan_s = first_number(plan.summary, "plan_seconds", "plan_time_s")
        g = GaugeMetricFamily("gridshift_plan_seconds", "Time the last plan took to make, s.")
        g.add_metric([], plan_s if plan_s is not None else 0.0)
        yield g
        carbon = first_number(rec_status, "carbon_t_total", "carbon_t")
        g = GaugeMetricFamily("gridshift_carbon_t_total", "Carbon emitted by the fleet's work so far, t CO2e.")
        g.add_metric([], carbon if carbon is not None else 0.0)
        yield g
        cost = first_number(rec_status, "cost_usd_total", "cost_usd")
        if cost is not None:
            g = GaugeMetricFamily("gridshift_cost_usd_total", "Energy cost of the fleet's work so far, $.")
            g.add_metric([], cost)
            yield g
        yield from provider_metrics(getattr(self.app.state, "providers", None))
        yield from forecast_metrics(rec_status)
        yield from basis_metrics(rec_status)
        cf = rec_status.get("counterfactual") if isinstance(rec_status, Mapping) else None
        if isinstance(cf, Mapping):
            policy = str(cf.get("policy", "asap"))
            for key, name, text in (("carbon_t", "gridshift_counterfactual_carbon_t_total", "t CO2e"),
                                    ("cost_usd", "gridshift_counterfactual_cost_usd_total", "$"),
                                    ("energy_mwh", "gridshift_counterfactual_energy_mwh_total", "MWh")):
                v = first_number(cf, key)
                if v is not None:
                    g = GaugeMetricFamily(name, f"The same work under the counterfactual policy so far, {text}.",
                                          labels=["policy"])
                    g.add_metric([policy], v)
                    yield g


def basis_metrics(rec_status: Any) -> list[GaugeMetricFamily]:
    """Carbon under both accountings per zone (average and marginal, actual schedule and counterfactual), and
    which basis drove the decisions (gridshift.service.reconciler.bases)."""
    books = rec_status.get("carbon_by_basis") if isinstance(rec_status, Mapping) else None
    if not isinstance(books, Mapping) or not books:
        return []
    carbon = GaugeMetricFamily("gridshift_carbon_t_by_basis_total", "Carbon of the fleet's work so far under each "
                               "accounting, t CO2e: average or marginal intensity, the actual schedule or the "
                               "counterfactual.", labels=["zone", "basis", "signal", "schedule"])
    drives = GaugeMetricFamily("gridshift_carbon_basis_drives", "The carbon basis that drives the decisions in a "
                               "zone (value 1).", labels=["zone", "basis", "signal"])
    for zone, z in sorted(books.items()):
        for basis in ("average", "marginal"):
            b = z.get(basis)
            if isinstance(b, Mapping):
                carbon.add_metric([zone, basis, str(b["signal"]), "actual"], float(b["carbon_t"]))
                carbon.add_metric([zone, basis, str(b["signal"]), "counterfactual"], float(b["counterfactual_carbon_t"]))
        d = z.get("drives")
        if isinstance(d, Mapping):
            drives.add_metric([zone, str(d["basis"]), str(d["signal"])], 1.0)
    return [carbon, drives]


def forecast_metrics(rec_status: Any) -> list[GaugeMetricFamily]:
    """Per zone and planner signal: the forecast the last plan was made on (an info-style gauge, 1)."""
    fc = rec_status.get("forecasts") if isinstance(rec_status, Mapping) else None
    if not isinstance(fc, Mapping) or not fc:
        return []
    g = GaugeMetricFamily("gridshift_planning_forecast", "The forecast the last plan was made on, per zone and "
                          "signal (value 1): a provider's (source provider) or the planner's own model.",
                          labels=["zone", "signal", "source", "forecast"])
    for zone, by_signal in sorted(fc.items()):
        for signal, e in sorted(by_signal.items()):
            g.add_metric([zone, signal, str(e.get("source")), str(e.get("forecast"))], 1.0)
    return [g]


def provider_metrics(puller: Any) -> list[GaugeMetricFamily]:
    """Per provider and zone: stale or not, the age of the last good pull; per zone: the signal that drives
    planning (an info-style gauge, 1)."""
    if puller is None:
        return []
    stale = GaugeMetricFamily("gridshift_provider_stale", "1 if the provider's data for the zone are stale or "
                              "its pulls fail (planning goes on with the last good data).", labels=["provider", "zone"])
    age = GaugeMetricFamily("gridshift_provider_age_seconds", "Seconds since the last good pull.",
                            labels=["provider", "zone"])
    for p in puller.status():
        stale.add_metric([p["provider"], p["zone"]], 1.0 if p["stale"] else 0.0)
        if p["age_s"] is not None:
            age.add_metric([p["provider"], p["zone"]], p["age_s"])
    drives = GaugeMetricFamily("gridshift_planning_signal", "The provider signal that drives planning in a zone "
                               "(value 1).", labels=["zone", "provider", "signal", "drives"])
    for zone, d in sorted(puller.planning_signals().items()):
        drives.add_metric([zone, d["provider"], d["signal"], d["drives"]], 1.0)
    mae = GaugeMetricFamily("gridshift_forecast_mae", "Rolling backtest: mean absolute error of the planning "
                            "signal's forecasts, the provider's and the project's own model's.",
                            labels=["zone", "signal", "source"])
    preferred = GaugeMetricFamily("gridshift_provider_forecast_preferred", "1 if the provider's forecast is fresh "
                                  "and scored better than the project's own.", labels=["zone", "provider", "signal"])
    for zone, sk in sorted(puller.forecast_skill().items()):
        for src, key in ((sk["provider"], "provider_mae"), (sk["own_model"], "own_mae")):
            if sk[key] is not None:
                mae.add_metric([zone, sk["signal"], src], sk[key])
        preferred.add_metric([zone, sk["provider"], sk["signal"]], 1.0 if sk["preferred"] else 0.0)
    return [stale, age, drives, mae, preferred]


class MetricsMiddleware:
    """Counts requests and times them, by route template, method and status."""

    def __init__(self, app: ASGIApp, requests: Counter, latency: Histogram) -> None:
        self.app = app
        self.requests = requests
        self.latency = latency
        # labelled children by (route, method, status): ``labels()`` checks and locks on every call
        self._children: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    def _child(self, route: str, method: str, status: str) -> tuple[Any, Any]:
        key = (route, method, status)
        child = self._children.get(key)
        if child is None:
            child = (self.requests.labels(route, method, status), self.latency.labels(route, method))
            if len(self._children) < 10_000:  # routes are templates; methods and statuses are few
                self._children[key] = child
        return child

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            requests, latency = self._child(getattr(scope.get("route"), "path", None) or "unmatched",
                                            scope.get("method", ""), str(status))
            requests.inc()
            latency.observe(time.perf_counter() - t0)


def http_metrics(registry: CollectorRegistry) -> tuple[Counter, Histogram]:
    """The request counter and latency histogram, registered in ``registry``."""
    requests = Counter("gridshift_http_requests", "HTTP requests by route, method and status.",
                       ["route", "method", "status"], registry=registry)
    latency = Histogram("gridshift_http_request_seconds", "HTTP request latency by route and method, s.",
                        ["route", "method"], registry=registry,
                        buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))
    return requests, latency
