"""The simulator's side of demand response: in every slot a grid event touches (its window, the slot before
it for ramping down early, and the slots after it while the draw ramps back up), step through the slot at
1-minute resolution (5 s in the slot where an emergency with a response time under 5 minutes starts), shed
load with :func:`gridshift.plan.response.respond`, and hand the engine each unit's throughput and power
for the slot. Slots without events cost nothing.

Per-step draws are computed with every running job busy for the whole slot; a job that finishes inside the
slot is accounted by the engine for its real busy time, so a slot's energy can be slightly below the mean
of its steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from gridshift.model.events import N_TIERS
from gridshift.model.time import S_PER_DAY, S_PER_H
from gridshift.plan.response import Levers, job_levers, merge, respond
from gridshift.world.events import EventArrays

EMERGENCY_STEP_S = 5.0
STEP_S = 60.0


@dataclass
class SlotEffect:
    job_tp_mult: np.ndarray  # [n placed] throughput multiplier for each placed job
    job_save_w_per_acc: np.ndarray  # [n placed] board W saved per accelerator
    pool_svc_save_w: np.ndarray  # [P] IT W saved on inference replicas


@dataclass
class EventLog:
    time: list = field(default_factory=list)
    step_s: list = field(default_factory=list)
    requested_mw: list = field(default_factory=list)
    achieved_mw: list = field(default_factory=list)
    baseline_mw: list = field(default_factory=list)
    tier_lost: np.ndarray = field(default_factory=lambda: np.zeros(N_TIERS))
    tier_work: np.ndarray = field(default_factory=lambda: np.zeros(N_TIERS))
    tier_cap_lost: np.ndarray = field(default_factory=lambda: np.zeros(N_TIERS))  # by the planner's pool caps
    served: float = 0.0
    demand: float = 0.0
    pre_issue_mw: float = np.nan
    deliverable_mw: float = np.nan  # lowest draw the running work's tiers reach, at the first slot seen
    deliverable_in_time_mw: float = np.nan  # … within an emergency's response time
    job_lost_acc_h: dict = field(default_factory=dict)


def group_levers(world, sites: np.ndarray, *, j, p, g, cap, rate, svc_units: dict | None):
    """Levers of the work running at ``sites`` (bool [S]): placed jobs (``j``, ``p``, ``g`` with their pool
    caps and work rates) and inference replicas; returns (levers, placed-job rows, service-unit rows). Job
    units come first, numbered like the rows; service units follow."""
    f, jobs = world.fleet, world.jobs
    job_site = f.pool_site[p]
    mine = np.flatnonzero(sites[job_site])
    k = f.pool_type[p[mine]]
    parts = [job_levers(
        gang=g[mine].astype(float), cap_frac=cap[p[mine]], curve_x=list(f.cap_curve_power_frac),
        curve_y=list(f.cap_curve_throughput_frac), type_idx=k, board_w=f.board_power_w[k],
        idle_w=f.idle_power_w[k], pue=f.pue[job_site[mine]], tier=jobs.tier[j[mine]],
        interruptible=jobs.interruptible[j[mine]], checkpoint_s=jobs.checkpoint_overhead_s[j[mine]],
        work_rate=rate[mine])]
    sv_idx = np.zeros(0, np.int64)
    if svc_units is not None:
        sv_idx = np.flatnonzero(sites[f.pool_site[svc_units["pool"]]] & (svc_units["busy"] > 0))
        sp = svc_units["pool"][sv_idx]
        ks = f.pool_type[sp]
        parts.append(job_levers(
            gang=svc_units["busy"][sv_idx], cap_frac=cap[sp], curve_x=list(f.cap_curve_power_frac),
            curve_y=list(f.cap_curve_throughput_frac), type_idx=ks, board_w=svc_units["board_w"][sv_idx],
            idle_w=f.idle_power_w[ks], pue=f.pue[f.pool_site[sp]], tier=svc_units["tier"][sv_idx],
            interruptible=np.zeros(sv_idx.size, bool), checkpoint_s=np.zeros(sv_idx.size),
            work_rate=svc_units["busy"][sv_idx], max_loss_frac=svc_units["spare"][sv_idx], unit_offset=mine.size))
    lv = merge(parts)
    n = mine.size + sv_idx.size
    if lv.n_units < n:
        lv = Levers(lv.unit, lv.save_mw, lv.loss_frac, lv.ready_s, lv.cost_per_mw, n)
    return lv, mine, sv_idx


class DemandResponseSim:
    def __init__(self, ev: EventArrays | None, slot_s: int, slot_starts: pd.DatetimeIndex) -> None:
        self.ev = ev
        self.slot_s = float(slot_s)
        self.slot_starts = slot_starts
        n = 0 if ev is None else ev.n
        self.shed_end = np.zeros(n)
        self.level_end = np.full(n, np.nan)  # draw at the last step of the previous slot, MW
        self.started = np.full(n, np.nan)  # when each event's response began, s
        self.logs = [EventLog() for _ in range(n)]

    def _relevant(self, t: int) -> np.ndarray:
        ev = self.ev
        a, b = t * self.slot_s, (t + 1) * self.slot_s
        known = ev.issued_s < b
        window = (ev.start_s - self.slot_s < b) & (ev.end_s > a)
        return np.flatnonzero((known & window) | (self.shed_end > 1e-12))

    def slot(self, t: int, *, world, site_fac_mw: np.ndarray, j: np.ndarray, p: np.ndarray, g: np.ndarray,
             cap: np.ndarray, tp: np.ndarray, rate: np.ndarray, svc_units: dict | None) -> SlotEffect | None:
        """``site_fac_mw`` [S]: each site's facility draw this slot before any response (jobs busy all slot);
        ``svc_units``: per (service, pool) arrays of load-weighted busy replicas, spare capacity share, tier."""
        if self.ev is None:
            return None
        rel = self._relevant(t)
        if rel.size == 0:
            return None
        f, jobs, ev = world.fleet, world.jobs, self.ev
        mult = np.ones(j.size)
        save_w = np.zeros(j.size)
        svc_save = np.zeros(f.n_pools)
        a = t * self.slot_s
        job_site = f.pool_site[p]
        for e in rel:
            sites = ev.site_mask[e]
            if not np.isfinite(self.logs[e].pre_issue_mw) and ev.issued_s[e] < a + self.slot_s:
                self.logs[e].pre_issue_mw = float(site_fac_mw[sites].sum())
            emergency = np.isfinite(ev.respond_within_s[e]) and ev.respond_within_s[e] < 300 and \
                a <= ev.start_s[e] < a + self.slot_s
            step = EMERGENCY_STEP_S if emergency else STEP_S
            M = int(round(self.slot_s / step))
            t_step = a + step * np.arange(M)
            in_ev = (t_step >= ev.start_s[e]) & (t_step < ev.end_s[e])
            target = np.where(in_ev, ev.target_mw[e], np.inf)
            if np.isnan(self.started[e]):
                self.started[e] = max(a, ev.issued_s[e])
            not_before = int(np.ceil(max(ev.issued_s[e] - a, 0.0) / step))
            lv, mine, sv_idx = group_levers(world, sites, j=j, p=p, g=g, cap=cap, rate=rate, svc_units=svc_units)
            n_jobs_u = mine.size
            baseline = float(site_fac_mw[sites].sum())
            log = self.logs[e]
            if np.isnan(log.deliverable_mw):
                log.deliverable_mw = baseline - lv.max_save_mw
                if np.isfinite(ev.respond_within_s[e]):
                    in_time = lv.ready_s <= ev.respond_within_s[e]
                    log.deliverable_in_time_mw = baseline - float(lv.save_mw[in_time].sum())
            level = self.level_end[e] if self.shed_end[e] > 1e-12 else None
            r = respond(lv, baseline_mw=baseline, target_mw=target, step_s=step,
                        ramp_mw_per_min=None if not np.isfinite(ev.ramp_mw_per_min[e])
                        else float(ev.ramp_mw_per_min[e]), start_level_mw=level,
                        elapsed_s=a - self.started[e], margin_frac=ev.margin_frac, not_before_step=not_before)
            self.shed_end[e] = r.shed_mw[-1]
            self.level_end[e] = r.achieved_mw[-1]
            loss = r.unit_loss_frac
            mult[mine] *= 1.0 - loss[:n_jobs_u]
            save_w[mine] += r.unit_save_mw[:n_jobs_u] * 1e6 / np.maximum(g[mine] * f.pue[job_site[mine]], 1e-12)
            if sv_idx.size:
                np.add.at(svc_save, svc_units["pool"][sv_idx],
                          r.unit_save_mw[n_jobs_u:] * 1e6 / f.pue[f.pool_site[svc_units["pool"][sv_idx]]])
            show = in_ev | (r.shed_mw > 1e-12)
            log.time.append(self.slot_starts[t] + pd.to_timedelta(t_step[show] - a, unit="s"))
            log.step_s.append(np.full(int(show.sum()), step))
            log.requested_mw.append(np.where(in_ev, ev.target_mw[e], np.nan)[show])
            log.achieved_mw.append(r.achieved_mw[show])
            log.baseline_mw.append(np.full(int(show.sum()), baseline))
            if in_ev.any():
                frac_in = in_ev.mean()
                tiers = jobs.tier[j[mine]]
                hours = self.slot_s / S_PER_H * frac_in
                np.add.at(log.tier_lost, tiers, loss[:n_jobs_u] * rate[mine] * hours)
                np.add.at(log.tier_work, tiers, rate[mine] * hours)
                full = rate[mine] / np.maximum(tp[p[mine]], 1e-12)
                np.add.at(log.tier_cap_lost, tiers, (full - rate[mine]) * hours)
                for jj, lost in zip(j[mine], loss[:n_jobs_u] * rate[mine] * hours):
                    if lost > 0:
                        log.job_lost_acc_h[int(jj)] = log.job_lost_acc_h.get(int(jj), 0.0) + float(lost)
                if svc_units is not None:
                    log.served += float(svc_units["served_in"](sites)) * frac_in
                    log.demand += float(svc_units["demand_in"](sites)) * frac_in
        return SlotEffect(np.clip(mult, 0.0, 1.0), save_w, svc_save)

    def metrics(self, job_ids: np.ndarray, fac_mw: np.ndarray | None = None,
                site_names: tuple[str, ...] = ()) -> tuple[list[dict], dict[str, pd.DataFrame]]:
        """The ``events`` list of metrics.json and a per-step trace per event. With ``fac_mw`` [S, T] each
        event also gets ``sites``: every site's mean draw during the event beside the same hours a day earlier
        (where the cut came from, and where work went)."""
        if self.ev is None:
            return [], {}
        ev, out, traces = self.ev, [], {}
        for e, log in enumerate(self.logs):
            if not log.time:
                continue
            tr = pd.DataFrame({
                "time": pd.DatetimeIndex(np.concatenate([np.asarray(x) for x in log.time])),
                "step_s": np.concatenate(log.step_s), "requested_mw": np.concatenate(log.requested_mw),
                "achieved_mw": np.concatenate(log.achieved_mw), "baseline_mw": np.concatenate(log.baseline_mw)})
            traces[ev.ids[e]] = tr
            inside = tr["requested_mw"].notna().to_numpy()
            ok = (tr["achieved_mw"] <= tr["requested_mw"] * (1 + 1e-9) + 1e-12).to_numpy() & inside
            w = tr["step_s"].to_numpy()
            t_rel = (tr["time"] - (self.slot_starts[0] + pd.Timedelta(seconds=float(ev.start_s[e])))
                     ).dt.total_seconds().to_numpy()
            first_ok = np.flatnonzero(ok)
            ref = ev.baseline_mw[e] if np.isfinite(ev.baseline_mw[e]) else log.pre_issue_mw
            cut = (ref - tr["achieved_mw"].to_numpy()[inside]) / ref if ref and ref > 0 else np.full(inside.sum(), np.nan)
            after = t_rel[inside] >= (t_rel[first_ok[0]] if first_ok.size else np.inf)
            tier_loss = np.divide(log.tier_lost, log.tier_work, out=np.zeros(N_TIERS), where=log.tier_work > 0)
            full_work = log.tier_work + log.tier_cap_lost
            cap_loss = np.divide(log.tier_cap_lost, full_work, out=np.zeros(N_TIERS), where=full_work > 0)
            worst = sorted(log.job_lost_acc_h.items(), key=lambda kv: -kv[1])[:20]
            out.append({
                "id": ev.ids[e], "kind": ev.kind[e],
                "requested_mw": float(ev.target_mw[e]),
                "baseline_mw": float(ref) if ref is not None and np.isfinite(ref) else None,
                "achieved_min_cut_frac": float(np.min(cut[after])) if after.any() else None,
                "compliance_frac": float((w * ok).sum() / (w * inside).sum()) if inside.any() else None,
                "time_to_target_s": float(max(t_rel[first_ok[0]], 0.0)) if first_ok.size else None,
                "cut_at_response_deadline_frac": _cut_at(tr, t_rel, ev.respond_within_s[e], ref),
                "max_shortfall_mw": float(np.max(np.maximum(tr["achieved_mw"].to_numpy()[inside]
                                                             - tr["requested_mw"].to_numpy()[inside], 0.0)))
                if inside.any() else None,
                "tier_throughput_loss_frac": {str(k): float(tier_loss[k]) for k in range(N_TIERS)},
                "tier_planner_cap_loss_frac": {str(k): float(cap_loss[k]) for k in range(N_TIERS)},
                "slo_attainment": float(log.served / log.demand) if log.demand > 0 else None,
                "deliverable_mw": _num(log.deliverable_mw),
                "deliverable_in_response_time_mw": _num(log.deliverable_in_time_mw),
                "energy_shed_mwh": float(((tr["baseline_mw"] - tr["achieved_mw"]) * w).sum() / S_PER_H),
                "jobs_slowed": len(log.job_lost_acc_h),
                "most_slowed_jobs": [{"job_id": str(job_ids[jj]), "lost_acc_h": v} for jj, v in worst],
                "sites": _site_split(fac_mw, site_names, ev.site_mask[e], ev.start_s[e], ev.end_s[e], self.slot_s),
            })
        return out, traces


def _cut_at(tr: pd.DataFrame, t_rel: np.ndarray, within_s: float, ref: float) -> float | None:
    """For an emergency: the cut (share of the baseline) in effect ``within_s`` seconds after the start."""
    if not np.isfinite(within_s) or not ref or not np.isfinite(ref):
        return None
    i = np.flatnonzero((t_rel <= within_s) & (t_rel >= 0))
    if not i.size:
        return None
    return float((ref - tr["achieved_mw"].to_numpy()[i[-1]]) / ref)


def _num(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def event_warnings(events: list[dict], floor_mw: dict[str, float]) -> list[str]:
    """One line per event whose target the fleet cannot reach: with everything idle (``floor_mw``: the draw
    of the event's sites with every accelerator idle) or with the tiers of the work running when it began."""
    out = []
    for e in events:
        req, fl = e["requested_mw"], floor_mw.get(e["id"], 0.0)
        if fl > req:
            out.append(f"event '{e['id']}': asks for at most {req:.4g} MW but the sites draw {fl:.4g} MW with every "
                       "accelerator idle; that is the most it can deliver")
        elif e.get("deliverable_mw") is not None and e["deliverable_mw"] > req + 1e-9:
            out.append(f"event '{e['id']}': asks for at most {req:.4g} MW; the tiers of the work running when it was "
                       f"issued reach {e['deliverable_mw']:.4g} MW, the rest must come from running less work")
    return out


def _site_split(fac_mw, names, mask, start_s, end_s, slot_s) -> list[dict] | None:
    if fac_mw is None:
        return None
    t0, t1 = int(start_s // slot_s), int(np.ceil(end_s / slot_s))
    day = int(round(S_PER_DAY / slot_s))
    out = []
    for s, name in enumerate(names):
        during = float(fac_mw[s, t0:t1].mean())
        before = float(fac_mw[s, t0 - day:t1 - day].mean()) if t0 - day >= 0 else None
        out.append({"site": name, "under_event": bool(mask[s]), "mean_mw_during": during,
                    "mean_mw_day_before": before, "change_mw": None if before is None else during - before})
    return out
