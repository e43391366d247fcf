"""Static PNG versions of the report figures (matplotlib, Agg canvas, no pyplot global state)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gridshift.report.figures import (
    SAVING_PARTS,
    SAVING_REFERENCES,
    SAVING_SCOPES,
    color,
    cumulative_carbon,
    downsample,
    jct_cdf,
    reference_lines,
    saving_splits,
    service_frames,
    site_frames,
    sites_of,
)
from gridshift.sim.result import PolicyRun

DPI = 110
WIDTH_IN = 11.0


def _new_figure(height_in: float, rows: int = 1, sharex: bool = True):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH_IN, height_in), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, 1, sharex=sharex, squeeze=False)[:, 0]
    return fig, list(axes)


def _date_axis(ax) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def _ylim0(ax) -> None:
    top = ax.dataLim.y1 if np.isfinite(ax.dataLim.y1) else 0.0
    ax.set_ylim(0, top * 1.1 if top > 0 else 1.0)


def _outside_legend(fig) -> None:
    """One legend below the panels, one entry per label over all axes (incl. twin axes)."""
    entries: dict[str, object] = {}
    for ax in fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    if entries:
        fig.legend(list(entries.values()), list(entries), loc="outside lower center", ncol=min(5, len(entries)),
                   fontsize=8, frameon=False)


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
        frames = site_frames(runs, site)
        for i, run, df in frames:
            t, y, _ = downsample(df.index, df["facility_power_mw"], "max")
            ax.plot(t, y, color=color(i), lw=1.2, label=run.policy)
        for col, name, t, y in reference_lines(frames, "power_cap_mw", "power cap"):
            ax.plot(t, y, color=col, ls="--", lw=1.0, label=name)
        ax.set_ylabel("MW")
        _ylim0(ax)
        ax.set_title(f"{site} (zone {zone})", fontsize=10, loc="left")
        ax.grid(alpha=0.3)
        if frames:
            t, y, _ = downsample(frames[0][2].index, frames[0][2]["carbon_g_per_kwh"], "mean")
            ax2 = ax.twinx()
            ax2.plot(t, y, color="0.45", ls=":", lw=1.0, label="grid carbon intensity")
            ax2.set_ylabel("gCO₂/kWh", color="0.35")
            _ylim0(ax2)
        _date_axis(ax)
    axes[-1].set_xlabel("time (UTC)")
    _outside_legend(fig)
    fig.suptitle("Facility power vs power cap (left) and grid carbon intensity (right, dotted)", fontsize=11)
    return _save(fig, path)


def _cum_carbon(path: Path, runs: list[PolicyRun]) -> Path | None:
    fig, (ax,) = _new_figure(4.5)
    drawn = False
    for i, run in enumerate(runs):
        s = cumulative_carbon(run)
        if s.empty:
            continue
        t, y, _ = downsample(s.index, s.to_numpy(), "last")
        ax.plot(t, y, color=color(i), lw=1.5, label=run.policy)
        drawn = True
    if not drawn:
        fig.clear()
        return None
    ax.set(xlabel="time (UTC)", ylabel="cumulative carbon (t CO₂)", title="Cumulative carbon, all sites")
    _ylim0(ax)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9, loc="upper left")
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
    from matplotlib.ticker import FuncFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _pos: f"{v:g}" if f"{v:g}"[0] in "25" else ""))
    ax.set(xlabel="job completion time (h, log scale)", ylabel="fraction of all jobs finished",
           title="Job completion time CDF (ends below 1 = unfinished jobs)", ylim=(0, 1.02))
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=9, loc="lower right")
    return _save(fig, path)


def _service(path: Path, runs: list[PolicyRun]) -> Path | None:
    services = service_frames(runs)
    if not services:
        return None
    fig, axes = _new_figure(min(2.4 * len(services) + 1.0, 40.0), rows=len(services))
    for ax, (name, frames) in zip(axes, services.items()):
        for col, label, t, y in reference_lines(frames, "demand_rps", "demand"):
            ax.plot(t, y, color=col, ls="--", lw=1.0, label=label)
        for i, run, g in frames:
            t, y, _ = downsample(g.index, g["served_rps"], "mean")
            ax.plot(t, y, color=color(i), lw=1.2, label=f"served – {run.policy}")
        ax.set_ylabel("requests/s")
        _ylim0(ax)
        ax.set_title(name, fontsize=10, loc="left")
        ax.grid(alpha=0.3)
        _date_axis(ax)
    axes[-1].set_xlabel("time (UTC)")
    _outside_legend(fig)
    fig.suptitle("Inference serving: served vs demanded requests (summed over regions)", fontsize=11)
    return _save(fig, path)


def _savings(path: Path, runs: list[PolicyRun]) -> Path | None:
    rows = saving_splits(runs)
    refs = [(r, label) for r, label in SAVING_REFERENCES if any(x["reference"] == r for x in rows)]
    if not refs:
        return None
    fig, axes = _new_figure(3.2 * len(refs) + 0.8, rows=len(refs), sharex=False)
    colors = {"timing": "#2ca02c", "energy": "#1f77b4", "work_left": "#7f7f7f"}
    scope_label = dict(SAVING_SCOPES)
    for ax, (ref, label) in zip(axes, refs):
        sel = [x for x in rows if x["reference"] == ref]
        xs = np.arange(len(sel))
        pos, neg = np.zeros(len(sel)), np.zeros(len(sel))
        for key, part in SAVING_PARTS:
            v = np.array([100 * r[key] for r in sel])
            base = np.where(v >= 0, pos, neg)
            ax.bar(xs, v, bottom=base, color=colors[key], label=part)
            pos, neg = pos + np.maximum(v, 0), neg + np.minimum(v, 0)
        ax.scatter(xs, [100 * r["total"] for r in sel], marker="D", color="black", zorder=3, label="total saving")
        ax.axhline(0, color="black", lw=0.6)
        ax.margins(y=0.12)
        ax.set_xticks(xs, [f"{r['policy']}\n{scope_label[r['scope']]}" for r in sel], fontsize=8)
        ax.set_ylabel("% of the reference")
        ax.set_title(f"saving {label}", fontsize=10, loc="left")
        ax.grid(alpha=0.3, axis="y")
    _outside_legend(fig)
    fig.suptitle("Savings split: timing / placement, energy, work left (jobs' own and the site's)", fontsize=11)
    return _save(fig, path)


def write_pngs(out_dir: Path, runs: list[PolicyRun]) -> list[Path]:
    """Write site_power.png, cumulative_carbon.png, jct_cdf.png, (with service data) service_slo.png and
    (with savings against a reference) savings_split.png.

    Figures without any data are skipped; returns the paths actually written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw in (("site_power.png", _site_power), ("cumulative_carbon.png", _cum_carbon),
                       ("jct_cdf.png", _jct), ("service_slo.png", _service), ("savings_split.png", _savings)):
        path = draw(out_dir / name, runs)
        if path is not None:
            written.append(path)
    return written
