"""Per-event metrics of the minute-level response beyond compliance: the shape of the response (ramp, the
grace the ramp limit allows, rebound after the end) and the cut against the baselines utilities use.

Baselines (``baseline_cut_frac``): ``stated`` (the event's ``baseline_mw``), ``before_notice`` (mean draw of
the event's sites over ``baseline_hours_before_notice`` before the event is issued) and ``x_of_y`` (mean
draw in the event's hours over the X highest of the Y days before, PJM's "High 4 of 5" by default; None
without Y days of simulated history). The cut is one minus the mean draw during the event over the
baseline.
"""

from __future__ import annotations

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


def baseline_metrics(tr: pd.DataFrame, inside: np.ndarray, fac_mw: np.ndarray | None, ev: EventArrays, e: int,
                     slot_s: float) -> dict:
    w = tr["step_s"].to_numpy()
    mean_in = float((tr["achieved_mw"].to_numpy() * w)[inside].sum() / w[inside].sum()) if inside.any() else np.nan
    bases: dict[str, float | None] = {"stated": float(ev.baseline_mw[e]) if np.isfinite(ev.baseline_mw[e]) else None,
                                      "before_notice": None, "x_of_y": None}
    if fac_mw is not None:
        fac = fac_mw[ev.site_mask[e]]
        i1 = int(np.floor(ev.issued_s[e] / slot_s))
        i0 = int(np.floor((ev.issued_s[e] - ev.baseline_hours_before_notice * S_PER_H) / slot_s))
        bases["before_notice"] = _mean(fac, i0, i1) if i1 > 0 else None
        x, y = ev.baseline_x_of_y
        day = int(round(S_PER_DAY / slot_s))
        a, b = int(np.floor(ev.start_s[e] / slot_s)), int(np.ceil(ev.end_s[e] / slot_s))
        days = [_mean(fac, a - d * day, b - d * day) for d in range(1, y + 1) if a - d * day >= 0]
        if len(days) == y:
            bases["x_of_y"] = float(np.mean(sorted(days)[-x:]))
    return {
        "baselines_mw": bases,
        "mean_mw_during": mean_in if np.isfinite(mean_in) else None,
        "baseline_cut_frac": {k: (None if v is None or not np.isfinite(mean_in) else float(1 - mean_in / v))
                              for k, v in bases.items()},
    }
