"""Demand response inside a slot: shed load to meet a grid event's target, step by step (1 minute, or a few
seconds around an emergency), choosing levers per flexibility tier at least cost.

Levers, per running unit (a job's gang on one pool, or a service's replicas on one pool):

- **power cap** along the accelerator's power-cap curve, down to the power at which the unit keeps
  ``1 − TIER_MAX_THROUGHPUT_LOSS[tier]`` of its throughput (or the curve's lowest point); acts after
  ``cap_actuation_s``;
- **pause** (tier 3, interruptible jobs only): the gang drops to idle power after writing its checkpoint
  (``checkpoint_overhead_s``, during which it still draws its capped power);
- **capping inference replicas** (services in tiers ≥ 1): only as far as the spare capacity above the
  current demand allows, so the latency SLO holds. (Fewer replicas is the planner's lever, slot by slot: in
  the power model an accelerator without a replica draws idle power, as does a replica without load, so
  switching replicas off inside a slot saves nothing more.)

Moving work to a site that is not under an event is the planner's lever (it sees the event as a site power
limit from the moment the event is issued); this module acts within the slot the planner chose.

Cost of a lever = throughput lost (reference accelerator-hours per hour) × a tier weight
(``TIER_COST_WEIGHT``: the more flexible the tier, the cheaper its work is to slow). Levers are taken in
order of cost per MW saved; a unit's levers are taken in order of depth (its cost per MW is made
non-decreasing with depth), which is the optimal fractional choice for concave power-cap curves.

Ramp: the group's draw moves at most ``ramp_mw_per_min`` per minute either way. To be at the target when
an event starts, shedding starts early enough (when the step window includes the minutes before the start);
after the event the draw rises back at the ramp rate. The response never sheds more than the target asks
(less ``margin_frac``), so the draw settles just under the target instead of oscillating around it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridshift.model.events import TIER_MAX_THROUGHPUT_LOSS, TIER_MAY_PAUSE

TIER_COST_WEIGHT = np.array([np.inf, 4.0, 2.0, 1.0])
DEFER_COST_WEIGHT = 1e3  # deferring a start (for the ramp) comes after every tier's own levers
CAP_ACTUATION_S = 5.0
DEFERRED = -1.0  # ready_s of a deferred start  # assumed delay for a power limit to take effect (set with nvidia-smi / NVML)


@dataclass(frozen=True)
class Levers:
    """Every lever of every unit in an event group, one row per lever segment."""

    unit: np.ndarray  # int [G] unit index
    save_mw: np.ndarray  # [G] facility MW saved when the segment is fully taken
    loss_frac: np.ndarray  # [G] share of the unit's current throughput lost when fully taken
    ready_s: np.ndarray  # [G] seconds after the response starts before the segment can act; < 0: a deferred
    # start (usable from the slot's first step, and never again for a gang once it has started)
    cost_per_mw: np.ndarray  # [G] non-decreasing with depth within a unit
    n_units: int

    @staticmethod
    def empty(n_units: int = 0) -> Levers:
        z = np.zeros(0)
        return Levers(np.zeros(0, np.int64), z, z, z, z, n_units)

    @property
    def max_save_mw(self) -> float:
        return float(self.save_mw.sum())


def job_levers(*, gang: np.ndarray, cap_frac: np.ndarray, curve_x: list[np.ndarray], curve_y: list[np.ndarray],
               type_idx: np.ndarray, board_w: np.ndarray, idle_w: np.ndarray, pue: np.ndarray, tier: np.ndarray,
               interruptible: np.ndarray, checkpoint_s: np.ndarray, work_rate: np.ndarray,
               max_loss_frac: np.ndarray | None = None, cap_actuation_s: float = CAP_ACTUATION_S,
               unit_offset: int = 0, new_start: np.ndarray | None = None) -> Levers:
    """Levers of running units (arrays per unit; ``board_w``/``idle_w``/``pue`` already per unit; ``gang`` may
    be fractional for inference replicas weighted by load; ``work_rate`` in reference accelerator-hours per
    hour at the current cap, for the cost; ``max_loss_frac`` tightens the tier's limit per unit;
    ``new_start`` flags units that start in this slot: they may also wait, whatever their tier, when the
    ramp limit does not let the site's draw rise as fast as the planner starts work — the dearest lever)."""
    n = gang.size
    gang = np.asarray(gang, np.float64)
    cap_frac = np.asarray(cap_frac, np.float64)
    tier = np.asarray(tier, np.int64)
    type_idx = np.asarray(type_idx, np.int64)
    board_w, idle_w, pue, work_rate = (np.asarray(x, np.float64) for x in (board_w, idle_w, pue, work_rate))
    interruptible = np.asarray(interruptible, bool)
    checkpoint_s = np.asarray(checkpoint_s, np.float64)
    starts = np.zeros(n, bool) if new_start is None else np.asarray(new_start, bool)
    max_loss = np.asarray(TIER_MAX_THROUGHPUT_LOSS)[tier]
    if max_loss_frac is not None:
        max_loss = np.minimum(max_loss, np.asarray(max_loss_frac, np.float64))
    may_pause = np.asarray(TIER_MAY_PAUSE)[tier] & interruptible
    parts = []  # (unit [U, C], save, loss, ready, cost, valid) per accelerator type: C levers per unit, in order
    for k in np.unique(type_idx[gang > 0]) if n else ():
        xs, ys = np.asarray(curve_x[k], np.float64), np.asarray(curve_y[k], np.float64)
        u = np.flatnonzero((type_idx == k) & (gang > 0))
        c0 = cap_frac[u]
        y0 = np.interp(c0, xs, ys)
        u, c0, y0 = u[y0 > 0], c0[y0 > 0], y0[y0 > 0]
        if not u.size:
            continue
        t, g, lim = tier[u], gang[u], max_loss[u]
        # units that may not slow down: only a deferred start (one lever)
        fixed = (lim <= 0) | (t <= 0)
        fu = u[fixed & starts[u]]
        fsave = gang[fu] * np.maximum(board_w[fu] * cap_frac[fu] - idle_w[fu], 0.0) * pue[fu] / 1e6
        ok = fsave > 0
        fu, fsave = fu[ok], fsave[ok]
        if fu.size:
            one = lambda a: a[:, None]  # noqa: E731
            parts.append((one(fu), one(fsave), one(np.ones(fu.size)), one(np.full(fu.size, DEFERRED)),
                          one(DEFER_COST_WEIGHT * np.maximum(work_rate[fu], 1e-12) / fsave), one(np.ones(fu.size, bool))))
        m = ~fixed
        u, c0, y0, t, g, lim = u[m], c0[m], y0[m], t[m], g[m], lim[m]
        if not u.size:
            continue
        p_min = np.maximum(np.interp(y0 * (1.0 - lim), ys, xs), xs[0])  # curve is increasing
        # the unit's power points, descending: c0, the curve's points strictly between, p_min (duplicates once)
        pts = np.concatenate([c0[:, None], p_min[:, None], np.broadcast_to(xs, (u.size, xs.size))], axis=1)
        inside = (xs[None, :] > p_min[:, None]) & (xs[None, :] < c0[:, None])
        pts = np.where(np.concatenate([np.ones((u.size, 2), bool), inside], axis=1), pts, -np.inf)
        pts = -np.sort(-pts, axis=1)
        dup = np.zeros_like(pts, bool)
        dup[:, 1:] = pts[:, 1:] == pts[:, :-1]
        pts = -np.sort(-np.where(dup, -np.inf, pts), axis=1)  # distinct points first, -inf after
        hi, lo = pts[:, :-1], pts[:, 1:]
        seg = np.isfinite(lo)
        hi_f, lo_f = np.where(seg, hi, 0.0), np.where(seg, lo, 0.0)
        w_per_frac = g * board_w[u] * pue[u] / 1e6  # MW per unit of power fraction
        weight = TIER_COST_WEIGHT[t] * work_rate[u]
        save = w_per_frac[:, None] * (hi_f - lo_f)
        loss = (np.interp(hi_f, xs, ys) - np.interp(lo_f, xs, ys)) / y0[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            cost = np.where(save > 0, weight[:, None] * loss / np.where(save > 0, save, 1.0), np.inf)
        ready = np.full(save.shape, float(cap_actuation_s))
        # pause (tier 3, interruptible) or deferring a start: the last lever
        pause = may_pause[u]
        psave = g * np.maximum(board_w[u] * p_min - idle_w[u], 0.0) * pue[u] / 1e6
        pvalid = (pause | starts[u]) & (psave > 0)
        ploss = np.interp(p_min, xs, ys) / y0
        pready = np.where(pause, checkpoint_s[u], DEFERRED)
        pw = np.where(pause, weight, DEFER_COST_WEIGHT * work_rate[u])
        with np.errstate(divide="ignore", invalid="ignore"):
            pcost = np.where(pvalid, pw * ploss / np.where(pvalid, psave, 1.0), -np.inf)
        valid = np.concatenate([seg, pvalid[:, None]], axis=1)
        cost = np.concatenate([np.where(seg, cost, -np.inf), pcost[:, None]], axis=1)
        cost = np.maximum.accumulate(cost, axis=1)  # non-decreasing with depth (invalid levers are -inf)
        parts.append((np.broadcast_to(u[:, None], valid.shape), np.concatenate([save, psave[:, None]], axis=1),
                      np.concatenate([loss, ploss[:, None]], axis=1), np.concatenate([ready, pready[:, None]], axis=1),
                      cost, valid))
    if not parts:
        return Levers.empty(n + unit_offset)
    unit = np.concatenate([p[0][p[5]] for p in parts])
    order = np.argsort(unit, kind="stable")  # by unit, each unit's levers in order of depth
    col = lambda i: np.concatenate([p[i][p[5]] for p in parts])[order]  # noqa: E731
    return Levers(unit[order].astype(np.int64) + unit_offset, col(1), col(2), col(3), col(4), n + unit_offset)


def merge(parts: list[Levers]) -> Levers:
    parts = [p for p in parts if p.unit.size]
    n_units = max((p.n_units for p in parts), default=0)
    if not parts:
        return Levers.empty(n_units)
    cat = lambda name: np.concatenate([getattr(p, name) for p in parts])  # noqa: E731
    return Levers(cat("unit"), cat("save_mw"), cat("loss_frac"), cat("ready_s"), cat("cost_per_mw"), n_units)


@dataclass(frozen=True)
class Response:
    shed_mw: np.ndarray  # [M] facility MW shed at each step by the levers
    achieved_mw: np.ndarray  # [M] baseline − shed + held
    unit_loss_frac: np.ndarray  # [U] mean share of each unit's throughput lost over the steps
    unit_save_mw: np.ndarray  # [U] mean MW each unit saved over the steps
    shortfall_mw: np.ndarray  # [M] how far above the target the draw stayed (0 where met)
    held_mw: np.ndarray  # [M] draw of work the planner stopped that winds down within the ramp limit


def respond(levers: Levers, *, baseline_mw: float, target_mw: np.ndarray, step_s: float,
            ramp_mw_per_min: float | None, start_level_mw: float | None = None, elapsed_s: float = 0.0,
            margin_frac: float = 0.0, not_before_step: int = 0, n_steps: int | None = None) -> Response:
    """Shed load over the first ``n_steps`` (default: all) of the steps of ``step_s`` seconds in ``target_mw``.

    ``target_mw[m]`` is the allowed draw at step m (``inf`` where no event applies); steps past ``n_steps``
    only look ahead (a target after this slot is ramped towards from here). ``start_level_mw`` is the draw
    just before the first step (None: no ramp limit into the first step). Every step's draw stays within
    the ramp of the step before, both ways: a rise is held back by the levers (capping, pausing, and
    deferring work that starts in this slot); a fall larger than the ramp — the planner stopping more work
    at once than the ramp allows — is spread out: the stopped work winds down one job at a time
    (``held_mw``, drawn but doing no work). ``elapsed_s`` is how long the response has been running (levers'
    actuation delays count from its start); nothing is shed for a target before step ``not_before_step``
    (when the event is not yet known).
    """
    M = target_mw.size if n_steps is None else int(n_steps)
    need = np.where(np.isfinite(target_mw), np.maximum(baseline_mw - target_mw * (1.0 - margin_frac), 0.0), 0.0)
    ramp = np.inf if ramp_mw_per_min is None else ramp_mw_per_min * step_s / 60.0
    # backward pass: start shedding early enough to reach later needs at the ramp rate
    want = need.copy()
    if np.isfinite(ramp):
        for m in range(want.size - 2, -1, -1):
            want[m] = max(want[m], want[m + 1] - ramp)
    want = want[:M]
    want[:not_before_step] = 0.0
    order = np.lexsort((levers.ready_s, levers.unit, levers.cost_per_mw))
    save, loss, ready, unit = (levers.save_mw[order], levers.loss_frac[order], levers.ready_s[order],
                               levers.unit[order])
    shed, held = np.zeros(M), np.zeros(M)
    loss_acc = np.zeros(levers.n_units)
    save_acc = np.zeros(levers.n_units)
    level = start_level_mw
    deferred = ready < 0
    still_waiting = np.ones(save.size)  # share of a deferred gang that has not started yet
    for m in range(M):
        t_s = elapsed_s + m * step_s  # a step's level holds from its start: only levers ready by then count
        s_avail = np.where(ready <= t_s, save, 0.0) * still_waiting
        target = want[m]
        if level is not None and np.isfinite(ramp):
            target = min(max(target, baseline_mw - level - ramp), baseline_mw - level + ramp)
        s = min(target, float(s_avail.sum()))
        frac = np.zeros(save.size)
        if s > 0:
            before = np.cumsum(s_avail) - s_avail
            frac = np.clip((s - before) / np.where(s_avail > 0, s_avail, 1.0), 0.0, 1.0) * (s_avail > 0)
            np.add.at(loss_acc, unit, frac * still_waiting * loss)
            np.add.at(save_acc, unit, frac * s_avail)
        still_waiting = np.where(deferred, still_waiting * frac, still_waiting)
        shed[m], held[m] = max(s, 0.0), max(-s, 0.0)
        level = baseline_mw - shed[m] + held[m]
    achieved = baseline_mw - shed + held
    tg = target_mw[:M]
    short = np.where(np.isfinite(tg), np.maximum(achieved - tg, 0.0), 0.0)
    return Response(shed, achieved, loss_acc / max(M, 1), save_acc / max(M, 1), short, held)


@dataclass(frozen=True)
class Commitment:
    """How much a group of running work can shed, held for each of ``duration_h``."""

    duration_h: np.ndarray  # [D]
    shed_mw: np.ndarray  # [D] facility MW that can be held off for that long
    lost_acc_h_per_h: np.ndarray  # [D] throughput given up meanwhile, reference accelerator-hours per hour
    ready_s: np.ndarray  # [D] time until the whole shed is in effect (slowest lever used)
    shed_mw_by_tier: np.ndarray  # [D, 4]


def commitment_curve(levers: Levers, *, unit_tier: np.ndarray, unit_rate: np.ndarray, unit_slack_h: np.ndarray,
                     duration_h: np.ndarray) -> Commitment:
    """Shed that can be held for each duration without making any job late: a unit losing a share ``l`` of
    its throughput falls behind by ``l`` hours per hour, so a lever is usable for ``slack_h / l`` hours
    (``unit_slack_h``: time to its deadline less the time its remaining work needs at full speed; inf if
    it has none). Deeper levers of a unit lose more, so they are usable for less time."""
    D = duration_h.size
    shed, lost, ready = np.zeros(D), np.zeros(D), np.zeros(D)
    by_tier = np.zeros((D, len(TIER_MAX_THROUGHPUT_LOSS)))
    if levers.unit.size:
        order = np.lexsort((np.arange(levers.unit.size), levers.unit))  # each unit's levers in depth order
        u, save, loss, rdy = levers.unit[order], levers.save_mw[order], levers.loss_frac[order], levers.ready_s[order]
        cum = np.cumsum(loss)
        first = np.r_[True, u[1:] != u[:-1]]
        start = np.maximum.accumulate(np.where(first, np.arange(u.size), 0))
        cum_unit = cum - (cum[start] - loss[start])
        slack = np.maximum(unit_slack_h[u], 0.0)
        max_h = np.where(cum_unit > 1e-12, slack / np.maximum(cum_unit, 1e-12), np.inf)
        for i, d in enumerate(duration_h):
            ok = max_h >= d
            shed[i] = save[ok].sum()
            lost[i] = (loss[ok] * unit_rate[u[ok]]).sum()
            ready[i] = rdy[ok].max() if ok.any() else 0.0
            np.add.at(by_tier[i], unit_tier[u[ok]], save[ok])
    return Commitment(duration_h, shed, lost, ready, by_tier)


def cap_credit_mw(world, jobs: np.ndarray, pools: np.ndarray, gangs: np.ndarray, cap: np.ndarray) -> np.ndarray:
    """[len(jobs)] facility MW the in-slot response can take from each placed job by power-capping it as far
    as its tier allows (tiers 1 and 2; 0 for the others): down to the power at which it keeps
    ``1 − TIER_MAX_THROUGHPUT_LOSS[tier]`` of its throughput at the pool cap ``cap``."""
    f, jt = world.fleet, world.jobs
    out = np.zeros(jobs.size)
    tier = np.clip(jt.tier[jobs], 0, len(TIER_MAY_PAUSE) - 1)
    for i in np.flatnonzero((tier >= 1) & ~np.asarray(TIER_MAY_PAUSE)[tier]):
        pp = int(pools[i])
        k = f.pool_type[pp]
        xs, ys = f.cap_curve_power_frac[k], f.cap_curve_throughput_frac[k]
        c0 = float(cap[pp])
        y_min = float(np.interp(c0, xs, ys)) * (1.0 - TIER_MAX_THROUGHPUT_LOSS[int(tier[i])])
        p_min = max(float(np.interp(y_min, ys, xs)), float(xs[0]))
        out[i] = gangs[i] * f.board_power_w[k] * max(c0 - p_min, 0.0) * f.pue[f.pool_site[pp]] / 1e6
    return out


def pinned_cap_credit_mw(obs, cap: np.ndarray) -> np.ndarray:
    """[S] facility MW the in-slot response can take, at each site under a known grid event, by power-capping
    the running jobs that an event may only cap (tiers 1 and 2, pinned where they run): each down to the
    power at which it keeps ``1 − TIER_MAX_THROUGHPUT_LOSS[tier]`` of its throughput at the pool cap ``cap``.
    Planners count it as headroom, so that what the tiers that agreed to pay can give makes room for work
    that may not be slowed (tier 0) before anything else is kept from running; less the margin the response
    keeps below the limit."""
    w = obs.world
    f = w.fleet
    out = np.zeros(f.n_sites)
    under = w.sites_under_event(obs.t)
    if under is None or not under.any():
        return out
    run = obs.active[obs.running_pool[obs.active] >= 0]
    p = obs.running_pool[run]
    sel = under[f.pool_site[p]]
    credit = cap_credit_mw(w, run[sel], p[sel], obs.running_gang[run[sel]], cap)
    np.add.at(out, f.pool_site[p[sel]], credit)
    if w.events is not None and w.event_cap_mw is not None:  # the response aims margin_frac below the limit
        out[under] -= w.events.margin_frac * w.event_cap_mw[under, obs.t]
    return out
