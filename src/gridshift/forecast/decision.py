"""Decision quality: how much of the perfect-forecast carbon saving a forecast actually delivers.

The decision a carbon-aware scheduler takes: at origin ``o`` a job needs ``job`` slots (interruptible) of
work somewhere in the window ``o … o + window − 1``. Running now costs the actual signal of slots
``o … o + job − 1``. Choosing the ``job`` slots with the lowest *forecast* (ties go to the earliest slot)
costs the *actual* signal of those slots; choosing with a perfect forecast costs the ``job`` lowest actual
values. Decision quality = total saving achieved with the forecast / total saving possible with perfect
foresight, summed over origins (1 = as good as perfect; 0 = no better than running now; negative = worse).
"""

from __future__ import annotations

import numpy as np

from gridshift.errors import PlanError


def decision_quality(actual: np.ndarray, point: np.ndarray, origins: np.ndarray, window: int,
                     job: int = 1) -> dict[str, float]:
    """``actual [n]``; ``point [K, H]`` forecasts at ``origins [K]`` (column 0 = the origin slot);
    ``window`` and ``job`` in slots. Origins whose window runs past the series are skipped."""
    a = np.asarray(actual, dtype=float).ravel()
    f = np.asarray(point, dtype=float)
    o = np.asarray(origins, dtype=int).ravel()
    if f.ndim != 2 or f.shape[0] != o.size:
        raise PlanError(f"forecast must be [K, H] for K origins, got {f.shape} for {o.size} origins")
    if not 1 <= job <= window <= f.shape[1]:
        raise PlanError(f"need 1 <= job ({job}) <= window ({window}) <= horizon ({f.shape[1]}) slots",
                        field="window")
    keep = o + window <= a.size
    o, f = o[keep], f[keep, :window]
    if o.size == 0:
        return {"quality": float("nan"), "saving_forecast": 0.0, "saving_perfect": 0.0, "origins": 0}
    act = a[o[:, None] + np.arange(window)[None, :]]  # [K, W]
    now = act[:, :job].sum(axis=1)
    pick = np.argsort(f, axis=1, kind="stable")[:, :job]
    chosen = np.take_along_axis(act, pick, axis=1).sum(axis=1)
    best = np.sort(act, axis=1)[:, :job].sum(axis=1)
    s_fc, s_pf = float((now - chosen).sum()), float((now - best).sum())
    q = s_fc / s_pf if s_pf > 0 else float("nan")
    return {"quality": q, "saving_forecast": s_fc, "saving_perfect": s_pf, "origins": int(o.size)}


def timing_quality(actual: np.ndarray, point: np.ndarray, origins: np.ndarray, window: int,
                   job: int = 1, habit: int = 0) -> dict[str, float]:
    """A job of ``job`` consecutive slots must start inside the window ``o … o + window − 1`` and finish
    in it; the habit runs it at the window's start (or ``habit`` slots after it: a nightly job at 01:00 whose
    window opens at 17:00 has ``habit=8``). The forecast picks the start with the lowest forecast mean
    over the job (ties: earliest), a perfect forecast the lowest actual mean. Returns, over the origins whose
    window lies inside the series:

    - ``regret``: mean carbon intensity of the forecast's choice minus the perfect choice's (signal unit,
      e.g. g/kWh; 0 = perfect);
    - ``share``: saving against the habit achieved / saving a perfect forecast achieves (1 = perfect, 0 = no
      better than the habit, negative = worse than the habit);
    - ``saving_pct`` and ``saving_perfect_pct``: those savings in % of the habit's carbon;
    - ``worse_than_habit``: share of origins where the forecast's choice is dirtier than the habit.

    With hourly series a 30-minute job started on the hour costs its hour's value, so it is ``job=1``.
    """
    a = np.asarray(actual, dtype=float).ravel()
    f = np.asarray(point, dtype=float)
    o = np.asarray(origins, dtype=int).ravel()
    if f.ndim != 2 or f.shape[0] != o.size:
        raise PlanError(f"forecast must be [K, H] for K origins, got {f.shape} for {o.size} origins")
    if not 1 <= job <= window <= f.shape[1] or not 0 <= habit <= window - job:
        raise PlanError(f"need 1 <= job ({job}) <= window ({window}) <= horizon ({f.shape[1]}) slots and the "
                        f"habit ({habit}) inside the window", field="window")
    keep = o + window <= a.size
    o, f = o[keep], f[keep, :window]
    nan = float("nan")
    if o.size == 0:
        return {"regret": nan, "share": nan, "saving_pct": nan, "saving_perfect_pct": nan,
                "worse_than_habit": nan, "origins": 0}
    act = a[o[:, None] + np.arange(window)[None, :]]  # [K, W]
    def run_mean(x: np.ndarray) -> np.ndarray:  # [K, W - job + 1]: mean over each possible run
        c = np.concatenate([np.zeros((x.shape[0], 1)), np.cumsum(x, axis=1)], axis=1)
        return (c[:, job:] - c[:, :-job]) / job

    run_a, run_f = run_mean(act), run_mean(f)
    usual = run_a[:, habit]
    chosen = np.take_along_axis(run_a, np.argmin(run_f, axis=1)[:, None], axis=1)[:, 0]
    best = run_a.min(axis=1)
    s_fc, s_pf, tot = float((usual - chosen).sum()), float((usual - best).sum()), float(usual.sum())
    return {"regret": float((chosen - best).mean()), "share": s_fc / s_pf if s_pf > 0 else nan,
            "saving_pct": 100 * s_fc / tot if tot else nan, "saving_perfect_pct": 100 * s_pf / tot if tot else nan,
            "worse_than_habit": float((chosen > usual + 1e-12).mean()), "origins": int(o.size)}
