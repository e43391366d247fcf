"""``threshold``: carbon-aware deferral. Deferrable work starts (or keeps running) only at sites whose
current carbon intensity is at or below a rolling percentile of that zone's recent history, and only
within its flexibility window: a job whose latest start time has come runs anywhere. Pools are tried
in order of carbon per unit of work (intensity × PUE × power / speed), and a job only goes where it can
still meet its deadline. (After the suspend-resume threshold policies of Wiesner et al., "Let's Wait Awhile",
Middleware 2021, and Hanafy et al., GAIA, ASPLOS 2024.)

Parameters: ``percentile`` (default 30), ``window_h`` of history (default 168), ``max_delay_h`` for jobs
without a deadline (default 24), ``suspend`` running interruptible work at non-green sites (default True).
"""

from __future__ import annotations

import numpy as np

from gridshift.errors import PlanError
from gridshift.model.time import S_PER_H
from gridshift.plan.asap import home_ok, place
from gridshift.plan.base import Decision, Observation, Policy
from gridshift.plan.placement import PlacementState, latest_start_passed


class Threshold(Policy):
    name = "threshold"

    def __init__(self, percentile: float = 30.0, window_h: float = 168.0, max_delay_h: float = 24.0,
                 suspend: bool = True) -> None:
        if not 0 <= percentile <= 100:
            raise PlanError("percentile must be within [0, 100]", field="policies.threshold.percentile")
        if window_h <= 0 or max_delay_h < 0:
            raise PlanError("window_h must be > 0 and max_delay_h >= 0", field="policies.threshold")
        super().__init__(percentile=percentile, window_h=window_h, max_delay_h=max_delay_h, suspend=suspend)
        self.percentile, self.window_h, self.max_delay_h, self.suspend = percentile, window_h, max_delay_h, suspend

    def green_sites(self, obs: Observation) -> tuple[np.ndarray, np.ndarray]:
        """(green mask per site, current intensity per site)."""
        f = obs.world.fleet
        n = max(1, int(round(self.window_h * S_PER_H / obs.world.slot_duration_s)))
        hist = obs.signals.history("carbon_g_per_kwh", obs.t)[:, -n:]
        thresh = np.percentile(hist, self.percentile, axis=1)
        now = obs.signals.at("carbon_g_per_kwh", obs.t)
        return (now <= thresh)[f.site_zone], now[f.site_zone]

    def urgent(self, obs: Observation, jobs: np.ndarray) -> np.ndarray:
        return latest_start_passed(obs, jobs, self.max_delay_h)

    def pool_order(self, obs: Observation, site_ci: np.ndarray) -> np.ndarray:
        """Pools by carbon per unit of work right now: intensity × PUE × (board + host power) / the mean
        speed of the active jobs on that accelerator type (greenest work first)."""
        f = obs.world.fleet
        k = f.pool_type
        sp = obs.world.jobs.speed[obs.active].mean(axis=0) if obs.active.size else np.ones(len(f.type_names))
        per_work = site_ci[f.pool_site] * f.pue[f.pool_site] * (f.board_power_w[k] + f.host_power_w[k])
        return np.argsort(per_work / np.maximum(sp[k], 1e-9), kind="stable")

    def in_time(self, obs: Observation, jobs: np.ndarray) -> np.ndarray:
        """[len(jobs), P]: would the job, started now on pool p at full gang, meet its deadline?"""
        w = obs.world
        j = w.jobs
        sp = j.speed[jobs][:, w.fleet.pool_type]
        rate = j.gang_max[jobs, None] * sp
        run_s = obs.remaining_acc_h[jobs, None] / np.maximum(rate, 1e-12) * S_PER_H
        run_s += np.where(obs.has_started[jobs], j.restart_overhead_s[jobs], 0.0)[:, None]
        return (sp > 0) & (obs.now_s + run_s <= j.deadline_s[jobs, None])

    def decide(self, obs: Observation) -> Decision:
        f = obs.world.fleet
        green, ci = self.green_sites(obs)
        pool_order = self.pool_order(obs, ci)
        st = PlacementState(obs)
        active = obs.active
        urgent_active = active[self.urgent(obs, active)]
        if self.suspend:
            rp = obs.running_pool[active]
            at_green = np.where(rp >= 0, green[f.pool_site[np.maximum(rp, 0)]], False)
            keep = np.union1d(active[at_green], urgent_active)
        else:
            keep = active
        urgent_mask = np.zeros(obs.world.jobs.arrival_s.shape[0], bool)
        urgent_mask[urgent_active] = True
        in_time = self.in_time(obs, active)  # [len(active), P]
        fits = np.zeros((obs.world.jobs.arrival_s.shape[0], f.n_pools), bool)
        fits[active] = in_time | ~in_time.any(axis=1, keepdims=True)  # no pool in time: best effort anywhere

        def allowed(jobs: np.ndarray, p: int) -> np.ndarray:
            ok_site = home_ok(obs, jobs, f.pool_site[p : p + 1])[:, 0]
            return ok_site & fits[jobs, p] & (green[f.pool_site[p]] | urgent_mask[jobs])

        return place(obs, st, allowed, pool_order, keep=keep, first=urgent_mask)
