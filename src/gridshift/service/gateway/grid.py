"""The gateway's view of the grid, re-read on a clock: each site zone's latest carbon intensity and price from
the service's store (the signals ``gridshift serve`` pulls or is pushed), the grid events in force per site
and those announced (their notice has begun: a class is shed along a ramp that ends at the event's start),
and the round-trip times between the regions named in the backends file (the shared latency matrix through
the data registry, read once), and the replica targets of the inference services named like a model the
gateway serves (``{site: {accelerator type: replicas}}``, set by the reconciler or an operator through
``PUT /api/v1/services/{name}/replicas``): of a site's backends for that model only that many per
accelerator type take requests, the others stand by, and a site with no target for the model is filtered
out (filter ``replicas``). A service with no targets set leaves every backend in use."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from gridshift.errors import GridShiftError
from gridshift.model.time import utcnow
from gridshift.service.gateway.routing import GridView
from gridshift.service.store import Principal

log = logging.getLogger("gridshift.gateway")

SIGNAL_LOOKBACK = timedelta(hours=6)
SIGNAL_AHEAD = timedelta(days=7)  # the longest deadline of a deferrable request


def _rtt_table(latency: Any, regions: set[str]) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    if latency is None:
        return out
    if hasattr(latency, "loc"):  # a frame: index origin, columns destination
        for a in regions:
            for b in regions:
                if a in latency.index and b in latency.columns:
                    out[(a, b)] = float(latency.loc[a, b])
        return out
    for a, row in dict(latency).items():
        for b, v in dict(row).items():
            out[(a, b)] = float(v)
    return out


def _regions(fwd: Any) -> set[str]:
    cfg = fwd.config
    regions = {s.spec.region for s in fwd.registry.sites.values() if s.spec.region}
    regions |= {t.region for t in cfg.tenants.values() if t.region}
    if cfg.default_region:
        regions.add(cfg.default_region)
    return regions


def replica_targets(store: Any, models: set[str]) -> dict[str, dict[str, dict[str, int]]]:
    """``{model: {site: {accelerator: replicas}}}`` of the stored services named like a served model, whose
    targets are set (an unreadable store: none, so every backend stays in use)."""
    try:
        services = store.list_services(Principal.system())
    except GridShiftError as e:
        log.warning("cannot read the services' replica targets: %s", e)
        return {}
    return {s.name: s.replica_targets for s in services if s.name in models and s.replica_targets}


def refresh_grid(fwd: Any, store: Any, latency: Any = None) -> GridView:
    """Build a fresh :class:`GridView` and hand it to ``fwd`` (blocking: run it in a thread)."""
    now = utcnow()
    view = GridView()
    zones = {s.spec.zone for s in fwd.registry.sites.values()}
    for zone in zones:
        for signal, target in (("carbon_g_per_kwh", view.carbon_g_per_kwh),
                               ("price_usd_per_mwh", view.price_usd_per_mwh)):
            ahead = signal == "carbon_g_per_kwh"
            try:
                pts = store.signals_between(zone, signal, now - SIGNAL_LOOKBACK,
                                            now + (SIGNAL_AHEAD if ahead else timedelta(seconds=1)))
            except GridShiftError as e:
                log.warning("cannot read %s of %s: %s", signal, zone, e)
                continue
            past = [p for p in pts if p.at <= now + timedelta(seconds=1)]
            if past:
                target[zone] = float(past[-1].value)
            if ahead and pts:
                view.carbon_ahead[zone] = [(p.at.timestamp(), float(p.value)) for p in pts[max(0, len(past) - 1):]]
    try:
        events = store.grid_events(end_after=now)
    except GridShiftError as e:
        log.warning("cannot read grid events: %s", e)
        events = []
    for row in events:
        ev = row.event
        start, known = ev.start.timestamp(), ev.start.timestamp() - ev.notice_s
        if known > now.timestamp():
            continue
        into = view.events if start <= now.timestamp() else view.announced
        view.event_timing[ev.id] = (known, start, ev.respond_within_s)
        for site in fwd.registry.sites.values():
            if (ev.sites and site.name in ev.sites) or (ev.zone and ev.zone == site.spec.zone):
                into.setdefault(site.name, []).append((ev.id, ev.kind, ev.limit_mw))
    view.shed_stages = 1 + max((s.shed_order for s in fwd.config.slo.values()), default=0)
    view.targets = replica_targets(store, set(fwd.registry.models()))
    if latency is None and fwd.config.latency_ms is not None:
        latency = fwd.config.latency_ms
    if latency is None:
        latency = getattr(fwd, "_latency_matrix", None)
        if latency is None and _regions(fwd):
            try:
                from gridshift.data.network import load_latency_matrix

                latency = load_latency_matrix()
            except (GridShiftError, OSError) as e:
                log.warning("no latency matrix (%s): network latency counts as 0", e)
                latency = {}
            fwd._latency_matrix = latency
    view.rtt_ms = _rtt_table(latency, _regions(fwd))
    fwd.grid = view
    return view
