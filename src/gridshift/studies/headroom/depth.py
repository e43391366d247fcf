"""A site's deliverable curtailment depth from its flexibility tiers (duty-cycling, power capping, pausing)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gridshift.errors import ScenarioError

# Throughput loss each flexibility tier accepts (tier 0 never slowed; tier 3 may also pause).
TIER_LOSS_LIMITS = (0.0, 0.10, 0.25, 0.50)
PAUSE_TIERS = (3,)


def power_frac_for_throughput(power_frac: Sequence[float], throughput_frac: Sequence[float],
                              target: float | np.ndarray) -> np.ndarray:
    """Lowest power-cap fraction that still keeps ``target`` of full throughput on a piecewise-linear curve.

    Targets at or below the curve's first throughput give the curve's lowest cap (it cannot go lower).
    """
    p = np.asarray(power_frac, dtype=float)
    t = np.asarray(throughput_frac, dtype=float)
    x = np.atleast_1d(np.asarray(target, dtype=float))
    i = np.clip(np.searchsorted(t, x, side="left"), 1, p.size - 1)  # first point with t >= x (>= 1)
    t0, t1, p0, p1 = t[i - 1], t[i], p[i - 1], p[i]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.where(t1 > t0, (x - t0) / (t1 - t0), 1.0)
    out = p0 + np.clip(u, 0.0, 1.0) * (p1 - p0)
    return np.where(x <= t[0], p[0], np.minimum(out, 1.0))


@dataclass(frozen=True)
class TierDepth:
    """What a site with a given mix of flexibility tiers can shed in an hour, as a fraction of its power."""

    shares: tuple[float, ...]
    loss_limits: tuple[float, ...]
    cut_frac: tuple[float, ...]  # per tier: fraction of that tier's site power it can shed
    lever: tuple[str, ...]  # per tier: "none", "duty-cycle", "power-cap" or "pause"
    cap_power_frac: tuple[float | None, ...]  # per tier: accelerator power-cap fraction (power-cap lever)
    depth_frac: float
    accelerator: str | None = None


def tier_depth(
    shares: Sequence[float],
    *,
    power_frac: Sequence[float] | None = None,
    throughput_frac: Sequence[float] | None = None,
    board_share: float = 1.0,
    accelerator: str | None = None,
    loss_limits: Sequence[float] = TIER_LOSS_LIMITS,
    pause_tiers: Sequence[int] = PAUSE_TIERS,
) -> TierDepth:
    """Deliverable curtailment depth of a site: ``sum_tier share × cut``.

    ``shares`` is the share of the site's load in each tier (non-negative, summing to 1). A tier that
    accepts a throughput loss ``x`` can shed ``x`` of its power by duty-cycling (switching off the
    accelerators, and their hosts, whose work it gives up) or, with a power-cap curve
    (``power_frac`` → ``throughput_frac``), ``board_share × (1 − p)`` where ``p`` is the lowest cap keeping
    ``1 − x`` of throughput and ``board_share`` = board / (board + host) power (the host does not scale with
    the cap); it uses whichever sheds more. A pausing tier sheds its whole share.
    """
    sh = np.asarray(list(shares), dtype=float)
    lim = np.asarray(list(loss_limits), dtype=float)
    if sh.size != lim.size:
        raise ScenarioError(f"tier shares need {lim.size} values (tiers 0..{lim.size - 1}), got {sh.size}",
                            field="tier_shares")
    if not np.all(np.isfinite(sh)) or np.any(sh < 0):
        raise ScenarioError("tier shares must be finite and non-negative", field="tier_shares")
    if abs(sh.sum() - 1.0) > 1e-6:
        raise ScenarioError(f"tier shares must sum to 1 (got {sh.sum():.6g})", field="tier_shares")
    if not 0.0 < board_share <= 1.0:
        raise ScenarioError(f"board power share must be within (0, 1] (got {board_share})", field="board_share")
    duty = lim.copy()
    cap = np.zeros_like(lim)
    cap_p: list[float | None] = [None] * lim.size
    if power_frac is not None and throughput_frac is not None:
        p = power_frac_for_throughput(power_frac, throughput_frac, 1.0 - lim)
        cap = np.where(lim > 0, board_share * (1.0 - p), 0.0)
        cap_p = [float(v) if lim[k] > 0 else None for k, v in enumerate(p)]
    cut = np.maximum(duty, cap)
    lever = np.where(lim <= 0, "none", np.where(cap > duty, "power-cap", "duty-cycle")).astype(object)
    for k in pause_tiers:
        if 0 <= k < lim.size:
            cut[k], lever[k], cap_p[k] = 1.0, "pause", None
    cap_p = [cap_p[k] if lever[k] == "power-cap" else None for k in range(lim.size)]
    return TierDepth(shares=tuple(sh.tolist()), loss_limits=tuple(lim.tolist()), cut_frac=tuple(cut.tolist()),
                     lever=tuple(str(x) for x in lever), cap_power_frac=tuple(cap_p),
                     depth_frac=float(np.dot(sh, cut)), accelerator=accelerator)
