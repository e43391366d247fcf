"""The core maths of curtailment-enabled headroom: seasonal thresholds, the curtailment of a constant new
load, the largest load within a curtailment rate, depth or event length, and curtailment events.

Array code over hours (MW, UTC hour-start); no loop over hours, no file I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from gridshift.errors import ScenarioError

SEASON_NAMES = ("winter", "spring", "summer", "fall")
# month (1..12) -> season index: Dec-Feb winter, Mar-May spring, Jun-Aug summer, Sep-Nov fall
_MONTH_SEASON = np.array([-1, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 0])


# --------------------------------------------------------------------------------------------- thresholds


def season_index(time: pd.DatetimeIndex) -> np.ndarray:
    """Season of each hour (0 winter Dec–Feb, 1 spring, 2 summer, 3 fall), by the UTC calendar month."""
    return _MONTH_SEASON[np.asarray(time.month)]


def seasonal_peak_mw(time: pd.DatetimeIndex, load_mw: np.ndarray) -> np.ndarray:
    """Per hour: the largest load of that hour's season over the whole series (the curtailment threshold)."""
    season = season_index(time)
    load = np.asarray(load_mw, dtype=float)
    peaks = np.full(4, np.nan)
    np.fmax.at(peaks, season, load)
    return peaks[season]


# --------------------------------------------------------------------------------------------- core maths


def curtailment_mw(gap_mw: np.ndarray, new_load_mw: float | np.ndarray) -> np.ndarray:
    """Curtailment of a constant new load ``L`` in each hour: ``min(L, max(0, L - gap))``.

    ``gap_mw`` = threshold − existing load. A scalar ``L`` gives one value per hour; an array of loads
    broadcasts to shape ``(len(L), hours)``.
    """
    g = np.maximum(np.asarray(gap_mw, dtype=float), 0.0)
    L = np.asarray(new_load_mw, dtype=float)
    if L.ndim:
        L = L[:, None]
    return np.maximum(L - g, 0.0)


def max_load_for_rate(gap_mw: np.ndarray, rate: float | Sequence[float] | np.ndarray,
                      weights: np.ndarray | None = None) -> float | np.ndarray:
    """Largest ``L`` with ``sum_h w_h * curtailment_h(L) / L <= rate`` (weights sum to 1; default uniform).

    With ``w_h = 1 / hours`` that is the pooled curtailment rate; with ``w_h = 1 / (years × hours in
    h's year)`` it is the mean of the annual rates. The rate ``R(L) = sum_h w_h max(0, 1 - g_h / L)`` is
    continuous and non-decreasing in ``L``; between consecutive sorted gaps it equals ``W_k - S_k / L``
    (``W_k``, ``S_k`` the running sums of ``w`` and ``w g`` over the ``k`` smallest gaps), so the answer is
    found exactly by evaluating ``R`` at every gap and solving inside the last segment where ``R <= rate``.
    ``rate`` may be an array (one sort serves every limit). Returns MW (0 when the hours at the threshold
    alone already exceed ``rate``).
    """
    g = np.maximum(np.asarray(gap_mw, dtype=float).ravel(), 0.0)
    n = g.size
    if n == 0:
        raise ScenarioError("no hours to compute a headroom from")
    w = np.full(n, 1.0 / n) if weights is None else np.asarray(weights, dtype=float).ravel()
    if w.shape != g.shape:
        raise ValueError("weights must have one value per hour")
    r = np.asarray(rate, dtype=float)
    order = np.argsort(g, kind="stable")
    g, w = g[order], w[order]
    W = np.concatenate([[0.0], np.cumsum(w)])  # W[k] = weight of the k smallest gaps
    S = np.concatenate([[0.0], np.cumsum(w * g)])
    with np.errstate(divide="ignore", invalid="ignore"):
        r_at_gap = np.where(g > 0, W[:-1] - S[:-1] / g, 0.0)  # R(g_j): the j smaller gaps are active
    r_at_gap = np.maximum.accumulate(r_at_gap)  # guard against round-off; R is non-decreasing
    j = np.searchsorted(r_at_gap, r, side="right")  # gaps g_0..g_{j-1} have R <= rate
    # on [g_{j-1}, g_j) the j smallest gaps are active: R(L) = W[j] - S[j] / L
    g_ext = np.concatenate([[0.0], g, [np.inf]])  # g_ext[j] = g_{j-1}, g_ext[j + 1] = g_j
    lo, hi = g_ext[j], g_ext[j + 1]
    denom = W[j] - r
    with np.errstate(divide="ignore", invalid="ignore"):
        L = np.where(denom > 0, S[j] / denom, hi)  # denom <= 0: numerically flat, the whole segment is fine
    L = np.minimum(np.maximum(L, lo), hi)
    return float(L) if L.ndim == 0 else L


def max_load_for_depth(gap_mw: np.ndarray, depth_frac: float) -> float:
    """Largest ``L`` whose curtailment never exceeds ``depth_frac × L``: ``min(gap) / (1 - depth_frac)``."""
    if depth_frac >= 1.0:
        return float("inf")
    g = np.maximum(np.asarray(gap_mw, dtype=float), 0.0)
    return float(g.min() / (1.0 - depth_frac))


def max_load_for_event_length(gap_mw: np.ndarray, max_event_h: int, breaks: np.ndarray | None = None) -> float:
    """Largest ``L`` with no run of more than ``max_event_h`` consecutive curtailed hours.

    An hour is curtailed when its gap is below ``L``, so a run of ``H + 1`` curtailed hours exists exactly
    when ``L`` exceeds the largest gap of some window of ``H + 1`` consecutive hours: the bound is the
    smallest such window maximum. Windows that straddle a ``break`` (see :func:`events`) do not count.
    """
    g = np.maximum(np.asarray(gap_mw, dtype=float), 0.0)
    k = int(max_event_h) + 1
    if k > g.size:
        return float("inf")
    win_max = np.lib.stride_tricks.sliding_window_view(g, k).max(axis=1)
    if breaks is not None:
        cb = np.concatenate([[0], np.cumsum(np.asarray(breaks, dtype=int))])
        # window [i, i + k) straddles a break when one of hours i+1 .. i+k-1 starts a new stretch
        straddles = (cb[k:] - cb[1:g.size - k + 2]) > 0
        win_max = np.where(straddles, np.inf, win_max)
    return float(win_max.min())


@dataclass(frozen=True)
class Events:
    """Maximal runs of consecutive curtailed hours: start position and length (hours) of each."""

    start: np.ndarray
    length_h: np.ndarray

    @property
    def count(self) -> int:
        return int(self.start.size)

    @property
    def mean_h(self) -> float:
        return float(self.length_h.mean()) if self.count else 0.0

    @property
    def max_h(self) -> int:
        return int(self.length_h.max()) if self.count else 0


def events(curtailed: np.ndarray, breaks: np.ndarray | None = None) -> Events:
    """Runs of True in a boolean hourly series (run-length encoding, no loop).

    ``breaks`` (optional, boolean per hour) marks hours that do not follow the previous one in time (e.g.
    the first hour after a skipped year); a run never continues across a break.
    """
    c = np.asarray(curtailed, dtype=bool)
    prev = np.concatenate([[False], c[:-1]])
    nxt = np.concatenate([c[1:], [False]])
    if breaks is not None:
        b = np.asarray(breaks, dtype=bool)
        prev &= ~b
        nxt &= ~np.concatenate([b[1:], [False]])
    starts = np.flatnonzero(c & ~prev)
    ends = np.flatnonzero(c & ~nxt)
    return Events(start=starts, length_h=ends - starts + 1)
