"""Headroom of whole regions: a region's hourly load over the study years with its seasonal thresholds, the
headroom at each curtailment limit with what the new load goes through at it, and the table over regions
(with their sum and the published figures it is compared with).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

import numpy as np
import pandas as pd

from gridshift.errors import ScenarioError
from gridshift.studies.headroom.curtailment import (
    curtailment_mw,
    events,
    max_load_for_depth,
    max_load_for_event_length,
    max_load_for_rate,
    seasonal_peak_mw,
)

Basis = Literal["mean", "worst-year"]

DEFAULT_FRACTIONS = (0.0025, 0.005, 0.01, 0.05)

# Published curtailment-enabled headroom, summed over the 22 largest US balancing authorities, GW, by
# annual curtailment limit (fraction of the new load's energy). Only these three figures are cited.
DUKE_GW: dict[float, float] = {0.0025: 76.0, 0.005: 98.0, 0.01: 126.0}
DUKE_SOURCE = ("Norris, Profeta, Patino-Echeverri & Cowie-Haskell, \"Rethinking Load Growth: Assessing the "
               "Potential for Integration of Large Flexible Loads in US Power Systems\", Nicholas Institute for "
               "Energy, Environment & Sustainability, Duke University, February 2025, "
               "https://hdl.handle.net/10161/32077 (22 largest balancing authorities)")

SUM_REGION = "SUM_REGIONS"  # table row: the regional headrooms added up
CONUS = "CONUS"  # the contiguous US treated as one region

_MIN_YEAR_COVERAGE = 0.99  # a study year needs this share of its hours in the data


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
