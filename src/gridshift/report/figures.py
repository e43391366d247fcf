"""Figure data shared by :mod:`gridshift.report.html` (plotly) and :mod:`gridshift.report.png` (matplotlib).

Downsampling, policy colours, per-site and per-service frames, cumulative carbon and the JCT CDF, so both
outputs show exactly the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd

from gridshift.sim.result import PolicyRun

MAX_POINTS = 2000  # per trace, for display only
POLICY_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                 "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


def color(i: int) -> str:
    return POLICY_COLORS[i % len(POLICY_COLORS)]


def naive_utc(times: Iterable) -> pd.DatetimeIndex:
    """Timestamps as tz-naive UTC (both plotting libraries handle those reliably)."""
    idx = pd.DatetimeIndex(pd.to_datetime(pd.Index(times), utc=True))
    return idx.tz_convert("UTC").tz_localize(None)


def downsample(times: pd.DatetimeIndex, values, how: str, max_points: int = MAX_POINTS):
    """Aggregate consecutive windows so at most ``max_points`` remain; returns (times, values, window)."""
    vals = np.asarray(values, dtype=float)
    n = len(vals)
    if n <= max_points:
        return times, vals, 1
    window = math.ceil(n / max_points)
    groups = np.arange(n) // window
    agg = pd.Series(vals).groupby(groups)
    out = {"max": agg.max, "mean": agg.mean, "last": agg.last}[how]().to_numpy(dtype=float)
    starts = np.arange(len(out)) * window
    pick = np.minimum(starts + window - 1, n - 1) if how == "last" else starts
    return times[pick], out, window


def sites_of(runs: list[PolicyRun]) -> list[tuple[str, str]]:
    """(site, zone) pairs in order of first appearance over all runs."""
    seen: dict[str, str] = {}
    for ts in (r.site_timeseries for r in runs if r.site_timeseries is not None and not r.site_timeseries.empty):
        for site, zone in ts[["site", "zone"]].drop_duplicates("site").itertuples(index=False):
            seen.setdefault(str(site), str(zone))
    return list(seen.items())


def site_frames(runs: list[PolicyRun], site: str) -> list[tuple[int, PolicyRun, pd.DataFrame]]:
    """(policy index, run, that site's rows indexed by naive-UTC time) for every run that has the site."""
    out = []
    for i, run in enumerate(runs):
        ts = run.site_timeseries
        if ts is not None and not ts.empty and (ts["site"].astype(str) == site).any():
            df = ts[ts["site"].astype(str) == site].sort_values("time")
            out.append((i, run, df.set_index(naive_utc(df["time"]))))
    return out


def service_totals(run: PolicyRun) -> dict[str, pd.DataFrame]:
    """Per service: demand_rps and served_rps summed over regions, indexed by naive-UTC time."""
    sv = run.service_timeseries
    if sv is None or sv.empty:
        return {}
    out = {}
    for name, df in sv.groupby("service", sort=False):
        g = df.groupby("time")[["demand_rps", "served_rps"]].sum().sort_index()
        out[str(name)] = g.set_axis(naive_utc(g.index))
    return out


def service_frames(runs: list[PolicyRun]) -> dict[str, list[tuple[int, PolicyRun, pd.DataFrame]]]:
    """Service name -> [(policy index, run, totals)] for the runs that have it."""
    out: dict[str, list] = {}
    for i, run in enumerate(runs):
        for name, g in service_totals(run).items():
            out.setdefault(name, []).append((i, run, g))
    return out


def reference_lines(frames, column: str, label: str) -> list[tuple[str, str, pd.DatetimeIndex, np.ndarray]]:
    """(colour, name, t, y) for a per-policy reference such as the power cap or the demand.

    One black line when all policies see the same values, else one line per policy; none if all NaN.
    """
    vals = [pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=float) for _, _, df in frames]
    if not vals or all(np.isnan(v).all() for v in vals):
        return []
    shared = all(len(v) == len(vals[0]) and np.allclose(v, vals[0], equal_nan=True) for v in vals[1:])
    out = []
    for (i, run, df), v in zip(frames[:1] if shared else frames, vals):
        t, y, _ = downsample(df.index, v, "max")
        out.append(("black" if shared else color(i), label if shared else f"{label} – {run.policy}", t, y))
    return out


def cumulative_carbon(run: PolicyRun) -> pd.Series:
    """Total carbon over all sites, cumulated over time (t), indexed by naive-UTC time."""
    ts = run.site_timeseries
    if ts is None or ts.empty:
        return pd.Series(dtype=float)
    s = ts.groupby("time")["carbon_t"].sum().sort_index().cumsum()
    return pd.Series(s.to_numpy(dtype=float), index=naive_utc(s.index))


def jct_cdf(run: PolicyRun, max_points: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(jct_h sorted, cumulative fraction of *all* jobs, n_finished, n_total)."""
    if run.jobs is None or run.jobs.empty:
        return np.array([]), np.array([]), 0, 0
    jct = pd.to_numeric(run.jobs["jct_h"], errors="coerce").to_numpy(dtype=float)
    done = np.sort(jct[np.isfinite(jct)])
    n_total, k = len(jct), len(done)
    frac = np.arange(1, k + 1) / max(n_total, 1)
    if k > max_points:
        pick = np.unique(np.linspace(0, k - 1, max_points).round().astype(int))
        done, frac = done[pick], frac[pick]
    positive = done[done > 0]
    return np.maximum(done, positive.min() if positive.size else 1e-3), frac, k, n_total


SAVING_PARTS = (("timing", "timing / placement"), ("energy", "energy"), ("work_left", "work left at the end"))
SAVING_REFERENCES = (("asap", "vs asap"), ("nominal", "vs the nominal start"))
SAVING_SCOPES = (("jobs", "jobs' own"), ("site", "site"))


def saving_splits(runs: list[PolicyRun]) -> list[dict]:
    """One row per (reference, scope, policy) present in the runs' ``savings``: the saving and its parts
    (timing / placement, energy, work left) as fractions of the reference's value (sim.attribution)."""
    rows = []
    for ref, _ in SAVING_REFERENCES:
        for scope, _ in SAVING_SCOPES:
            for i, run in enumerate(runs):
                s = (run.metrics.get("savings") or {}).get(f"vs_{ref}", {}).get(scope)
                if not s or run.policy == ref:
                    continue
                den = s["reference"] or math.nan
                rows.append({"reference": ref, "scope": scope, "policy": run.policy, "index": i,
                             "total": s["total"] / den, **{k: s[k] / den for k, _ in SAVING_PARTS}})
    return rows
