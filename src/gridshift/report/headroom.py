"""The headroom study's outputs: the console tables, ``headroom.csv``, ``headroom_by_year.csv``,
``headroom.json`` and ``headroom.png``.

``run`` is a :class:`gridshift.studies.headroom.HeadroomRun` (read by its attributes).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from gridshift.report.output import OutputDir, write_json_atomic

DIFFERENCES = (
    "Why ours differ from the published figures:",
    ("- spatial unit: 13 EIA regions (each a sum of balancing authorities) instead of the 22 largest BAs. A "
     "region's seasonal peak is at most the sum of its BAs' peaks, so its thresholds leave less room than its "
     "BAs' thresholds together, and the sum over regions typically comes out below a sum over BAs; CONUS as "
     "one region is lower again;"),
    "- coverage: the 13 regions cover the whole contiguous US, the 22 BAs about 95 % of its load;",
    ("- years: 2020–2024 (5 years, in which load grew: early years add headroom that later peaks removed) "
     "instead of the report's 2016–2024; thresholds are the seasonal peaks of the years used;"),
    ("- data: Ruggles & Farnham's cleaned EIA-930 demand (anomalous spikes replaced), so thresholds are not "
     "set by reporting errors;"),
    "- time: seasons by UTC calendar month.",
)


def _pct(f: float) -> str:
    return f"{f * 100:g} %"


def _fmt_gw(v) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:,.1f}"


def console_items(run: Any) -> list[Any]:
    """The console output of a run, in order: rich tables, and lines of text (str) to print without markup.

    The headroom per region and limit, ours beside the published figures and why they differ, and with
    tiers, the site's depth and its join with the regions.
    """
    from rich.table import Table

    table, comparison, tiers = run.table, run.doc["comparison"], run.tiers
    fractions, years_label, basis = run.doc["curtailment_fracs"], run.doc["years"], run.doc["basis"]
    sum_region, conus = run.sum_region, run.conus
    items: list[Any] = []

    t = Table(title=f"Curtailment-enabled headroom, GW, and hours curtailed per year ({years_label}, "
                    f"{'mean of annual rates' if basis == 'mean' else 'every year within the limit'})")
    t.add_column("region")
    for f in fractions:
        t.add_column(f"GW @ {_pct(f)}", justify="right")
        t.add_column("h/yr", justify="right")
    order = [r for r in dict.fromkeys(table["region"]) if r not in (sum_region, conus)]
    order += [r for r in (sum_region, conus) if r in set(table["region"])]
    for reg in order:
        sub = table[table["region"] == reg].set_index("curtailment_frac")
        cells = []
        for f in fractions:
            row = sub.loc[f]
            cells += [_fmt_gw(row["headroom_gw"]),
                      "" if math.isnan(row["hours_curtailed"]) else f"{row['hours_curtailed']:.0f}"]
        label = {sum_region: "sum of regions", conus: "CONUS as one region"}.get(reg, reg)
        nxt = order[order.index(reg) + 1] if reg != order[-1] else None
        t.add_row(label, *cells, end_section=nxt in (sum_region, conus) and reg not in (sum_region, conus))
    items.append(t)

    c = Table(title="Ours beside the published figures, GW")
    for col in ("curtailment limit", "ours: sum of regions", "ours: CONUS as one region",
                "Duke 2025: 22 largest BAs"):
        c.add_column(col, justify="right")
    for r in comparison:
        c.add_row(_pct(r["curtailment_frac"]), _fmt_gw(r["sum_of_regions_gw"]), _fmt_gw(r["conus_one_region_gw"]),
                  _fmt_gw(r["duke_22_ba_gw"]))
    items.append(c)
    items.append(f"Published figures: {run.published_source}.")
    items += DIFFERENCES

    if tiers is not None:
        tt = Table(title=f"Site flexibility: deliverable curtailment depth {tiers.depth_frac:.3f} of site power"
                         + (f" ({tiers.accelerator} power-cap curve)" if tiers.accelerator else " (duty-cycling)"))
        for col in ("tier", "share", "throughput loss allowed", "lever", "sheds of its power"):
            tt.add_column(col, justify="right")
        for k, (s, lim, lev, cut) in enumerate(zip(tiers.shares, tiers.loss_limits, tiers.lever, tiers.cut_frac)):
            tt.add_row(str(k), f"{s:.3g}", "pause allowed" if lev == "pause" else _pct(lim), lev, f"{cut:.3f}")
        items.append(tt)
        j = Table(title="Join with the site: AI load the region can take, and backup needed at the headroom, GW")
        j.add_column("region")
        for f in fractions:
            j.add_column(f"site GW @ {_pct(f)}", justify="right")
            j.add_column("backup GW", justify="right")
        for reg in order:
            sub = table[table["region"] == reg].set_index("curtailment_frac")
            cells = []
            for f in fractions:
                cells += [_fmt_gw(sub.loc[f, "site_headroom_gw"]), _fmt_gw(sub.loc[f, "backup_gw"])]
            j.add_row({sum_region: "sum of regions", conus: "CONUS as one region"}.get(reg, reg), *cells)
        items.append(j)
        items.append("A site that can shed only part of its power cannot follow the curtailment at a seasonal-peak "
                     "hour, where the grid needs the whole new load off; 'site GW' is the load it can add without "
                     "help, 'backup GW' the on-site generation or storage that closes the gap at the full headroom.")
    return items


def write_png(path: Path, table, comparison, fractions, *, sum_region: str, conus: str) -> None:
    """``headroom.png``: headroom by region and limit, and the contiguous-US figures beside the published ones."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure


    regions = [r for r in dict.fromkeys(table["region"]) if r not in (sum_region, conus)]
    fig = Figure(figsize=(11.0, 4.6), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2, width_ratios=[2.2, 1]) if regions else (None, fig.subplots(1, 1))
    width = 0.8 / max(len(fractions), 1)
    if regions:
        for k, f in enumerate(fractions):
            sub = table[table["curtailment_frac"] == f].set_index("region")
            ax1.bar([i + k * width for i in range(len(regions))], [sub.loc[r, "headroom_gw"] for r in regions],
                    width=width, label=_pct(f))
        ax1.set_xticks([i + 0.4 - width / 2 for i in range(len(regions))], regions)
        ax1.set_ylabel("headroom, GW")
        ax1.set_title("By EIA region")
        ax1.legend(title="curtailment limit", fontsize=8)
    xs = range(len(fractions))
    for key, label, marker in (("sum_of_regions_gw", "ours: sum of regions", "o"),
                               ("conus_one_region_gw", "ours: CONUS as one region", "s"),
                               ("duke_22_ba_gw", "Duke 2025: 22 largest BAs", "^")):
        ys = [r[key] if r[key] is not None else float("nan") for r in comparison]
        if any(not math.isnan(y) for y in ys):
            ax2.plot(list(xs), ys, marker=marker, label=label)
    ax2.set_xticks(list(xs), [_pct(f) for f in fractions])
    ax2.set_xlabel("annual curtailment limit")
    ax2.set_ylabel("headroom, GW")
    ax2.set_title("Contiguous US")
    ax2.legend(fontsize=8)
    fig.savefig(path, format="png")


def write_outputs(run: Any, out_dir: Path) -> Path:
    """Write ``headroom.csv``, ``headroom_by_year.csv``, ``headroom.json`` and ``headroom.png`` atomically;
    the final path."""
    od = OutputDir(out_dir)
    with od as tmp:
        run.table.to_csv(tmp / "headroom.csv", index=False, float_format="%.10g")
        run.by_year.to_csv(tmp / "headroom_by_year.csv", index=False, float_format="%.10g")
        write_json_atomic(tmp / "headroom.json", run.doc)
        write_png(tmp / "headroom.png", run.table, run.comparison, run.fractions, sum_region=run.sum_region,
                  conus=run.conus)
    return od.final
