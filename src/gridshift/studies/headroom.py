"""Curtailment-enabled grid headroom: how much constant new load a region can take if it curtails at peaks.

The rule (after Norris et al., "Rethinking Load Growth", Nicholas Institute, Duke University, 2025,
https://hdl.handle.net/10161/32077): a constant new load of ``L`` MW is added to a region's hourly load.
The region must never exceed its historical seasonal peak (the largest load seen in that meteorological
season — winter Dec–Feb, spring Mar–May, summer Jun–Aug, fall Sep–Nov — over the study years), so in
every hour where ``load + L`` would exceed that threshold the new load curtails by exactly the excess
(never more than ``L``). The curtailment rate is the curtailed energy divided by the energy the new load
would use uncurtailed, ``L × hours``. The headroom at a limit ``r`` is the largest ``L`` whose rate is at
most ``r``, with the rate taken as the mean of the annual rates (``basis="mean"``) or, stricter, in every
year (``basis="worst-year"``).

Everything here is array code over hours: the headroom is solved exactly (the rate is a piecewise
``a - b/L`` function of ``L`` between consecutive sorted gaps), with no search loop and no loop over hours.

Further bounds of the form ``L <= bound``:

- a maximum event length (consecutive curtailed hours) of ``H`` hours: ``L`` may not exceed the smallest,
  over every window of ``H + 1`` consecutive hours, of the largest gap in that window (part of the headroom
  when asked for);
- a curtailment depth ``d`` (the share of its power the new load can shed in an hour): the required
  curtailment may never exceed ``d × L``, i.e. ``L <= min(gap) / (1 - d)`` (reported separately, as the
  load a site with that depth can add, beside the backup power it would need at the full headroom).

The depth comes from a site's flexibility tiers (:func:`tier_depth`): tier 0 is never slowed; tiers 1, 2
and 3 accept up to 10 %, 25 % and 50 % throughput loss, and tier 3 may pause. A tier sheds the larger of
what duty-cycling gives (power off the accelerators whose work it gives up: cut = throughput loss) and
what power capping gives (the accelerator's power-cap curve, applied to board power only: the host stays
on).

Loads are MW and UTC hour-start; results are GW. No file I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

import numpy as np
import pandas as pd

from gridshift.errors import ScenarioError

__all__ = [
    "CONUS",
    "DEFAULT_FRACTIONS",
    "DUKE_GW",
    "DUKE_SOURCE",
    "SEASON_NAMES",
    "SUM_REGION",
    "TIER_LOSS_LIMITS",
    "Events",
    "HeadroomResult",
    "RegionLoad",
    "TierDepth",
    "curtailment_mw",
    "events",
    "headroom",
    "headroom_many",
    "headroom_table",
    "max_load_for_depth",
    "max_load_for_event_length",
    "max_load_for_rate",
    "power_frac_for_throughput",
    "prepare_region",
    "season_index",
    "seasonal_peak_mw",
    "tier_depth",
]

Basis = Literal["mean", "worst-year"]

DEFAULT_FRACTIONS = (0.0025, 0.005, 0.01, 0.05)

# Published curtailment-enabled headroom, summed over the 22 largest US balancing authorities, GW, by
# annual curtailment limit (fraction of the new load's energy). Only these three figures are cited.
DUKE_GW: dict[float, float] = {0.0025: 76.0, 0.005: 98.0, 0.01: 126.0}
DUKE_SOURCE = ("Norris, Profeta, Patino-Echeverri & Cowie-Haskell, \"Rethinking Load Growth: Assessing the "
               "Potential for Integration of Large Flexible Loads in US Power Systems\", Nicholas Institute for "
               "Energy, Environment & Sustainability, Duke University, February 2025, "
               "https://hdl.handle.net/10161/32077 (22 largest balancing authorities)")

SEASON_NAMES = ("winter", "spring", "summer", "fall")
# month (1..12) -> season index: Dec-Feb winter, Mar-May spring, Jun-Aug summer, Sep-Nov fall
_MONTH_SEASON = np.array([-1, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 0])

# Throughput loss each flexibility tier accepts (tier 0 never slowed; tier 3 may also pause).
TIER_LOSS_LIMITS = (0.0, 0.10, 0.25, 0.50)
PAUSE_TIERS = (3,)

SUM_REGION = "SUM_REGIONS"  # table row: the regional headrooms added up
CONUS = "CONUS"  # the contiguous US treated as one region

_MIN_YEAR_COVERAGE = 0.99  # a study year needs this share of its hours in the data


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


# --------------------------------------------------------------------------------------------- one region


@dataclass(frozen=True)
class RegionLoad:
    """A region's hourly load over the study years with its seasonal thresholds, ready for solving."""

    region: str
    time: pd.DatetimeIndex
    load_mw: np.ndarray
    threshold_mw: np.ndarray
    year: np.ndarray  # UTC year of each hour
    years: tuple[int, ...]

    @cached_property
    def gap_mw(self) -> np.ndarray:
        return self.threshold_mw - self.load_mw

    @property
    def peak_mw(self) -> float:
        return float(self.load_mw.max())

    @cached_property
    def breaks(self) -> np.ndarray:
        """True where an hour does not follow the previous one (first hour, skipped years, missing hours)."""
        step = pd.Series(self.time).diff()  # NaT for the first hour
        return (step != pd.Timedelta(hours=1)).to_numpy()

    def weights(self, basis: Basis) -> np.ndarray:
        """Hour weights whose weighted curtailment share is the mean of the annual rates."""
        if basis not in ("mean", "worst-year"):
            raise ScenarioError(f"unknown basis '{basis}'; use 'mean' or 'worst-year'", field="basis")
        yi = np.searchsorted(np.asarray(self.years), self.year)
        n_per_year = np.bincount(yi, minlength=len(self.years)).astype(float)
        return 1.0 / (len(self.years) * n_per_year[yi])


def prepare_region(region: str, load_mw: pd.Series, years: Sequence[int] | None = None) -> RegionLoad:
    """Restrict an hourly load series (UTC index) to whole study years and attach seasonal thresholds.

    Each requested year must be covered for at least 99 % of its hours; otherwise a
    :class:`ScenarioError` names the years the series does cover.
    """
    s = pd.Series(load_mw, dtype=float).dropna()
    idx = pd.DatetimeIndex(s.index)
    if idx.tz is None:
        raise ScenarioError(f"{region}: load index must be tz-aware UTC", field="load_mw")
    idx = idx.tz_convert("UTC")
    year_all = np.asarray(idx.year)
    counts = pd.Series(year_all).value_counts()
    hours_in = {y: 8784 if pd.Timestamp(year=y, month=12, day=31).is_leap_year else 8760 for y in counts.index}
    covered = sorted(int(y) for y, n in counts.items() if n >= _MIN_YEAR_COVERAGE * hours_in[y])
    if years is None:
        years = covered
    years = tuple(sorted({int(y) for y in years}))
    missing = [y for y in years if y not in covered]
    if missing or not years:
        span = f"{covered[0]}–{covered[-1]}" if covered else "none"
        raise ScenarioError(f"{region}: no complete load data for year(s) {', '.join(map(str, missing)) or '(none)'}"
                            f" (complete years: {span})", field="years")
    keep = np.isin(year_all, years)
    time = idx[keep]
    load = s.to_numpy()[keep]
    if np.any(load < 0) or not np.all(np.isfinite(load)):
        raise ScenarioError(f"{region}: load must be finite and non-negative", field="load_mw")
    return RegionLoad(region=region, time=time, load_mw=load, threshold_mw=seasonal_peak_mw(time, load),
                      year=year_all[keep], years=years)


@dataclass(frozen=True)
class HeadroomResult:
    """Headroom of one region at one curtailment limit, and what the new load goes through at it."""

    region: str
    curtailment_frac: float  # the limit
    headroom_mw: float
    binding: str  # which constraint sets the headroom: "energy" or "event-length"
    hours_curtailed_per_year: float
    events_per_year: float
    event_mean_h: float
    event_max_h: int
    curtailed_frac_mean: float  # mean of annual curtailment rates at the headroom
    curtailed_frac_worst_year: float
    peak_mw: float
    years: tuple[int, ...]
    basis: str
    by_year: pd.DataFrame = field(repr=False)  # year, headroom_mw (that year alone), curtailed_frac, hours, events
    depth: dict[str, float] = field(default_factory=dict)  # site depth join, when a depth is given

    @property
    def headroom_gw(self) -> float:
        return self.headroom_mw / 1e3


def _solve(rl: RegionLoad, rates: np.ndarray, basis: Basis,
           max_event_h: int | None) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Headroom (MW) and binding constraint per limit, and the headroom of each year alone [year, limit]."""
    gap = rl.gap_mw
    yi = np.searchsorted(np.asarray(rl.years), rl.year)
    per_year = np.vstack([np.atleast_1d(max_load_for_rate(gap[yi == k], rates)) for k in range(len(rl.years))])
    energy = (np.atleast_1d(max_load_for_rate(gap, rates, rl.weights(basis))) if basis == "mean"
              else per_year.min(axis=0))
    event = max_load_for_event_length(gap, max_event_h, rl.breaks) if max_event_h is not None else np.inf
    L = np.minimum(energy, event)
    binding = ["event-length" if e < x else "energy" for x, e in zip(energy, np.broadcast_to(event, energy.shape))]
    return L, binding, per_year


def _stats(rl: RegionLoad, L: float) -> dict:
    c = curtailment_mw(rl.gap_mw, L)
    curtailed = c > 0
    ev = events(curtailed, rl.breaks)
    years = np.asarray(rl.years)
    yi = np.searchsorted(years, rl.year)
    n = np.bincount(yi, minlength=years.size).astype(float)
    energy = np.bincount(yi, weights=c, minlength=years.size)
    rate = energy / (L * n) if L > 0 else np.zeros(years.size)
    hours = np.bincount(yi, weights=curtailed.astype(float), minlength=years.size)
    ev_year = np.bincount(yi[ev.start], minlength=years.size) if ev.count else np.zeros(years.size, int)
    return {"c": c, "curtailed": curtailed, "ev": ev, "rate": rate, "hours": hours, "ev_year": ev_year}


def headroom(
    rl: RegionLoad,
    fraction: float,
    *,
    basis: Basis = "mean",
    max_event_h: int | None = None,
    depth_frac: float | None = None,
) -> HeadroomResult:
    """Curtailment-enabled headroom of one region at one annual curtailment limit.

    ``max_event_h`` adds the event-length bound to the headroom. ``depth_frac`` (a site's deliverable
    curtailment depth, see :func:`tier_depth`) does not change the headroom; it adds, in ``depth``:
    ``site_headroom_mw`` (the largest load that also never needs more than ``depth_frac`` of itself
    curtailed), and, at the headroom, ``backup_mw`` (largest shortfall between the curtailment the grid
    needs and what the site can shed, i.e. on-site generation or storage needed),
    ``backup_mwh_per_year`` and ``hours_beyond_depth_per_year``.
    """
    return headroom_many(rl, [fraction], basis=basis, max_event_h=max_event_h, depth_frac=depth_frac)[0]


def headroom_many(
    rl: RegionLoad,
    fractions: Sequence[float],
    *,
    basis: Basis = "mean",
    max_event_h: int | None = None,
    depth_frac: float | None = None,
) -> list[HeadroomResult]:
    """:func:`headroom` at several limits, sorting the hourly gaps once."""
    for f in fractions:
        _check_fraction(f)
    if basis not in ("mean", "worst-year"):
        raise ScenarioError(f"unknown basis '{basis}'; use 'mean' or 'worst-year'", field="basis")
    if max_event_h is not None and (int(max_event_h) != max_event_h or max_event_h < 1):
        raise ScenarioError(f"maximum event length must be a whole number of hours >= 1 (got {max_event_h})",
                            field="max_event_h")
    if depth_frac is not None and not (0.0 <= float(depth_frac) <= 1.0):
        raise ScenarioError(f"curtailment depth must be within 0..1 (got {depth_frac})", field="depth_frac")
    rates = np.asarray([float(f) for f in fractions])
    Ls, bindings, per_year = _solve(rl, rates, basis, max_event_h)
    Y = len(rl.years)
    depth_bound = max_load_for_depth(rl.gap_mw, float(depth_frac)) if depth_frac is not None else np.inf
    out = []
    for k, (f, L, binding) in enumerate(zip(rates, Ls, bindings)):
        L = float(L)
        st = _stats(rl, L)
        ev = st["ev"]
        by_year = pd.DataFrame({"year": list(rl.years), "headroom_mw": per_year[:, k],
                                "curtailed_frac": st["rate"], "hours_curtailed": st["hours"],
                                "events": st["ev_year"]})
        depth: dict[str, float] = {}
        if depth_frac is not None:
            d = float(depth_frac)
            short = np.maximum(st["c"] - d * L, 0.0)
            depth = {"depth_frac": d, "site_headroom_mw": float(min(L, depth_bound)),
                     "backup_mw": float(short.max()), "backup_mwh_per_year": float(short.sum() / Y),
                     "hours_beyond_depth_per_year": float(np.count_nonzero(short > 1e-9 * max(L, 1.0)) / Y)}
        out.append(HeadroomResult(
            region=rl.region, curtailment_frac=float(f), headroom_mw=L, binding=binding,
            hours_curtailed_per_year=float(st["hours"].sum() / Y), events_per_year=ev.count / Y,
            event_mean_h=ev.mean_h, event_max_h=ev.max_h,
            curtailed_frac_mean=float(st["rate"].mean()), curtailed_frac_worst_year=float(st["rate"].max()),
            peak_mw=rl.peak_mw, years=rl.years, basis=basis, by_year=by_year, depth=depth))
    return out


def _check_fraction(f: float) -> None:
    if not (isinstance(f, (int, float)) and np.isfinite(f) and 0.0 < f < 1.0):
        raise ScenarioError(f"curtailment limit must be a fraction strictly between 0 and 1 (got {f!r})",
                            field="curtailment")


def headroom_table(
    regions: Mapping[str, RegionLoad],
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    *,
    basis: Basis = "mean",
    max_event_h: int | None = None,
    depth_frac: float | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Headroom for every region × limit, plus the sum over the (non-CONUS) regions when there are two or more.

    Returns ``(table, by_year)``. ``table`` starts with the columns ``region, curtailment_frac,
    headroom_gw, hours_curtailed, events`` (hours and events per year, averaged over the study years),
    then ``event_mean_h, event_max_h, curtailed_frac_mean, curtailed_frac_worst_year, peak_gw,
    headroom_share_of_peak, binding, basis, years, scope`` and, with a depth, the depth-join columns. The
    ``SUM_REGIONS`` row adds the regional headrooms (hours and events are left empty: each region curtails
    at its own times). ``by_year`` has one row per region × limit × year.
    """
    for f in fractions:
        _check_fraction(f)
    rows, years_rows = [], []
    for name, rl in regions.items():
        for r in headroom_many(rl, fractions, basis=basis, max_event_h=max_event_h, depth_frac=depth_frac):
            f = r.curtailment_frac
            scope = "contiguous US as one region" if name == CONUS else "region"
            row = {"region": name, "curtailment_frac": f, "headroom_gw": r.headroom_gw,
                   "hours_curtailed": r.hours_curtailed_per_year, "events": r.events_per_year,
                   "event_mean_h": r.event_mean_h, "event_max_h": r.event_max_h,
                   "curtailed_frac_mean": r.curtailed_frac_mean,
                   "curtailed_frac_worst_year": r.curtailed_frac_worst_year,
                   "peak_gw": r.peak_mw / 1e3, "headroom_share_of_peak": r.headroom_mw / r.peak_mw,
                   "binding": r.binding, "basis": basis, "years": _years_label(r.years), "scope": scope}
            if r.depth:
                row.update({"depth_frac": r.depth["depth_frac"],
                            "site_headroom_gw": r.depth["site_headroom_mw"] / 1e3,
                            "backup_gw": r.depth["backup_mw"] / 1e3,
                            "backup_gwh_per_year": r.depth["backup_mwh_per_year"] / 1e3,
                            "hours_beyond_depth": r.depth["hours_beyond_depth_per_year"]})
            rows.append(row)
            by = r.by_year.assign(region=name, curtailment_frac=f, headroom_gw=r.by_year["headroom_mw"] / 1e3)
            years_rows.append(by[["region", "curtailment_frac", "year", "headroom_gw", "curtailed_frac",
                                  "hours_curtailed", "events"]])
    table = pd.DataFrame(rows)
    parts = [n for n in regions if n != CONUS]
    if len(parts) >= 2:
        sub = table[table["region"].isin(parts)]
        agg = {"headroom_gw": "sum", "peak_gw": "sum"}
        if "site_headroom_gw" in table:
            agg.update(site_headroom_gw="sum", backup_gw="sum", backup_gwh_per_year="sum")
        s = sub.groupby("curtailment_frac", sort=False).agg(agg).reset_index()
        s["region"] = SUM_REGION
        s["headroom_share_of_peak"] = s["headroom_gw"] / s["peak_gw"]  # share of the sum of regional peaks
        s["binding"] = ""
        s["basis"] = basis
        s["years"] = table["years"].iloc[0]
        s["scope"] = f"sum of {len(parts)} regional headrooms"
        if "depth_frac" in table:
            s["depth_frac"] = depth_frac
        table = pd.concat([table, s], ignore_index=True)
    by_year = pd.concat(years_rows, ignore_index=True) if years_rows else pd.DataFrame()
    return table, by_year


def _years_label(years: Sequence[int]) -> str:
    ys = list(years)
    if ys == list(range(ys[0], ys[-1] + 1)) and len(ys) > 1:
        return f"{ys[0]}-{ys[-1]}"
    return " ".join(map(str, ys))


# --------------------------------------------------------------------------------------------- tiers


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
