"""``asap``: the carbon-agnostic baseline. Every job runs as soon as accelerators and site power allow,
placed by first fit over pools in scenario order; running jobs stay where they are."""

from __future__ import annotations

import numpy as np

from gridshift.plan.base import Decision, Observation, Policy
from gridshift.plan.event_tiers import NextEventBudget
from gridshift.plan.placement import (
    PlacementState,
    first_fit_jobs,
    keep_running,
    place_fixed,
    priority_order,
)


def home_ok(obs: Observation, jobs: np.ndarray, pool_site: np.ndarray) -> np.ndarray:
    """Mask [len(jobs), P]: may the job run on pool p? Jobs that are not migratable stay at the site where
    they first ran."""
    w = obs.world
    last = obs.last_pool[jobs]
    home = np.where(last >= 0, w.fleet.pool_site[np.maximum(last, 0)], -1)
    free_to_move = w.jobs.migratable[jobs] | (home < 0)
    return free_to_move[:, None] | (home[:, None] == pool_site[None, :])


def place(obs: Observation, st: PlacementState, waiting_allowed, pool_order: np.ndarray,
          keep: np.ndarray, first: np.ndarray | None = None) -> Decision:
    """Shared slot recipe: pinned non-interruptible jobs, service replicas, running jobs in ``keep`` that
    still fit, then first fit of waiting jobs; ``waiting_allowed(jobs, p)`` filters the waiting jobs that
    may start on pool p; jobs flagged in ``first`` (a mask over all jobs) go ahead of the others."""
    active = obs.active
    running, is_rigid, reps = place_fixed(st, obs)
    budget = NextEventBudget(obs, st, reps)  # before a known event: what new work would pin during it

    placed = np.zeros(len(obs.world.jobs), bool)  # jobs placed so far in this slot

    def mark() -> None:
        for js in st.jobs[n_marked[0]:]:
            placed[js] = True
        n_marked[0] = len(st.jobs)

    n_marked = [0]

    def fill(order: np.ndarray) -> None:
        for p in pool_order:
            cand = budget.admit(order[waiting_allowed(order, int(p))], int(p))
            if cand.size:
                n_before = len(st.jobs)
                first_fit_jobs(st, obs, cand, np.array([p]))
                if len(st.jobs) > n_before:
                    mark()
                    order = order[~placed[order]]

    def waiting() -> np.ndarray:
        mark()
        return priority_order(obs, active[~placed[active]], first)

    under = obs.world.sites_under_event(obs.t)
    if st.enforce_power and under is not None and under.any():  # under an event tier 0 starts before others
        w = waiting()
        fill(w[(obs.world.jobs.tier[w] == 0) & (obs.running_pool[w] < 0)])
    flexible = np.intersect1d(running[~is_rigid], keep)
    keep_running(st, obs, priority_order(obs, flexible, first), force=False)
    fill(waiting())
    idx, pool, gang = st.result()
    return Decision(idx, pool, gang, st.cap, reps)


class Asap(Policy):
    """``respect_power_cap=False`` gives the naive baseline that starts work whenever accelerators are free,
    whatever the site's power cap."""

    name = "asap"

    def __init__(self, respect_power_cap: bool = True) -> None:
        super().__init__(respect_power_cap=respect_power_cap)
        self.respect_power_cap = respect_power_cap

    def decide(self, obs: Observation) -> Decision:
        st = PlacementState(obs, enforce_power=self.respect_power_cap)
        pool_site = obs.world.fleet.pool_site

        def allowed(jobs: np.ndarray, p: int) -> np.ndarray:
            return home_ok(obs, jobs, pool_site[p : p + 1])[:, 0]

        return place(obs, st, allowed, np.arange(obs.world.fleet.n_pools), keep=obs.active)
