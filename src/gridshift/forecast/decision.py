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
