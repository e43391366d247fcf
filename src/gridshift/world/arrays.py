"""The numeric world a simulation runs in: fleet, jobs, services and grid signals as arrays.

Built once from a validated scenario by :func:`gridshift.world.build.assemble`; the engine and every policy
read it. Pools are indexed ``p`` (one accelerator type at one site), sites ``s``, zones ``z``, types ``k``,
slots ``t``. Signals carry ``lookback_slots`` of history before slot 0 so rolling statistics and forecasts
have data from the first slot on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from gridshift.model.time import slot_hours
from gridshift.model.workload import JobTable
from gridshift.world.events import EventArrays


@dataclass(frozen=True)
class Fleet:
    site_names: tuple[str, ...]
    site_zone: np.ndarray  # int [S] index into Signals.zone_ids
    site_region: tuple[str | None, ...]
    pue: np.ndarray  # float [S]
    power_cap_mw: np.ndarray  # float [S, T] facility limit per slot
    pool_site: np.ndarray  # int [P]
    pool_type: np.ndarray  # int [P]
    pool_count: np.ndarray  # int [P]
    type_names: tuple[str, ...]
    board_power_w: np.ndarray  # float [K]
    idle_power_w: np.ndarray  # float [K]
    host_power_w: np.ndarray  # float [K]
    cap_curve_power_frac: tuple[np.ndarray, ...]  # per type, curve x
    cap_curve_throughput_frac: tuple[np.ndarray, ...]  # per type, curve y

    @property
    def n_sites(self) -> int:
        return len(self.site_names)

    @property
    def n_pools(self) -> int:
        return int(self.pool_site.shape[0])

    def min_cap_frac(self) -> np.ndarray:
        """Lowest power-cap fraction per pool."""
        return np.array([x[0] for x in self.cap_curve_power_frac])[self.pool_type]

    def throughput_frac(self, pool_cap_frac: np.ndarray) -> np.ndarray:
        """Throughput kept per pool at the given power-cap fraction per pool (one interpolation per type)."""
        out = np.empty(self.n_pools)
        cap = np.asarray(pool_cap_frac, np.float64)
        for k in np.unique(self.pool_type):
            sel = self.pool_type == k
            xs, ys = self.cap_curve_power_frac[k], self.cap_curve_throughput_frac[k]
            out[sel] = np.interp(np.minimum(np.maximum(cap[sel], xs[0]), 1.0), xs, ys)
        return out


@dataclass(frozen=True)
class Signals:
    """Actual grid signals per zone and slot, with history before slot 0."""

    zone_ids: tuple[str, ...]
    slot_starts: pd.DatetimeIndex  # UTC, length T (the simulated slots only)
    slot_duration_s: int
    lookback_slots: int
    carbon_g_per_kwh: np.ndarray  # [Z, L + T]
    price_usd_per_mwh: np.ndarray  # [Z, L + T]
    clean_frac: np.ndarray  # [Z, L + T]

    @property
    def n_slots(self) -> int:
        return len(self.slot_starts)

    def at(self, name: str, t: int) -> np.ndarray:
        """Value of signal ``name`` for every zone in simulated slot ``t``."""
        return getattr(self, name)[:, self.lookback_slots + t]

    def history(self, name: str, t: int) -> np.ndarray:
        """Signal ``name`` for every zone from the start of the lookback up to and including slot ``t``."""
        return getattr(self, name)[:, : self.lookback_slots + t + 1]


@dataclass(frozen=True)
class ServiceArrays:
    """Online inference services, padded to a common number of user regions."""

    names: tuple[str, ...]
    regions: tuple[tuple[str, ...], ...]
    demand_rps: np.ndarray  # [N, R, T] (0 where a service has fewer regions)
    capacity_rps: np.ndarray  # [N, K] per accelerator at the SLO (0 = type cannot serve)
    power_w: np.ndarray  # [N, K] board power of a replica at that capacity
    allowed: np.ndarray  # bool [N, R, S] site may serve region within the latency SLO
    rtt_ms: np.ndarray  # [N, R, S] round-trip time, inf if unknown
    headroom_frac: np.ndarray  # [N]
    tier: np.ndarray | None = None  # int [N] flexibility tier in grid events (None: all tier 1)

    @property
    def n(self) -> int:
        return len(self.names)

    @staticmethod
    def empty(n_types: int, n_sites: int, n_slots: int) -> ServiceArrays:
        return ServiceArrays((), (), np.zeros((0, 0, n_slots)), np.zeros((0, n_types)), np.zeros((0, n_types)),
                             np.zeros((0, 0, n_sites), bool), np.zeros((0, 0, n_sites)), np.zeros(0))


@dataclass(frozen=True)
class World:
    fleet: Fleet
    jobs: JobTable
    services: ServiceArrays
    slot_duration_s: int
    n_slots: int
    slot_starts: pd.DatetimeIndex
    # first slot a job may run: the slot that contains its arrival (it runs from its arrival to the second)
    arrival_slot: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    events: EventArrays | None = None  # grid power requests
    event_cap_mw: np.ndarray | None = None  # [S, T] site limit from grid events (inf where none)
    event_known_slot: np.ndarray | None = None  # [S, T] first slot at which a planner knows that limit

    @property
    def slot_h(self) -> float:
        return slot_hours(self.slot_duration_s)

    def sites_under_event(self, t: int) -> np.ndarray | None:
        """bool [S]: sites with a grid-event limit in slot t that is known by then (None without events)."""
        if self.event_cap_mw is None or t >= self.n_slots:
            return None
        return np.isfinite(self.event_cap_mw[:, t]) & (self.event_known_slot[:, t] <= t)

    def site_cap_mw(self, t: int, t0: int, n: int, *, oracle: bool = False) -> np.ndarray:
        """[S, n] facility limit per site for slots t0 … t0+n−1 as known at the start of slot ``t``: the
        contractual cap, lowered by every grid event issued by then (``oracle``: by every event)."""
        base = self.fleet.power_cap_mw[:, t0: t0 + n]
        if self.event_cap_mw is None:
            return base
        ev = self.event_cap_mw[:, t0: t0 + n]
        if not oracle:
            ev = np.where(self.event_known_slot[:, t0: t0 + n] <= t, ev, np.inf)
        return np.minimum(base, ev)

    @staticmethod
    def build(fleet: Fleet, jobs: JobTable, services: ServiceArrays, slot_duration_s: int,
              slot_starts: pd.DatetimeIndex, events: EventArrays | None = None) -> World:
        arrival_slot = np.floor(jobs.arrival_s / slot_duration_s + 1e-9).astype(np.int64)
        cap = known = None
        if events is not None:
            nameplate = np.bincount(fleet.pool_site, minlength=fleet.n_sites, weights=fleet.pool_count * (
                fleet.board_power_w[fleet.pool_type] + fleet.host_power_w[fleet.pool_type])) * fleet.pue / 1e6
            cap, known = events.planning_caps(nameplate, slot_duration_s, len(slot_starts))
        return World(fleet, jobs, services, slot_duration_s, len(slot_starts), slot_starts, arrival_slot,
                     events, cap, known)
