"""The commitment curve of a site: simulate a scenario up to a moment, then ask how many MW the work running
there can shed, for how long, at what cost in throughput — what an operator bids into a demand-response
programme. Uses the same levers and tiers as the simulated response."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from gridshift.errors import ScenarioError
from gridshift.model.scenario import PolicySpec
from gridshift.model.time import S_PER_H, as_utc_timestamp
from gridshift.plan.registry import make_policy
from gridshift.plan.response import commitment_curve
from gridshift.sim.dr import group_levers
from gridshift.sim.engine import simulate
from gridshift.world import accounting as acc
from gridshift.world.assembled import Assembled

DEFAULT_DURATIONS_H = (0.25, 0.5, 1, 2, 4, 8, 12, 24)


def site_flex(asm: Assembled, site: str, at: datetime, *, policy: str = "asap",
              duration_h: tuple[float, ...] = DEFAULT_DURATIONS_H) -> dict:
    w = asm.world
    f = w.fleet
    if site not in f.site_names:
        raise ScenarioError(f"unknown site '{site}' (sites: {', '.join(f.site_names)})", field="site")
    ts = as_utc_timestamp(at)
    t_at = int((ts - w.slot_starts[0]) / pd.Timedelta(seconds=w.slot_duration_s))
    if not 0 <= t_at < w.n_slots:
        raise ScenarioError(f"{ts.isoformat()} is outside the scenario's time range", field="at")
    s = f.site_names.index(site)
    seen: dict = {}

    def grab(t, obs, j, p, g, cap, rate, svc_units):
        if t < t_at:
            return False
        seen.update(obs=obs, j=j, p=p, g=g, cap=cap, rate=rate, svc_units=svc_units)
        return True

    pol = make_policy(PolicySpec(name=policy), 0, objective=asm.scenario.objective)
    simulate(w, asm.signals, pol, on_slot=grab)
    obs, j, p, g, cap, rate = (seen[k] for k in ("obs", "j", "p", "g", "cap", "rate"))
    mask = np.zeros(f.n_sites, bool)
    mask[s] = True
    lv, mine, sv_idx = group_levers(w, mask, j=j, p=p, g=g, cap=cap, rate=rate, svc_units=seen["svc_units"])
    jobs = w.jobs
    jj = j[mine]
    left_h = np.divide(obs.remaining_acc_h[jj], rate[mine], out=np.full(jj.size, np.inf), where=rate[mine] > 0)
    slack_h = (jobs.deadline_s[jj] - obs.now_s) / S_PER_H - left_h
    svc = seen["svc_units"]
    unit_tier = np.r_[jobs.tier[jj], svc["tier"][sv_idx] if svc is not None else []].astype(np.int64)
    unit_rate = np.r_[rate[mine], svc["busy"][sv_idx] if svc is not None else []]
    unit_slack = np.r_[slack_h, np.full(sv_idx.size, np.inf)]
    cc = commitment_curve(lv, unit_tier=unit_tier, unit_rate=unit_rate, unit_slack_h=unit_slack,
                          duration_h=np.asarray(duration_h, float))
    # the site's draw now, every running job busy all slot
    P = f.n_pools
    k = f.pool_type
    busy = np.bincount(p, weights=g, minlength=P)
    pool_w = acc.pool_it_power_w(f.pool_count, busy, np.zeros(P), np.zeros(P), cap, f.board_power_w[k],
                                 f.idle_power_w[k], f.host_power_w[k])
    draw_mw = float(acc.site_power_mw(pool_w, f.pool_site, f.n_sites, f.pue)[1][s])
    total_rate = float(rate[mine].sum())
    rows = [{"duration_h": float(d), "shed_mw": float(cc.shed_mw[i]),
             "shed_frac": float(cc.shed_mw[i] / draw_mw) if draw_mw > 0 else 0.0,
             "throughput_lost_acc_h_per_h": float(cc.lost_acc_h_per_h[i]),
             "throughput_lost_frac": float(cc.lost_acc_h_per_h[i] / total_rate) if total_rate > 0 else 0.0,
             "full_shed_within_s": float(cc.ready_s[i]),
             **{f"tier{t}_mw": float(cc.shed_mw_by_tier[i, t]) for t in range(cc.shed_mw_by_tier.shape[1])}}
            for i, d in enumerate(duration_h)]
    return {"site": site, "at": w.slot_starts[t_at].isoformat(), "policy": policy, "draw_mw": draw_mw,
            "running_jobs": int(mine.size), "curve": rows,
            "floor_mw": float(acc.site_power_mw(f.pool_count * (f.idle_power_w[k] + f.host_power_w[k]),
                                                f.pool_site, f.n_sites, f.pue)[1][s])}
