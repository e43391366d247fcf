"""``las``: heterogeneity-aware least attained service (Gavel's policy) as a fleet-simulator policy.

Each slot is one round of Gavel's mechanism (Narayanan et al., OSDI 2020; :mod:`gridshift.plan.allocation`):

1. non-interruptible running work stays where it is, and inference services get their replicas first (as
   every policy here does);
2. the other active jobs share what is left by the max-min-fairness LP of
   :func:`gridshift.plan.allocation.policies.allocate` over time fractions per job and pool: one row per gang
   size the job may use (``gang_min``, ``gang_max`` and the powers of two between), throughput ``gang x
   speed`` on the pool's accelerator type (reference accelerator-hours per hour), the pool's free
   accelerators, each site's power headroom for the slot (cap, grid-event limits included, minus idle
   load), and with ``carbon_weight > 0`` the carbon rate at each site's current intensity;
3. :func:`gridshift.plan.allocation.rounds.place_round` turns the fractions into whole placements: priority =
   allocation / time received since the allocation was computed, deficits, stickiness for the pool a job
   ran on, backfill of idle accelerators.

The allocation is re-solved when the set of jobs to share changes and every ``resolve_every_h`` hours
(power caps and intensity move); between solves the priorities make each job's time on each pool converge
to its fraction. ``aware=False`` solves the heterogeneity-agnostic variant (every type alike). Jobs that
are not migratable stay at the site where they first ran. The policy keeps the time each job received
between slots, so it is for whole runs (``gridshift simulate``), not the live reconciler, which builds a
fresh policy each pass. No I/O.
"""

from __future__ import annotations

import numpy as np

from gridshift.errors import PlanError
from gridshift.model.time import slot_hours
from gridshift.plan.allocation.policies import allocate
from gridshift.plan.allocation.problem import AllocationProblem
from gridshift.plan.allocation.rounds import RoundInputs, per_pool, place_round
from gridshift.plan.asap import home_ok
from gridshift.plan.base import Decision, Observation, Policy
from gridshift.plan.placement import PlacementState, place_fixed
from gridshift.world.arrays import Signals, World


def gang_variants(gang_min: np.ndarray, gang_max: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(job position, gang) of every variant, by job then gang: ``gang_min``, ``gang_max`` and the powers
    of two between."""
    lo, hi = np.asarray(gang_min, np.int64), np.asarray(gang_max, np.int64)
    idx = np.arange(lo.size)
    pos, gangs = [idx, idx[hi != lo]], [lo, hi[hi != lo]]
    for k in range(int(np.log2(max(int(hi.max(initial=1)), 1))) + 1):
        between = (lo < (1 << k)) & ((1 << k) < hi)
        pos.append(idx[between])
        gangs.append(np.full(int(between.sum()), 1 << k, np.int64))
    pos_a, gang_a = np.concatenate(pos), np.concatenate(gangs)
    o = np.lexsort((gang_a, pos_a))
    return pos_a[o], gang_a[o]


def _headroom_w(st: PlacementState) -> np.ndarray:
    """[S] power jobs may still add at each site this slot, W (inf where a site has no cap)."""
    return np.maximum(st.headroom_mw, 0.0) * 1e6


class LeastAttainedService(Policy):
    """Gavel's least-attained-service policy on the fleet's pools, under each site's power cap."""

    name = "las"

    def __init__(self, aware: bool = True, carbon_weight: float = 0.0, stickiness: float = 1.2,
                 resolve_every_h: float = 1.0) -> None:
        if not 0.0 <= float(carbon_weight) <= 1.0:
            raise PlanError(f"carbon_weight must be in [0, 1], got {carbon_weight}", field="params.carbon_weight")
        if not float(stickiness) >= 1.0:
            raise PlanError(f"stickiness must be >= 1, got {stickiness}", field="params.stickiness")
        if not float(resolve_every_h) > 0:
            raise PlanError(f"resolve_every_h must be > 0, got {resolve_every_h}", field="params.resolve_every_h")
        super().__init__(aware=aware, carbon_weight=carbon_weight, stickiness=stickiness,
                         resolve_every_h=resolve_every_h)
        self.aware = bool(aware)
        self.carbon_weight = float(carbon_weight)
        self.stickiness = float(stickiness)
        self.resolve_every_h = float(resolve_every_h)
        self.solves = 0

    def reset(self, world: World, signals: Signals) -> None:
        super().reset(world, signals)
        self._jobs: np.ndarray = np.zeros(0, np.int64)  # jobs the current allocation shares among
        self._solved_t = -1
        self._x = self._g = self._thr = np.zeros((0, world.fleet.n_pools))
        self._run_s = np.zeros((0, world.fleet.n_pools))
        self._since_s = 0.0
        self.solves = 0

    # --------------------------------------------------------------------------------------- decide
    def decide(self, obs: Observation) -> Decision:
        st = PlacementState(obs)
        active = obs.active
        _, _, reps = place_fixed(st, obs)
        placed = np.concatenate(st.jobs) if st.jobs else np.zeros(0, np.int64)
        share = np.sort(active[~np.isin(active, placed)])
        if share.size:
            self._allocate(obs, st, share)
            pool_of = self._round(obs, st, share)
            for p in np.unique(pool_of[pool_of >= 0]):
                sel = np.flatnonzero(pool_of == p)
                st.place_jobs(share[sel], int(p), self._g[sel, p].astype(np.int64))
        idx, pool, gang = st.result()
        return Decision(idx, pool, gang, st.cap, reps)

    def _allocate(self, obs: Observation, st: PlacementState, share: np.ndarray) -> None:
        slot_h = slot_hours(obs.world.slot_duration_s)
        stale = self._solved_t < 0 or (obs.t - self._solved_t) * slot_h >= self.resolve_every_h - 1e-9
        if not stale and np.array_equal(share, self._jobs):
            return
        w, f = obs.world, obs.world.fleet
        jt = w.jobs
        pos, gang = gang_variants(jt.gang_min[share], jt.gang_max[share])
        spd = jt.speed[share[pos]][:, f.pool_type]  # [R, P] reference acc-h per accelerator-hour
        ok = (spd > 0) & (gang[:, None] <= st.free[None, :]) & home_ok(obs, share[pos], f.pool_site)
        thr = np.where(ok, gang[:, None] * spd, 0.0)
        zone = f.site_zone[f.pool_site]
        prob = AllocationProblem(
            throughput=thr, gang=gang, job_of_row=pos, count=st.free.astype(float),
            remaining_steps=obs.remaining_acc_h[share], pool_site=f.pool_site, cap_w=_headroom_w(st),
            power_w=gang[:, None] * st.inc_mw[None, :] * 1e6,
            carbon_g_per_kwh=obs.signals.at("carbon_g_per_kwh", obs.t)[zone],
            carbon_weight=self.carbon_weight)
        alloc = allocate("max-min-fairness", prob, aware=self.aware)
        self.solves += 1
        self._x, self._g, self._thr = per_pool(pos, gang, thr, alloc.x, share.size, jt.gang_min[share])
        self._jobs, self._solved_t = share.copy(), obs.t
        self._run_s = np.zeros_like(self._x)
        self._since_s = 0.0

    def _round(self, obs: Observation, st: PlacementState, share: np.ndarray) -> np.ndarray:
        f = obs.world.fleet
        recv = self._run_s / self._since_s if self._since_s > 0 else np.zeros_like(self._run_s)
        inp = RoundInputs(alloc=self._x, gang=self._g.astype(np.int64), throughput=self._thr, received_frac=recv,
                          deficit_s=self._x * self._since_s - self._run_s, incumbent=obs.running_pool[share],
                          free=st.free.copy(), pool_site=f.pool_site,
                          site_headroom_w=_headroom_w(st),
                          power_w=self._g * st.inc_mw[None, :] * 1e6)
        pool_of = place_round(inp, stickiness=self.stickiness, backfill=True, aware=self.aware)
        slot_s = float(obs.world.slot_duration_s)
        ran = np.flatnonzero(pool_of >= 0)
        self._run_s[ran, pool_of[ran]] += slot_s
        self._since_s += slot_s
        return pool_of
