"""Grid events as arrays for the simulator and the planners.

Power requests (limit, cut, emergency) become, per event, the sites it covers, its target facility draw
(summed over those sites), its window and when it is issued. For the planners each event is also a site
power limit per slot, known from the slot after it is issued: a region-wide target is split among its
sites in proportion to their nameplate facility power (the minute-level response then sheds wherever it is
cheapest within the region). The planners see the limit in the slot where the event starts and in every
slot it covers for at least half of the slot; an event that ends earlier inside a slot is held there by the
minute-level response alone, which releases it at the minute it ends. The rebound hold after an event
(``rebound_s``: the draw stays at or below its pre-event level) is a limit at the event's baseline in the
slots it covers for at least half of the slot; the minute-level response holds the measured pre-event
draw within every slot it touches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from gridshift.errors import ScenarioError
from gridshift.model.events import DemandResponse, GridEvent


@dataclass(frozen=True)
class EventArrays:
    ids: tuple[str, ...]
    kind: tuple[str, ...]
    site_mask: np.ndarray  # bool [E, S]
    target_mw: np.ndarray  # [E] facility MW allowed, summed over the event's sites
    baseline_mw: np.ndarray  # [E] stated baseline, nan if none
    start_s: np.ndarray  # [E] seconds since the scenario start
    end_s: np.ndarray  # [E]
    issued_s: np.ndarray  # [E]
    respond_within_s: np.ndarray  # [E] nan unless an emergency
    ramp_mw_per_min: np.ndarray  # [E] summed over the sites; inf if any site has no limit
    margin_frac: float = 0.0
    rebound_s: np.ndarray | None = None  # [E] after the end, the draw stays at or below its pre-event level
    baseline_hours_before_notice: float = 1.0
    baseline_x_of_y: tuple[int, int] = (4, 5)
    counterfactual: bool = True
    baseline_rule: tuple[str, ...] | None = None  # [E] 'stated', 'before_notice' or 'x_of_y'
    cut_frac: np.ndarray | None = None  # [E] nan unless a cut by share
    cut_mw: np.ndarray | None = None  # [E] nan unless a cut in MW
    measured_baseline_mw: np.ndarray | None = None  # [E] the measured baseline the target was set from, nan if none

    def target_baseline_mw(self, e: int) -> float:
        """The baseline event ``e``'s target is measured from: the measured one if set, else the stated."""
        m = np.nan if self.measured_baseline_mw is None else self.measured_baseline_mw[e]
        return float(m if np.isfinite(m) else self.baseline_mw[e])

    @property
    def n(self) -> int:
        return len(self.ids)

    def planning_caps(self, nameplate_mw: np.ndarray, slot_s: int, n_slots: int) -> tuple[np.ndarray, np.ndarray]:
        """(cap_mw [S, T], known_slot [S, T]): each site's event limit per slot (inf where none) and the first
        slot at whose start a planner knows it."""
        S = self.site_mask.shape[1]
        cap = np.full((S, n_slots), np.inf)
        known = np.zeros((S, n_slots), np.int64)
        for e in range(self.n):
            t0 = int(np.floor(self.start_s[e] / slot_s))
            t1 = max(int(np.floor(self.end_s[e] / slot_s + 0.5)), t0 + 1)  # the last slot if it covers half of it
            k = int(np.ceil(self.issued_s[e] / slot_s - 1e-9))
            sites = np.flatnonzero(self.site_mask[e])
            share = nameplate_mw[sites] / max(float(nameplate_mw[sites].sum()), 1e-12)
            # the rebound hold: at or below the baseline, in the slots it covers for at least half of the slot
            rb = 0.0 if self.rebound_s is None else float(self.rebound_s[e])
            base = self.target_baseline_mw(e)
            r1 = max(int(np.floor((self.end_s[e] + rb) / slot_s + 0.5)), t1) if np.isfinite(base) else t1
            for s, w in zip(sites, share):
                lim = self.target_mw[e] * w
                cap[s, t0:t1] = np.minimum(cap[s, t0:t1], lim)
                cap[s, t1:r1] = np.minimum(cap[s, t1:r1], max(base, self.target_mw[e]) * w)
                known[s, t0:r1] = np.maximum(known[s, t0:r1], k)
        return cap, known


def build_events(events: list[GridEvent], *, start: pd.Timestamp, site_names: tuple[str, ...],
                 site_zones: tuple[str, ...], site_ramp_mw_per_min: tuple[float | None, ...],
                 margin_frac: float, response: DemandResponse | None = None) -> EventArrays | None:
    power = [e for e in events if e.is_power_request]
    if not power:
        return None
    r = response or DemandResponse()
    S = len(site_names)
    mask = np.zeros((len(power), S), bool)
    for i, e in enumerate(power):
        if e.sites is not None:
            mask[i, [site_names.index(s) for s in e.sites]] = True
        else:
            mask[i] = np.array([z == e.zone for z in site_zones])
    t0 = pd.Timestamp(start)
    sec = lambda d: (pd.Timestamp(d) - t0).total_seconds()  # noqa: E731
    for i, e in enumerate(power):
        if e.baseline != "stated" and e.baseline_mw is None and sec(e.issued_at) <= 0:
            raise ScenarioError(f"event '{e.id}': a measured baseline needs simulated draw before the event is "
                                "issued (it is issued at or before the start); give baseline_mw as well",
                                field=f"events[{i}].baseline")
    ramp = np.array([np.inf if any(site_ramp_mw_per_min[s] is None for s in np.flatnonzero(m))
                     else sum(site_ramp_mw_per_min[s] for s in np.flatnonzero(m)) for m in mask])
    return EventArrays(
        ids=tuple(e.id for e in power), kind=tuple(e.kind for e in power), site_mask=mask,
        target_mw=np.array([e.target_mw() for e in power]),
        baseline_mw=np.array([np.nan if e.baseline_mw is None else e.baseline_mw for e in power]),
        start_s=np.array([sec(e.start) for e in power]), end_s=np.array([sec(e.end) for e in power]),
        issued_s=np.array([sec(e.issued_at) for e in power]),
        respond_within_s=np.array([np.nan if e.respond_within_s is None else e.respond_within_s for e in power]),
        ramp_mw_per_min=ramp, margin_frac=margin_frac,
        rebound_s=np.array([r.rebound_s if e.rebound_s is None else e.rebound_s for e in power]),
        baseline_hours_before_notice=r.baseline_hours_before_notice, baseline_x_of_y=tuple(r.baseline_x_of_y),
        counterfactual=r.counterfactual, baseline_rule=tuple(e.baseline for e in power),
        cut_frac=np.array([np.nan if e.cut_frac is None else e.cut_frac for e in power]),
        cut_mw=np.array([np.nan if e.cut_mw is None else e.cut_mw for e in power]))


def apply_signal_events(events: list[GridEvent], *, start: pd.Timestamp, slot_s: int, lookback: int,
                        zone_ids: tuple[str, ...], site_names: tuple[str, ...], site_zones: tuple[str, ...],
                        carbon: np.ndarray, price: np.ndarray) -> None:
    """Price and carbon events replace the signal of the event's zone(s) in every slot they overlap
    (in place; arrays are [Z, L + T])."""
    t0 = pd.Timestamp(start)
    for e in events:
        if e.kind not in ("price", "carbon"):
            continue
        zones = {e.zone} if e.zone is not None else {site_zones[site_names.index(s)] for s in e.sites}
        a = int(np.floor((pd.Timestamp(e.start) - t0).total_seconds() / slot_s)) + lookback
        b = int(np.ceil((pd.Timestamp(e.end) - t0).total_seconds() / slot_s)) + lookback
        for z in zones:
            zi = zone_ids.index(z)
            if e.kind == "price":
                price[zi, a:b] = e.price_usd_per_mwh
            else:
                carbon[zi, a:b] = e.carbon_g_per_kwh
