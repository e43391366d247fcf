"""The sweep's pages and tables: ``report.html`` (plots per varying axis, every cell, the failures) and the
console summary of a sweep's results per policy.
"""

from __future__ import annotations

import html as _html
import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from gridshift.report.style import CSS

METRIC_TITLES = {"carbon_t": "Carbon, t CO₂", "batch_carbon_t": "Batch jobs' carbon, t CO₂",
                 "cost_usd": "Energy cost, USD", "deadline_miss_frac": "Deadline misses, share",
                 "saving_vs_asap_frac": "Saving vs asap, share", "oracle_capture_frac": "Oracle capture, share"}
TABLE_METRICS = ("objective_value", "carbon_t", "batch_carbon_t", "cost_usd", "energy_mwh", "deadline_miss_frac",
                 "work_done_frac", "saving_vs_asap_frac", "oracle_capture_frac", "wall_s")


def _axis_fig(ok: pd.DataFrame, axis: str | None, keys: list[str]):
    """Mean of each metric per value of ``axis`` (x) and policy (bars), over all other axes."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from gridshift.report.figures import color

    metrics = [(k, METRIC_TITLES.get(k, k)) for k in keys
               if k in ok.columns and pd.to_numeric(ok[k], errors="coerce").notna().any()]
    if not metrics:
        return None
    rows = (len(metrics) + 1) // 2
    fig = make_subplots(rows=rows, cols=2, subplot_titles=[t for _, t in metrics], vertical_spacing=0.18)
    x_of = ok[axis].astype(str) if axis else pd.Series("all", index=ok.index)
    order = list(dict.fromkeys(x_of))  # the order of the sweep file (cells are in axis order)
    for i, (key, _) in enumerate(metrics):
        r, c = i // 2 + 1, i % 2 + 1
        vals = pd.to_numeric(ok[key], errors="coerce")
        for j, pol in enumerate(dict.fromkeys(ok["policy"])):
            sel = ok["policy"] == pol
            g = vals[sel].groupby(x_of[sel]).agg(["mean", "min", "max", "count"]).reindex(order)
            fig.add_trace(go.Bar(
                x=order, y=g["mean"], name=str(pol), legendgroup=str(pol), showlegend=i == 0,
                marker_color=color(j),
                error_y={"type": "data", "symmetric": False, "array": g["max"] - g["mean"],
                         "arrayminus": g["mean"] - g["min"], "visible": bool((g["count"] > 1).any())},
                customdata=g["count"], hovertemplate="%{x}: %{y:.4g} (mean of %{customdata} cell(s))"),
                row=r, col=c)
        fig.update_xaxes(type="category", title_text=axis or "", row=r, col=c)
    fig.update_layout(barmode="group", template="plotly_white", height=320 * rows + 80,
                      margin={"l": 60, "r": 30, "t": 50, "b": 50}, legend={"orientation": "h", "y": 1.08})
    return fig


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if isinstance(v, float):
        return f"{v:,.1f}" if abs(v) >= 100 else f"{v:.4g}"
    return str(v)


def _table_html(df: pd.DataFrame, cols: list[str]) -> str:
    e = _html.escape
    head = "".join(f'<th scope="col">{e(c)}</th>' for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{e(_fmt(r[c]))}</td>" for c in cols) + "</tr>"
                   for r in df[cols].to_dict("records"))
    return f'<table class="cells"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def render_report(loaded: Any, table: pd.DataFrame, *, axes: Sequence[str]) -> str:
    """One self-contained page: comparison plots per varying axis, every cell, and the failures.

    ``loaded`` is a :class:`gridshift.studies.sweep_run.LoadedSweep` (its ``spec``, ``base`` and ``cells``
    are read); ``table`` its results table; ``axes`` the table's axis columns, in order.
    """
    from plotly.offline import get_plotlyjs

    e = _html.escape
    spec = loaded.spec
    ok = table[table["status"] == "ok"] if len(table) else table
    varying = [a for a in ("zone", "year", "seed", "fleet_scale") if len(ok) and ok[a].nunique() > 1]
    sections = []
    config = {"displaylogo": False, "responsive": True}
    for axis in varying or [None]:
        fig = _axis_fig(ok, axis, spec.plot_metrics) if len(ok) else None
        if fig is None:
            continue
        title = f"By {axis}" if axis else "By policy"
        div = fig.to_html(full_html=False, include_plotlyjs=False, config=config,
                          default_height=f"{fig.layout.height}px", default_width="100%")
        others = [a for a in varying if a != axis]
        note = (f"Bars are the mean over {', '.join(others)}; whiskers span the minimum and maximum."
                if others else "One cell per bar.")
        sections.append(f'<h2>{e(title)}</h2><figure>{div}<figcaption class="caption">{e(note)} Saving vs asap '
                        f"is (asap − policy) / asap on the objective value ({e(loaded.base.objective.kind)}) of the "
                        "same scenario variant; lower carbon, cost and misses are better.</figcaption></figure>")
    cols = ["cell_id", *axes, "status", *[m for m in TABLE_METRICS if m in table.columns]]
    n_ok = int((table["status"] == "ok").sum()) if len(table) else 0
    fails = table[table["status"] != "ok"] if len(table) else table
    fail_html = (_table_html(fails, ["cell_id", *axes, "error"]) if len(fails) else "<p>None.</p>")
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>GridShift sweep – {e(spec.name)}</title><style>{CSS}</style>",
        f'<script type="text/javascript">{get_plotlyjs()}</script></head><body>',
        f"<h1>GridShift sweep – {e(spec.name)}</h1>",
        f"<p>{e(spec.description)}</p>" if spec.description else "",
        (f"<p>Base scenario <code>{e(loaded.base.name)}</code>; {len(loaded.cells)} cell(s), {n_ok} ok, "
         f"{len(fails)} failed, {len(loaded.cells) - len(table)} without a result. Varying: "
         f"{e(', '.join([*varying, 'policy']))}. Times are UTC.</p>"),
        *(sections or ["<p>No finished cells to plot.</p>"]),
        "<h2>Cells</h2>", _table_html(table, cols) if len(table) else "<p>No results.</p>",
        "<h2>Failures</h2>", fail_html,
        "</body></html>",
    ])


def _fmt_mean(v: float) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:,.1f}" if abs(v) >= 10 else f"{v:.3g}"


def summary_table(table, metrics: list[str]):
    """A console table per policy: cells ok / failed and the mean of the sweep's plot metrics over its ok cells."""
    from rich.table import Table

    t = Table(title="Sweep results (mean over ok cells)")
    t.add_column("policy")
    t.add_column("ok", justify="right")
    t.add_column("failed", justify="right")
    keys = [(k, k) for k in metrics if k in table.columns]
    for _, label in keys:
        t.add_column(label, justify="right")
    for pol, g in table.groupby("policy", sort=False):
        ok = g[g["status"] == "ok"]
        means = [pd.to_numeric(ok[k], errors="coerce").mean() if len(ok) else float("nan") for k, _ in keys]
        t.add_row(str(pol), str(len(ok)), str(len(g) - len(ok)), *[_fmt_mean(m) for m in means])
    return t
