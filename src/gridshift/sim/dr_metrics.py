"""Per-event metrics of the minute-level response beyond compliance: the shape of the response (ramp, the
grace the ramp limit allows, rebound after the end) and the cut against the baselines utilities use.

Baselines (``baseline_cut_frac``): ``stated`` (the event's ``baseline_mw``), ``before_notice`` (mean draw of
the event's sites over ``baseline_hours_before_notice`` before the event is issued) and ``x_of_y`` (mean
draw in the event's hours over the X highest of the Y days before, PJM's "High 4 of 5" by default; None
without Y days of simulated history). The cut is one minus the mean draw during the event over the
baseline.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from gridshift.model.time import S_PER_DAY, S_PER_H
from gridshift.world.events import EventArrays


def ramp_grace_s(ev: EventArrays, e: int, pre_event_mw: float) -> float:
    """Time after the start that the ramp limit (and an emergency's response time) allows before the target
    must hold: the ramp from the pre-event draw to the target, less the notice."""
    grace = 0.0
    if np.isfinite(ev.ramp_mw_per_min[e]) and np.isfinite(pre_event_mw):
        need = max(pre_event_mw - ev.target_mw[e] * (1 - ev.margin_frac), 0.0) / ev.ramp_mw_per_min[e] * 60.0
        grace = max(need - max(ev.start_s[e] - ev.issued_s[e], 0.0), 0.0)
    if np.isfinite(ev.respond_within_s[e]):
        grace = max(grace, float(ev.respond_within_s[e]))
    return float(grace)


def shape_metrics(tr: pd.DataFrame, t_rel: np.ndarray, inside: np.ndarray, ok: np.ndarray, ev: EventArrays, e: int,
                  pre_event_mw: float) -> dict:
    w = tr["step_s"].to_numpy()
    ach = tr["achieved_mw"].to_numpy()
    grace = ramp_grace_s(ev, e, pre_event_mw)
    late = inside & (t_rel >= grace)
    gap = np.diff(t_rel)
    steps = np.abs(np.diff(ach)) / (w[1:] / 60.0)
    consecutive = np.isclose(gap, w[1:])
    rb = tr["rebound_limit_mw"].notna().to_numpy()
    over = ach[rb] - pre_event_mw
    after = t_rel >= ev.end_s[e] - ev.start_s[e]
    return {
        "pre_event_mw": float(pre_event_mw) if np.isfinite(pre_event_mw) else None,
        "ramp_grace_s": grace,
        "compliance_after_ramp_frac": float((w * ok)[late].sum() / w[late].sum()) if late.any() else None,
        "max_ramp_mw_per_min": float(steps[consecutive].max()) if consecutive.any() else None,
        "rebound_s": float(ev.rebound_s[e]) if ev.rebound_s is not None else 0.0,
        "rebound_max_over_pre_event_mw": float(max(over.max(), 0.0)) if over.size else None,
        "held_mwh": float((tr["held_mw"].to_numpy() * w).sum() / S_PER_H),
        "post_event_max_mw": float(ach[after].max()) if after.any() else None,
    }


def _mean(fac: np.ndarray, t0: int, t1: int) -> float | None:
    t0, t1 = max(t0, 0), min(t1, fac.shape[1])
    return float(fac[:, t0:t1].sum(axis=0).mean()) if t1 > t0 else None


def measured_baseline_mw(fac_mw: np.ndarray, ev: EventArrays, e: int, slot_s: float, rule: str) -> float | None:
    """Event ``e``'s measured baseline from the draws ``fac_mw`` [S, T'] of the slots simulated so far (summed
    over the event's sites): ``before_notice``, the mean over ``baseline_hours_before_notice`` before it is
    issued; ``x_of_y``, the mean in the event's hours over the X highest of the Y days before. None without
    the history."""
    fac = fac_mw[ev.site_mask[e]]
    if rule == "before_notice":
        i1 = int(np.floor(ev.issued_s[e] / slot_s))
        i0 = int(np.floor((ev.issued_s[e] - ev.baseline_hours_before_notice * S_PER_H) / slot_s))
        return _mean(fac, i0, i1) if i1 > 0 else None
    x, y = ev.baseline_x_of_y
    day = int(round(S_PER_DAY / slot_s))
    a, b = int(np.floor(ev.start_s[e] / slot_s)), int(np.ceil(ev.end_s[e] / slot_s))
    days = [_mean(fac, a - d * day, b - d * day) for d in range(1, y + 1) if a - d * day >= 0]
    days = [v for v in days if v is not None]
    return float(np.mean(sorted(days)[-x:])) if len(days) == y else None


def measured_targets(world, t: int, fac_mw: np.ndarray):
    """``world`` with the target of every event issued by the start of slot ``t`` whose baseline is measured
    (``baseline: before_notice`` or ``x_of_y``) set from the draws simulated so far (``fac_mw`` [S, ≥ t]),
    falling back to ``before_notice`` and then to the stated baseline without the history; the planners'
    limits follow. The same ``world`` when there is nothing to set."""
    ev = world.events
    if ev is None or ev.baseline_rule is None or all(r == "stated" for r in ev.baseline_rule):
        return world
    slot_s = float(world.slot_duration_s)
    issue_slot = np.ceil(ev.issued_s / slot_s - 1e-9).astype(np.int64)
    todo = [e for e in range(ev.n) if ev.baseline_rule[e] != "stated" and max(int(issue_slot[e]), 0) == t]
    if not todo:
        return world
    measured = np.full(ev.n, np.nan) if ev.measured_baseline_mw is None else ev.measured_baseline_mw.copy()
    target = ev.target_mw.copy()
    for e in todo:
        b = None
        for rule in dict.fromkeys((ev.baseline_rule[e], "before_notice")):
            b = b if b is not None else measured_baseline_mw(fac_mw[:, :t], ev, e, slot_s, rule)
        if b is None:
            b = float(ev.baseline_mw[e]) if np.isfinite(ev.baseline_mw[e]) else None
        if b is None:
            continue  # refused when the scenario is read (world.build.check_measured_baselines)
        measured[e] = b
        target[e] = b * (1.0 - ev.cut_frac[e]) if np.isfinite(ev.cut_frac[e]) else max(b - ev.cut_mw[e], 0.0)
    ev2 = dataclasses.replace(ev, target_mw=target, measured_baseline_mw=measured)
    f = world.fleet
    nameplate = np.bincount(f.pool_site, minlength=f.n_sites, weights=f.pool_count * (
        f.board_power_w[f.pool_type] + f.host_power_w[f.pool_type])) * f.pue / 1e6
    cap, known = ev2.planning_caps(nameplate, world.slot_duration_s, world.n_slots)
    return dataclasses.replace(world, events=ev2, event_cap_mw=cap, event_known_slot=known)


def baseline_metrics(tr: pd.DataFrame, inside: np.ndarray, fac_mw: np.ndarray | None, ev: EventArrays, e: int,
                     slot_s: float) -> dict:
    w = tr["step_s"].to_numpy()
    mean_in = float((tr["achieved_mw"].to_numpy() * w)[inside].sum() / w[inside].sum()) if inside.any() else np.nan
    bases: dict[str, float | None] = {"stated": float(ev.baseline_mw[e]) if np.isfinite(ev.baseline_mw[e]) else None,
                                      "before_notice": None, "x_of_y": None}
    if fac_mw is not None:
        for rule in ("before_notice", "x_of_y"):
            bases[rule] = measured_baseline_mw(fac_mw, ev, e, slot_s, rule)
    rule = "stated" if ev.baseline_rule is None else ev.baseline_rule[e]
    return {
        "baselines_mw": bases,
        "target_baseline": {"rule": rule, "mw": _num(ev.target_baseline_mw(e))},
        "mean_mw_during": mean_in if np.isfinite(mean_in) else None,
        "baseline_cut_frac": {k: (None if v is None or not np.isfinite(mean_in) else float(1 - mean_in / v))
                              for k, v in bases.items()},
    }


def _num(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None
