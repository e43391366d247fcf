"""Single deferrable requests: an offline-class chat or completion request (``service_tier: "flex"``, or the
``X-GridShift-SLO: offline`` header, or the tenant's default) that carries a completion deadline,
``X-GridShift-Deadline-S: <seconds from now>``, is held by the gateway and sent on at the time the grid
favours within that deadline — the single-request counterpart of the Batch API's deferral.

The favoured time: the carbon intensity the gateway's grid view holds for the zones of the sites serving the
model, from now on (the store's signals ahead: what ``gridshift serve`` pulls or forecasts pushed to it; a zone
without points counts at its site's configured intensity), over the first ``1 − RESERVE_FRAC`` of the window
(at least ``MIN_RESERVE_S`` is kept to run the request): the earliest moment whose cleanest site is cleanest.
The choice is made again every ``POLL_S`` while the request waits, so a new forecast moves it, never past the
latest release fixed on arrival. A caller that hangs up while held is dropped without reaching a backend.
The caller's connection stays open while the request is held (OpenAI's advice for ``flex`` is a client
timeout of 15 minutes); held requests live in the gateway's memory, so a restart ends them with a
connection error the caller retries. At most ``MAX_HELD`` are held at once; past that a request is sent at
once (its deadline is still kept)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from gridshift.service.gateway.errors import GatewayError
from gridshift.service.gateway.routing import value_at

DEADLINE_HEADER = "X-GridShift-Deadline-S"
MAX_DEADLINE_S = 7 * 24 * 3600.0
RESERVE_FRAC = 0.25
MIN_RESERVE_S = 1.0
POLL_S = 1.0
MAX_HELD = 10_000


def parse_deadline(value: str | None, slo_class: str) -> float | None:
    """Seconds from now within which the answer is due (None: not deferrable); a bad value is a 400."""
    if value is None:
        return None
    try:
        s = float(value)
    except ValueError:
        s = float("nan")
    if not 0 < s <= MAX_DEADLINE_S:
        raise GatewayError(400, f"{DEADLINE_HEADER} must be seconds from now, above 0 and at most "
                                f"{MAX_DEADLINE_S:g}; got '{value[:40]}'", param=DEADLINE_HEADER, code="invalid_value")
    if slo_class != "offline":
        raise GatewayError(400, f"{DEADLINE_HEADER} defers a request, which only the offline class may be "
                                "(service_tier 'flex' or X-GridShift-SLO: offline)", param=DEADLINE_HEADER,
                           code="invalid_value")
    return s


def latest_release(arrived: float, deadline_s: float) -> float:
    """The latest moment (epoch s) a request due ``deadline_s`` after ``arrived`` may still be sent."""
    return arrived + deadline_s - max(MIN_RESERVE_S, RESERVE_FRAC * deadline_s)


def release_time(series: list[list[tuple[float, float]]], now: float, latest: float) -> tuple[float, float | None]:
    """(when to send, the cleanest intensity then) over ``series`` (per zone: (epoch s, g/kWh) sorted), from
    ``now`` to ``latest``: the earliest moment whose cleanest zone is cleanest; ``now`` without any value."""
    candidates = {now} | {t for pts in series for t, _ in pts if now < t <= latest}
    best_t, best_v = now, None
    for t in sorted(candidates):
        vals = [v for v in (value_at(pts, t) for pts in series) if v is not None]
        if vals and (best_v is None or min(vals) < best_v - 1e-9):
            best_t, best_v = t, min(vals)
    return best_t, best_v


def zone_series(fwd: Any, model: str) -> list[list[tuple[float, float]]]:
    """Per site serving ``model``: its zone's carbon points ahead in the grid view, else its configured value."""
    out = []
    for site in fwd.registry.sites.values():
        if not any(model in b.models for b in site.backends):
            continue
        pts = fwd.grid.carbon_ahead.get(site.spec.zone)
        if pts:
            out.append(pts)
        elif site.spec.carbon_g_per_kwh is not None:
            out.append([(0.0, float(site.spec.carbon_g_per_kwh))])
    return out


@dataclass
class Held:
    seconds: float
    reason: str


class Gone(Exception):
    """The caller hung up while its request was held."""


class Holder:
    """Holds deferrable requests until their release; ``held`` is how many wait now."""

    def __init__(self) -> None:
        self.held = 0
        self.released = 0
        self.dropped = 0

    async def hold(self, fwd: Any, model: str, arrived: float, deadline_s: float,
                   is_gone: Callable[[], Awaitable[bool]] | None = None,
                   clock: Callable[[], float] = time.time) -> Held:
        """Wait until the favoured time (see the module's text); raise :class:`Gone` if the caller left."""
        latest = latest_release(arrived, deadline_s)
        if self.held >= MAX_HELD:
            return Held(0.0, f"sent at once: {self.held} requests already held")
        self.held += 1
        try:
            while True:
                now = clock()
                at, value = release_time(zone_series(fwd, model), now, latest)
                if at <= now:
                    break
                await asyncio.sleep(min(POLL_S, at - now))
                if is_gone is not None and await is_gone():
                    self.dropped += 1
                    raise Gone
        finally:
            self.held -= 1
        self.released += 1
        seconds = max(0.0, clock() - arrived)
        if value is None:
            return Held(seconds, "no carbon signals: sent at once")
        return Held(seconds, f"sent at the cleanest moment within the deadline: {value:.0f} g/kWh at the "
                             "cleanest site serving the model")
