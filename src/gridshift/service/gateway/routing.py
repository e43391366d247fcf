"""Routing in two levels. Site: hard filters in a fixed order (the model is served by a healthy backend; the
tenant's data residency; no active grid event shedding the request's SLO class (ramped: see
:func:`admit_frac`); power headroom; the SLO is
feasible from the measured TTFT / inter-token latency plus the network round trip from the caller's region),
then a weighted score per SLO class over carbon intensity, price, headroom, queue and latency, each normalised
over the feasible sites (the distance from the best value over the largest magnitude: 0 = best), lower total
first. Within a site: power of two choices on the backends' load. :class:`RoutePlan` keeps every site's
figures and the filter that excluded it (the response headers and ``GET /gateway/route`` explain a decision
from it)."""

from __future__ import annotations

import bisect
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any

from gridshift.service.gateway.backends import Backend, Registry, Site
from gridshift.service.gateway.config import SCORE_TERMS, SloSpec


def value_at(points: list[tuple[float, float]], t: float) -> float | None:
    """The value in force at ``t``: the last point at or before it (points sorted by time)."""
    i = bisect.bisect_right(points, (t, math.inf))
    return points[i - 1][1] if i else None


FILTERS = ("model", "replicas", "residency", "grid_event", "power", "slo")
Targets = dict[str, dict[str, int]]  # one model's replica targets: {site: {accelerator type: replicas}}


@dataclass
class GridView:
    """The grid as the gateway sees it now: signals per zone, active events per site, the latency matrix."""

    carbon_g_per_kwh: dict[str, float] = field(default_factory=dict)
    price_usd_per_mwh: dict[str, float] = field(default_factory=dict)
    events: dict[str, list[tuple[str, str, float | None]]] = field(default_factory=dict)  # site: (id, kind, MW)
    rtt_ms: dict[tuple[str, str], float] = field(default_factory=dict)
    targets: dict[str, Targets] = field(default_factory=dict)  # model: the replica targets of its service
    announced: dict[str, list[tuple[str, str, float | None]]] = field(default_factory=dict)  # known, not begun
    event_timing: dict[str, tuple[float, float, float | None]] = field(default_factory=dict)  # id: known, start,
    # respond within s (UTC epoch s); an event without timing sheds at once
    shed_stages: int = 2  # 1 + the largest shed_order of the SLO classes
    carbon_ahead: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # zone: (UTC epoch s, g/kWh)
    # from the latest point at or before now to the horizon of the store's signals (deferrable requests)

    def carbon_at(self, zone: str, wall: float, default: float | None) -> float | None:
        """The zone's carbon intensity in force at ``wall`` (UTC epoch s): from its points ahead (so a
        forecast hour takes effect when it begins, not at the next refresh), else the latest, else ``default``."""
        pts = self.carbon_ahead.get(zone)
        v = value_at(pts, wall) if pts else None
        return v if v is not None else self.carbon_g_per_kwh.get(zone, default)

    def rtt(self, origin: str | None, dest: str | None) -> float | None:
        if origin is None or dest is None:
            return None
        return self.rtt_ms.get((origin, dest))


@dataclass
class SiteRoute:
    site: str
    excluded_by: str | None = None
    reason: str = ""
    carbon_g_per_kwh: float | None = None
    price_usd_per_mwh: float | None = None
    headroom_kw: float | None = None
    headroom_frac: float = 1.0
    admit_frac: float = 1.0  # share of the class's requests a shedding grid event still lets in
    queue: float = 0.0
    rtt_ms: float | None = None
    predicted_ttft_ms: float | None = None
    itl_ms: float | None = None
    terms: dict[str, float] = field(default_factory=dict)
    score: float | None = None

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        for k, v in list(d.items()):
            if isinstance(v, float):
                d[k] = round(v, 4) if math.isfinite(v) else None
        d["terms"] = {k: round(v, 4) for k, v in self.terms.items()}
        return d


@dataclass
class RoutePlan:
    model: str
    slo_class: str
    region: str | None
    weights: dict[str, float]
    sites: list[SiteRoute]
    order: list[str]

    def explain(self) -> dict[str, Any]:
        return {"model": self.model, "slo_class": self.slo_class, "region": self.region, "weights": self.weights,
                "order": self.order, "sites": [s.as_dict() for s in self.sites]}

    def exclusions(self) -> str:
        return "; ".join(f"{s.site}: {s.excluded_by} ({s.reason})" for s in self.sites if s.excluded_by)


def serving(site: Site, model: str, now: float, targets: Targets | None = None) -> list[Backend]:
    """The site's available backends for ``model``; with replica targets, only the first ``n`` of each
    accelerator type (in backend id order, so the same ones stay active; an unavailable one's place is
    taken by the next), the rest are on standby for this model."""
    bs = [b for b in site.backends if model in b.models and b.available(now)]
    if targets is None:
        return bs
    room = dict(targets.get(site.name, {}))
    out = []
    for b in sorted(bs, key=lambda x: x.id):
        if room.get(b.spec.accelerator, 0) > 0:
            room[b.spec.accelerator] -= 1
            out.append(b)
    return out


def admit_frac(elapsed_s: float, ramp_s: float, order: int) -> float:
    """Share of an SLO class's requests a site still takes ``elapsed_s`` after its shedding ramp began: all
    until the classes shed before it are out (``order`` × ``ramp_s``), then falling linearly to none over
    ``ramp_s`` (a ramp, not a cliff; ``ramp_s`` 0: none at once)."""
    if ramp_s <= 0:
        return 0.0 if elapsed_s >= 0 else 1.0
    return min(1.0, max(0.0, 1.0 - (elapsed_s - order * ramp_s) / ramp_s))


def event_admit_frac(timing: tuple[float, float, float | None] | None, ramp_s: float, stages: int, order: int,
                     wall: float) -> float:
    """:func:`admit_frac` for one event with ``timing`` (known at, start, respond within s; UTC epoch s):
    the site's ramp, shortened so that all ``stages`` fit an emergency's response time, begins so that the
    last stage ends at the event's start (or when the event became known, if that is later). No timing: 0."""
    if timing is None:
        return 0.0
    known, start, respond_s = timing
    if respond_s is not None:
        ramp_s = min(ramp_s, respond_s / stages)
    origin = max(known, start - stages * ramp_s)
    return admit_frac(wall - origin, ramp_s, order)


def _shed(site: Site, r: SiteRoute, slo_class: str, slo: SloSpec, grid: GridView, wall: float,
          rng: random.Random | None) -> tuple[str, str] | None:
    """The grid-event filter over the events in force or announced here that shed this class: the smallest
    admitted share; a request is let in with that probability (``rng``; without one, while any share is
    left: the explaining route). In-flight requests are never cut: they drain."""
    shedding = [e for e in grid.events.get(site.name, []) + grid.announced.get(site.name, [])
                if e[1] in slo.sheds_under]
    if not shedding:
        return None
    fracs = [(event_admit_frac(grid.event_timing.get(e[0]), site.spec.shed_ramp_s, grid.shed_stages,
                               slo.shed_order, wall), e) for e in shedding]
    r.admit_frac, (eid, kind, _) = min(fracs, key=lambda x: x[0])
    if r.admit_frac <= 0.0:
        return "grid_event", f"event '{eid}' ({kind}) sheds {slo_class}"
    if rng is not None and r.admit_frac < 1.0 and rng.random() >= r.admit_frac:
        return "grid_event", (f"event '{eid}' ({kind}) ramps {slo_class} down: {r.admit_frac:.0%} of requests "
                              "still admitted, not this one")
    return None


def _filter(site: Site, r: SiteRoute, model: str, slo_class: str, slo: SloSpec, region: str | None,
            residency: list[str] | None, grid: GridView, now: float, wall: float = 0.0,
            rng: random.Random | None = None) -> tuple[str, str] | None:
    spec = site.spec
    targets = grid.targets.get(model)
    backends = serving(site, model, now)
    if not backends:
        known = [b for b in site.backends if model in b.models]
        return "model", ("no backend serves it" if not known else f"{len(known)} backend(s) serve it, none healthy")
    if targets is not None:
        backends = serving(site, model, now, targets)
        if not backends:
            want = ", ".join(f"{k} x{v}" for k, v in targets.get(site.name, {}).items()) or "none for this site"
            types = ", ".join(sorted({b.spec.accelerator for b in site.backends if model in b.models}))
            return "replicas", f"replica targets {want}; its backends of the model are {types}"
    if residency is not None and spec.residency not in residency:
        return "residency", f"site in '{spec.residency}', tenant allows {', '.join(residency) or 'nothing'}"
    shed = _shed(site, r, slo_class, slo, grid, wall, rng)
    if shed is not None:
        return shed
    draw_kw = sum(b.estimated_power_w() for b in site.backends) / 1000.0
    caps = [spec.power_cap_kw] if spec.power_cap_kw is not None else []
    caps += [1000.0 * mw for _, _, mw in grid.events.get(site.name, []) if mw is not None]
    if caps:
        cap = min(caps)
        r.headroom_kw = cap - draw_kw
        r.headroom_frac = max(0.0, r.headroom_kw) / cap if cap > 0 else 0.0
        if r.headroom_kw <= 0:
            return "power", f"draw {draw_kw:.1f} kW at or over the cap {cap:.1f} kW"
    r.queue = min(b.load() / b.spec.max_running for b in backends)
    r.rtt_ms = grid.rtt(region, spec.region)
    ttfts = [t for t in (b.expected_ttft_ms(now) for b in backends) if t is not None]
    itls = [t for t in (b.expected_itl_ms(now) for b in backends) if t is not None]
    r.predicted_ttft_ms = (min(ttfts) if ttfts else 0.0) + (r.rtt_ms or 0.0)
    r.itl_ms = min(itls) if itls else None
    if slo.ttft_ms is not None and r.predicted_ttft_ms > slo.ttft_ms:
        return "slo", f"predicted TTFT {r.predicted_ttft_ms:.0f} ms (incl. {r.rtt_ms or 0:.0f} ms network) > {slo.ttft_ms:g} ms"
    if slo.itl_ms is not None and r.itl_ms is not None and r.itl_ms > slo.itl_ms:
        return "slo", f"inter-token latency {r.itl_ms:.0f} ms > {slo.itl_ms:g} ms"
    return None


def _normalise(values: list[float], higher_better: bool = False) -> list[float]:
    """Each value's distance from the best, over the largest magnitude: 0 for the best site, and a site twice
    as dirty as the cleanest is 0.5 away, whatever the other sites are (a tiny difference stays tiny)."""
    scale = max(abs(v) for v in values)
    if scale <= 1e-12:
        return [0.0] * len(values)
    best = max(values) if higher_better else min(values)
    return [abs(v - best) / scale for v in values]


def plan_route(registry: Registry, grid: GridView, model: str, slo_class: str, slo: SloSpec, *,
               region: str | None, residency: list[str] | None, now: float, wall: float | None = None,
               rng: random.Random | None = None) -> RoutePlan:
    """Filter every site, score the feasible ones, order them (best first). ``now``: monotonic seconds (the
    backends' clocks); ``wall``: UTC epoch seconds (grid events' ramps; default the time now); ``rng`` draws
    which requests a ramping site still takes (None: every one while any share is left)."""
    wall = time.time() if wall is None else wall
    routes: list[SiteRoute] = []
    for site in registry.sites.values():
        r = SiteRoute(site.name)
        r.carbon_g_per_kwh = grid.carbon_at(site.spec.zone, wall, site.spec.carbon_g_per_kwh)
        r.price_usd_per_mwh = grid.price_usd_per_mwh.get(site.spec.zone, site.spec.price_usd_per_mwh)
        out = _filter(site, r, model, slo_class, slo, region, residency, grid, now, wall, rng)
        if out is not None:
            r.excluded_by, r.reason = out
        routes.append(r)
    ok = [r for r in routes if r.excluded_by is None]
    if ok:
        raw = {
            "carbon": [r.carbon_g_per_kwh if r.carbon_g_per_kwh is not None else 0.0 for r in ok],
            "price": [r.price_usd_per_mwh if r.price_usd_per_mwh is not None else 0.0 for r in ok],
            "headroom": [r.headroom_frac for r in ok],
            "queue": [r.queue for r in ok],
            "latency": [r.predicted_ttft_ms or 0.0 for r in ok],
        }
        norm = {k: _normalise(v, higher_better=(k == "headroom")) for k, v in raw.items()}
        total_w = sum(slo.weights.get(t, 0.0) for t in SCORE_TERMS) or 1.0
        for i, r in enumerate(ok):
            r.terms = {t: norm[t][i] for t in SCORE_TERMS}
            r.score = sum(slo.weights.get(t, 0.0) * norm[t][i] for t in SCORE_TERMS) / total_w
    order = [r.site for r in sorted(ok, key=lambda r: (r.score, r.site))]
    return RoutePlan(model, slo_class, region, dict(slo.weights), routes, order)


def pick_backend(site: Site, model: str, now: float, exclude: set[str], rng: random.Random,
                 targets: Targets | None = None) -> Backend | None:
    """Power of two choices: two backends at random, the one with less load (ties: fewer in flight)."""
    cands = [b for b in serving(site, model, now, targets) if b.id not in exclude]
    if not cands:
        return None
    if len(cands) == 1:
        return cands[0]
    a, b = rng.sample(cands, 2)
    return min((a, b), key=lambda x: (x.load() / x.spec.max_running, x.inflight))
