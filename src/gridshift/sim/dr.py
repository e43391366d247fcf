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
from gridshift.sim.dr_metrics import baseline_metrics, shape_metrics
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
    rebound_limit_mw: list = field(default_factory=list)
    held_mw: list = field(default_factory=list)
    tier_lost: np.ndarray = field(default_factory=lambda: np.zeros(N_TIERS))
    tier_work: np.ndarray = field(default_factory=lambda: np.zeros(N_TIERS))
    tier_cap_lost: np.ndarray = field(default_factory=lambda: np.zeros(N_TIERS))  # by the planner's pool caps
    served: float = 0.0
    demand: float = 0.0
    pre_issue_mw: float = np.nan
    deliverable_mw: float = np.nan  # lowest draw the running work's tiers reach, at the first slot seen
    deliverable_in_time_mw: float = np.nan  # … within an emergency's response time
    job_lost_acc_h: dict = field(default_factory=dict)


def group_levers(world, sites: np.ndarray, *, j, p, g, cap, rate, svc_units: dict | None,
                 new_start: np.ndarray | None = None):
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
        work_rate=rate[mine], new_start=None if new_start is None else new_start[mine])]
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
        self.last_t = np.full(n, -2)  # last slot each event's response ran in
        self.shed_end = np.zeros(n)  # shed (+) or held (−) at the last step of that slot, MW
        self.level_end = np.full(n, np.nan)  # draw at the last step of that slot, MW
        self.started = np.full(n, np.nan)  # when each event's response began, s
        self.pre_event_mw = np.full(n, np.nan)  # the draw just before the response began
        self.lead_s = None  # [E] time the ramp needs from nameplate draw to the target
        self.prev_site_mw = None  # [S] the previous slot's draw before any response
        self.logs = [EventLog() for _ in range(n)]

    def _rebound_s(self) -> np.ndarray:
        return np.zeros(self.ev.n) if self.ev.rebound_s is None else self.ev.rebound_s

    def _relevant(self, t: int) -> np.ndarray:
        ev = self.ev
        a, b = t * self.slot_s, (t + 1) * self.slot_s
        known = ev.issued_s < b
        window = (ev.start_s - self.lead_s - self.slot_s < b) & (ev.end_s + self._rebound_s() > a)
        settling = (self.last_t == t - 1) & (np.abs(self.shed_end) > 1e-9)
        return np.flatnonzero((known & window) | settling)

    def slot(self, t: int, *, world, site_fac_mw: np.ndarray, j: np.ndarray, p: np.ndarray, g: np.ndarray,
             cap: np.ndarray, tp: np.ndarray, rate: np.ndarray, svc_units: dict | None,
             new_start: np.ndarray | None = None) -> SlotEffect | None:
        """``site_fac_mw`` [S]: each site's facility draw this slot before any response (jobs busy all slot);
        ``svc_units``: per (service, pool) arrays of load-weighted busy replicas, spare capacity share, tier;
        ``new_start`` [n placed]: jobs that did not run on that pool in the previous slot."""
        if self.ev is None:
            return None
        f, jobs, ev = world.fleet, world.jobs, self.ev
        if self.lead_s is None:
            top = np.bincount(f.pool_site, weights=f.pool_count * (f.board_power_w[f.pool_type] + f.host_power_w[
                f.pool_type]), minlength=f.n_sites) * f.pue / 1e6
            drop = np.maximum(ev.site_mask @ top - ev.target_mw, 0.0)
            self.lead_s = np.where(np.isfinite(ev.ramp_mw_per_min), drop / ev.ramp_mw_per_min * 60.0, 0.0)
        prev_site = self.prev_site_mw
        self.prev_site_mw = site_fac_mw.copy()
        rel = self._relevant(t)
        if rel.size == 0:
            return None
        mult = np.ones(j.size)
        save_w = np.zeros(j.size)
        svc_save = np.zeros(f.n_pools)
        a = t * self.slot_s
        job_site = f.pool_site[p]
        rebound = self._rebound_s()
        for e in rel:
            sites = ev.site_mask[e]
            log = self.logs[e]
            if not np.isfinite(log.pre_issue_mw) and ev.issued_s[e] < a + self.slot_s:
                log.pre_issue_mw = float(site_fac_mw[sites].sum())
            emergency = np.isfinite(ev.respond_within_s[e]) and ev.respond_within_s[e] < 300 and \
                a <= ev.start_s[e] < a + self.slot_s
            step = EMERGENCY_STEP_S if emergency else STEP_S
            M = int(round(self.slot_s / step))
            # look ahead past this slot to the event's start, so the ramp down begins early enough
            n_ext = max(M, min(int(np.ceil((ev.start_s[e] - a) / step)) + 1, M + int(self.lead_s[e] / step) + 2))
            t_step = a + step * np.arange(n_ext)
            in_ev = (t_step >= ev.start_s[e]) & (t_step < ev.end_s[e])
            in_rb = (t_step >= ev.end_s[e]) & (t_step < ev.end_s[e] + rebound[e])
            baseline = float(site_fac_mw[sites].sum())
            if self.last_t[e] == t - 1 and np.isfinite(self.level_end[e]):
                level = float(self.level_end[e])
            elif prev_site is not None:
                level = float(prev_site[sites].sum())
            else:
                level = None
            if np.isnan(self.started[e]):
                self.started[e] = max(a, ev.issued_s[e])
                self.pre_event_mw[e] = baseline if level is None else level
            if a < ev.start_s[e] and a > self.started[e] - self.slot_s:  # the planned draw just before the event
                self.pre_event_mw[e] = baseline
            target = np.where(in_ev, ev.target_mw[e], np.where(in_rb, self.pre_event_mw[e], np.inf))
            not_before = int(np.ceil(max(ev.issued_s[e] - a, 0.0) / step))
            lv, mine, sv_idx = group_levers(world, sites, j=j, p=p, g=g, cap=cap, rate=rate, svc_units=svc_units,
                                            new_start=new_start)
            n_jobs_u = mine.size
            if np.isnan(log.deliverable_mw):
                log.deliverable_mw = baseline - lv.max_save_mw
                if np.isfinite(ev.respond_within_s[e]):
                    in_time = lv.ready_s <= ev.respond_within_s[e]
                    log.deliverable_in_time_mw = baseline - float(lv.save_mw[in_time].sum())
            r = respond(lv, baseline_mw=baseline, target_mw=target, step_s=step,
                        ramp_mw_per_min=None if not np.isfinite(ev.ramp_mw_per_min[e])
                        else float(ev.ramp_mw_per_min[e]), start_level_mw=level,
                        elapsed_s=a - self.started[e], margin_frac=ev.margin_frac, not_before_step=not_before,
                        n_steps=M)
            t_step, in_ev, in_rb, target = t_step[:M], in_ev[:M], in_rb[:M], target[:M]
            self.last_t[e] = t
            self.shed_end[e] = r.shed_mw[-1] - r.held_mw[-1]
            self.level_end[e] = r.achieved_mw[-1]
            loss = r.unit_loss_frac
            mult[mine] *= 1.0 - loss[:n_jobs_u]
            save_w[mine] += r.unit_save_mw[:n_jobs_u] * 1e6 / np.maximum(g[mine] * f.pue[job_site[mine]], 1e-12)
            if sv_idx.size:
                np.add.at(svc_save, svc_units["pool"][sv_idx],
                          r.unit_save_mw[n_jobs_u:] * 1e6 / f.pue[f.pool_site[svc_units["pool"][sv_idx]]])
            held = float(r.held_mw.mean())
            if held > 0:  # stopped work winding down: drawn on the event's pools, by size
                pools = np.flatnonzero(sites[f.pool_site])
                share = f.pool_count[pools] / max(float(f.pool_count[pools].sum()), 1e-12)
                np.add.at(svc_save, pools, -held * share * 1e6 / f.pue[f.pool_site[pools]])
            log.time.append(self.slot_starts[t] + pd.to_timedelta(t_step - a, unit="s"))
            log.step_s.append(np.full(M, step))
            log.requested_mw.append(np.where(in_ev, ev.target_mw[e], np.nan))
            log.rebound_limit_mw.append(np.where(in_rb, self.pre_event_mw[e], np.nan))
            log.achieved_mw.append(r.achieved_mw)
            log.held_mw.append(r.held_mw)
            log.baseline_mw.append(np.full(M, baseline))
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
                "achieved_mw": np.concatenate(log.achieved_mw), "baseline_mw": np.concatenate(log.baseline_mw),
                "rebound_limit_mw": np.concatenate(log.rebound_limit_mw), "held_mw": np.concatenate(log.held_mw)})
            traces[ev.ids[e]] = tr
            inside = tr["requested_mw"].notna().to_numpy()
            ok = (tr["achieved_mw"] <= tr["requested_mw"] * (1 + 1e-9) + 1e-12).to_numpy() & inside
            w = tr["step_s"].to_numpy()
            t_rel = (tr["time"] - (self.slot_starts[0] + pd.Timedelta(seconds=float(ev.start_s[e])))
                     ).dt.total_seconds().to_numpy()
            first_ok = np.flatnonzero(ok)
            ref = ev.target_baseline_mw(e)
            ref = ref if np.isfinite(ref) else log.pre_issue_mw
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
                **shape_metrics(tr, t_rel, inside, ok, ev, e, float(self.pre_event_mw[e])),
                **baseline_metrics(tr, inside, fac_mw, ev, e, self.slot_s),
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
