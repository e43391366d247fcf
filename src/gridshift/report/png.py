"""Static PNG versions of the report figures (matplotlib, Agg canvas, no pyplot global state)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from gridshift.report.html import (
    color,
    cumulative_carbon,
    downsample,
    jct_cdf,
    same_series,
    service_totals,
    services_of,
    site_frame,
    sites_of,
)
from gridshift.sim.result import PolicyRun

DPI = 110
WIDTH_IN = 11.0


def _new_figure(height_in: float, rows: int = 1):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH_IN, height_in), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    return fig, list(axes)


def _date_axis(ax) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def _save(fig, path: Path) -> Path:
    try:
        fig.savefig(path, dpi=DPI, format="png")
    finally:
        fig.clear()
    return path


def _site_power(path: Path, runs: list[PolicyRun]) -> Path | None:
    sites = sites_of(runs)
    if not sites:
        return None
    fig, axes = _new_figure(min(2.4 * len(sites) + 1.0, 40.0), rows=len(sites))
    for ax, (site, zone) in zip(axes, sites):
        frames = [(i, run, site_frame(run, site)) for i, run in enumerate(runs)]
        frames = [(i, run, df) for i, run, df in frames if not df.empty]
        for i, run, df in frames:
            t, y, _ = downsample(pd.DatetimeIndex(df["time"]), df["facility_power_mw"], "max")
            ax.plot(t, y, color=color(i), lw=1.2, label=run.policy)
        caps = [pd.to_numeric(df["power_cap_mw"], errors="coerce").to_numpy(dtype=float) for _, _, df in frames]
        if frames and not all(np.isnan(c).all() for c in caps):
            shared = same_series(caps)
            for (i, run, df), cap in zip(frames[:1] if shared else frames, caps):
                t, y, _ = downsample(pd.DatetimeIndex(df["time"]), cap, "max")
                ax.plot(t, y, color="black" if shared else color(i), ls="--", lw=1.0,
                        label="power cap" if shared else f"power cap – {run.policy}")
        ax.set_ylabel("MW")
        ax.set_ylim(bottom=0)
        ax.set_title(f"{site} (zone {zone})", fontsize=10, loc="left")
        ax.grid(alpha=0.3)
        if frames:
            df = frames[0][2]
            t, y, _ = downsample(pd.DatetimeIndex(df["time"]), df["carbon_g_per_kwh"], "mean")
            ax2 = ax.twinx()
            ax2.plot(t, y, color="0.45", ls=":", lw=1.0, label="grid carbon intensity")
            ax2.set_ylabel("gCO₂/kWh", color="0.35")
            ax2.set_ylim(bottom=0)
            if ax is axes[0]:
                h1, l1 = ax.get_legend_handles_labels()
                h2, l2 = ax2.get_legend_handles_labels()
                ax.legend(h1 + h2, l1 + l2, fontsize=8, loc="upper left", ncol=min(4, len(l1) + 1))
        _date_axis(ax)
    axes[-1].set_xlabel("time (UTC)")
    fig.suptitle("Facility power vs power cap (left) and grid carbon intensity (right, dotted)", fontsize=11)
    return _save(fig, path)


def _cum_carbon(path: Path, runs: list[PolicyRun]) -> Path | None:
    fig, (ax,) = _new_figure(4.5)
    drawn = False
    for i, run in enumerate(runs):
        s = cumulative_carbon(run)
        if s.empty:
            continue
        t, y, _ = downsample(pd.DatetimeIndex(s.index), s.to_numpy(), "last")
        ax.plot(t, y, color=color(i), lw=1.5, label=run.policy)
        drawn = True
    if not drawn:
        fig.clear()
        return None
    ax.set(xlabel="time (UTC)", ylabel="cumulative carbon (t CO₂)", title="Cumulative carbon, all sites")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    _date_axis(ax)
    return _save(fig, path)


def _jct(path: Path, runs: list[PolicyRun]) -> Path | None:
    fig, (ax,) = _new_figure(4.5)
    drawn = False
    for i, run in enumerate(runs):
        x, y, k, n = jct_cdf(run)
        if k:
            ax.step(x, y, where="post", color=color(i), lw=1.5, label=f"{run.policy} ({k}/{n} finished)")
            drawn = True
    if not drawn:
        fig.clear()
        return None
    ax.set_xscale("log")
    ax.set(xlabel="job completion time (h, log scale)", ylabel="fraction of all jobs finished",
           title="Job completion time CDF (ends below 1 = unfinished jobs)", ylim=(0, 1.02))
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=9, loc="lower right")
    return _save(fig, path)


def _service(path: Path, runs: list[PolicyRun]) -> Path | None:
    names = services_of(runs)
    if not names:
        return None
    fig, axes = _new_figure(min(2.4 * len(names) + 1.0, 40.0), rows=len(names))
    for ax, name in zip(axes, names):
        got = [(i, run, service_totals(run).get(name)) for i, run in enumerate(runs)]
        got = [(i, run, g) for i, run, g in got if g is not None]
        shared = same_series([g["demand_rps"].to_numpy(dtype=float) for _, _, g in got])
        for i, run, g in got[:1] if shared else got:
            t, y, _ = downsample(pd.DatetimeIndex(g.index), g["demand_rps"], "max")
            ax.plot(t, y, color="black" if shared else color(i), ls="--", lw=1.0,
                    label="demand" if shared else f"demand – {run.policy}")
        for i, run, g in got:
            t, y, _ = downsample(pd.DatetimeIndex(g.index), g["served_rps"], "mean")
            ax.plot(t, y, color=color(i), lw=1.2, label=f"served – {run.policy}")
        ax.set_ylabel("requests/s")
        ax.set_ylim(bottom=0)
        ax.set_title(name, fontsize=10, loc="left")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
        _date_axis(ax)
    axes[-1].set_xlabel("time (UTC)")
    fig.suptitle("Inference serving: served vs demanded requests (summed over regions)", fontsize=11)
    return _save(fig, path)


def write_pngs(out_dir: Path, runs: list[PolicyRun]) -> list[Path]:
    """Write site_power.png, cumulative_carbon.png, jct_cdf.png and (with service data) service_slo.png.

    Figures without any data are skipped; returns the paths actually written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw in (("site_power.png", _site_power), ("cumulative_carbon.png", _cum_carbon),
                       ("jct_cdf.png", _jct), ("service_slo.png", _service)):
        path = draw(out_dir / name, runs)
        if path is not None:
            written.append(path)
    return written
