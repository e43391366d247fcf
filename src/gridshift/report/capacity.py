"""The capacity study's outputs: the console table and assumption lines, ``capacity.csv``, ``tornado.png``,
``capacity.html`` and ``capacity.json``.

``run`` is a :class:`gridshift.studies.capacity.CapacityRun` (read by its attributes and its ``doc()``,
``rows()`` and ``columns``).
"""

from __future__ import annotations

import base64
import html as _html
import io
import json
import math
from pathlib import Path
from typing import Any

from gridshift.report.output import OutputDir, to_jsonable
from gridshift.report.style import CSS


def _num(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else ""
    if isinstance(v, int):
        return f"{v:,d}"
    if isinstance(v, float):
        if v == 0:
            return "0"
        if abs(v) >= 1e9:
            return f"{v:.3e}"
        if abs(v) >= 100:
            return f"{v:,.0f}"
        return f"{v:.3g}" if abs(v) < 1 else f"{v:.4g}"
    return str(v)


# label, key, unit
_DEMAND_TABLE = (("inference acc.", "inference_accelerators", "count"), ("training acc.", "training_accelerators", "count"),
                 ("accelerators", "accelerators", "count"), ("IT power", "it_mw", "MW"),
                 ("facility power", "facility_mw", "MW"), ("energy", "annual_mwh", "MWh/yr"),
                 ("carbon", "carbon_t_per_yr", "t CO2/yr"), ("capex", "capex_usd_per_yr", "USD/yr"),
                 ("energy cost", "energy_usd_per_yr", "USD/yr"), ("total cost", "cost_usd_per_yr", "USD/yr"),
                 ("inference cost", "usd_per_million_tokens", "USD/M tok"))
_BUDGET_TABLE = (("accelerators", "accelerators", "count"), ("all-in", "all_in_w_per_accelerator", "W/acc."),
                 ("IT power", "it_mw", "MW"), ("facility power", "facility_mw", "MW"),
                 ("tokens", "tokens_per_day", "per day"), ("or training", "training_flop_per_month", "FLOP/month"),
                 ("inference energy", "inference_annual_mwh", "MWh/yr"), ("capex", "capex_usd_per_yr", "USD/yr"),
                 ("inference cost", "usd_per_million_tokens", "USD/M tok"))


def _table_spec(run: Any):
    return _BUDGET_TABLE if run.mode == "budget" else _DEMAND_TABLE


def _est(r) -> str:
    flags = [w for w, on in (("throughput", r.throughput_estimated), ("price", r.price_estimated)) if on]
    return ", ".join(flags)


def _title(run: Any) -> str:
    i = run.inputs
    if run.mode == "budget":
        what = f"What {i['budget_mw']:,.6g} MW ({i['budget_basis']}) buys"
    else:
        parts = []
        if i["tokens_per_day"]:
            parts.append(f"{i['tokens_per_day']:.3g} tokens/day")
        if i["training_flop_per_month"]:
            parts.append(f"{i['training_flop_per_month']:.3g} training FLOP/month")
        what = "Fleet for " + " + ".join(parts)
    return f"{what} — {i['model_class']}, zone {i['zone']}, PUE {i['pue']:g}, utilisation {i['utilisation_frac']:g}"


def console_table(run: Any):
    """The results as a console table: metrics as rows, accelerators (and mix parts and totals) as columns."""
    from rich.table import Table

    cols = [(r.accelerator, r) for r in run.results]
    for i, m in enumerate(run.mixes, start=1):
        cols += [(f"mix {i}: {p.accelerator}", p) for p in m.parts] + [(f"mix {i}: total", m.total)]
    t = Table(title=_title(run), title_justify="left")
    t.add_column("metric")
    t.add_column("unit")
    for name, _ in cols:
        t.add_column(name, justify="right", overflow="fold")
    for label, key, unit in _table_spec(run):
        t.add_row(label, unit, *[_num(getattr(r, key)) for _, r in cols])
    t.add_row("estimated", "", *[_est(r) or "—" for _, r in cols])
    return t


def mix_lines(run: Any) -> list[str]:
    """What each ``mix i`` column of :func:`console_table` stands for."""
    return [f"mix {i} = {m.mix.name}" for i, m in enumerate(run.mixes, start=1)]


ASSUMPTIONS_HEADING = "Assumptions (value, unit, source; [estimated] = not a published or measured figure):"


def assumption_lines(run: Any) -> list[str]:
    """One line per assumption: key, value, unit, whether estimated, and source."""
    return [f"  {a.key} = {_num(a.value)} {a.unit}{' [estimated]' if a.estimated else ''} — {a.source}"
            for a in run.assumptions]


def render_csv(run: Any) -> str:
    """``capacity.csv``: :meth:`~gridshift.studies.capacity.CapacityRun.rows` in its ``columns``."""
    import pandas as pd

    return pd.DataFrame(run.rows(), columns=list(run.columns)).to_csv(index=False, lineterminator="\n")


_OUTPUT_LABELS = {"accelerators": "accelerators", "facility_mw": "facility power (MW)",
                  "cost_usd_per_yr": "cost (USD/yr)", "carbon_t_per_yr": "carbon (t CO₂/yr)",
                  "tokens_per_day": "tokens per day", "training_flop_per_month": "training FLOP per month",
                  "usd_per_million_tokens": "inference cost (USD per million tokens)"}


def tornado_png(run: Any) -> bytes:
    """The tornado plot: one panel per output, one bar pair per input moved down and up."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    outputs = list(dict.fromkeys(b.output for b in run.tornado))
    n = max(1, len(outputs))
    cols = 2 if n > 1 else 1
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(11.0, 2.6 * rows + 0.8), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    pct = f"{run.sensitivity_frac * 100:g} %"
    for ax, o in zip(axes, outputs, strict=False):
        bars = [b for b in run.tornado if b.output == o][::-1]
        y = range(len(bars))
        lo = [(b.low / b.base - 1) * 100 if b.base else 0 for b in bars]
        hi = [(b.high / b.base - 1) * 100 if b.base else 0 for b in bars]
        ax.barh(list(y), lo, color="#1f77b4", label=f"input −{pct}")
        ax.barh(list(y), hi, color="#ff7f0e", label=f"input +{pct}")
        ax.axvline(0, color="#333", lw=0.8)
        ax.set_yticks(list(y), [b.label for b in bars], fontsize=8)
        ax.set_title(f"{_OUTPUT_LABELS.get(o, o)}: base {_num(bars[0].base) if bars else '—'}", fontsize=9)
        ax.set_xlabel("change of output (%)", fontsize=8)
        ax.tick_params(axis="x", labelsize=8)
    for ax in axes[len(outputs):]:
        ax.set_visible(False)
    if not outputs:
        axes[0].text(0.5, 0.5, "no input moves the outputs", ha="center", va="center")
    fig.suptitle(f"Sensitivity of {run.tornado_subject} ({run.inputs['model_class']}) to each input at ±{pct}", fontsize=10)
    h, lab = axes[0].get_legend_handles_labels()
    if h:
        fig.legend(h, lab, loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def render_html(run: Any, png: bytes) -> str:
    """``capacity.html``: one self-contained page (results, chart, tornado ``png``, inputs, assumptions)."""
    import plotly.graph_objects as go
    from plotly.offline import get_plotlyjs

    e = _html.escape
    spec = _table_spec(run)
    head = "".join(f"<th>{e(lab)}<br><small>{e(unit)}</small></th>" for lab, _, unit in spec)
    body = []
    for r in run.results:
        body.append(f'<tr><td class="l">{e(r.accelerator)}</td>'
                    + "".join(f"<td>{e(_num(getattr(r, k)))}</td>" for _, k, _ in spec)
                    + f'<td class="l">{e(_est(r))}</td></tr>')
    for m in run.mixes:
        for p in m.parts:
            body.append(f'<tr><td class="l">&nbsp;&nbsp;{e(p.accelerator)}</td>'
                        + "".join(f"<td>{e(_num(getattr(p, k)))}</td>" for _, k, _ in spec)
                        + f'<td class="l">{e(_est(p))}</td></tr>')
        body.append(f'<tr class="total"><td class="l">mix {e(m.mix.name)}</td>'
                    + "".join(f"<td>{e(_num(getattr(m.total, k)))}</td>" for _, k, _ in spec)
                    + f'<td class="l">{e(_est(m.total))}</td></tr>')
    table = (f'<table><thead><tr><th class="l">accelerator</th>{head}<th class="l">estimated</th></tr></thead>'
             f"<tbody>{''.join(body)}</tbody></table>")
    if run.mode == "budget":
        key, ylab = "tokens_per_day", "generated tokens per day"
        cap_text = ("How to read this: each bar is the generated tokens per day the budget delivers if all its "
                    "accelerators serve the model class (alternatively they deliver the training FLOP per month in "
                    "the table). Throughput of types marked estimated in the table is scaled from H100 by memory "
                    "bandwidth.")
    else:
        key, ylab = "facility_mw", "facility power (MW)"
        cap_text = ("How to read this: the grid connection (facility MW, including PUE) each choice needs for the "
                    "demand. Mix totals are the sum of their parts.")
    xs = [r.accelerator for r in run.results] + [f"mix {m.mix.name}" for m in run.mixes]
    ys = [getattr(r, key) for r in run.results] + [getattr(m.total, key) for m in run.mixes]
    fig = go.Figure(go.Bar(x=xs, y=ys, marker_color="#1f77b4"))
    fig.update_layout(template="plotly_white", yaxis_title=ylab, margin={"l": 60, "r": 30, "t": 30, "b": 60},
                      height=420)
    chart = fig.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False, "responsive": True},
                        default_height="420px", default_width="100%")
    inp = "".join(f'<tr><th class="l">{e(k)}</th><td class="l">{e(_num(v) if not isinstance(v, list) else ", ".join(v))}'
                  f"</td></tr>" for k, v in run.inputs.items())
    arows = "".join(f'<tr><td class="l">{e(a.key)}</td><td>{e(_num(a.value))}</td><td class="l">{e(a.unit)}</td>'
                    f'<td class="l">{"yes" if a.estimated else ""}</td><td class="l">{e(a.source)}</td></tr>'
                    for a in run.assumptions)
    pct = f"{run.sensitivity_frac * 100:g} %"
    img = base64.b64encode(png).decode("ascii")
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>GridShift capacity – {e(run.inputs['model_class'])}</title><style>{CSS}</style>",
        f'<script type="text/javascript">{get_plotlyjs()}</script></head><body>',
        f"<h1>GridShift capacity</h1><p>{e(_title(run))}.</p>",
        "<h2>Results</h2>", table,
        ('<p class="caption">How to read this: one row per accelerator type (and per mix, its parts indented, its '
        "total in bold). IT power is provisioned: every accelerator at board power plus its share of the host; "
        "facility power multiplies it by PUE. Energy, carbon and energy cost use the average draw over a year. "
        "“estimated” names the figures of a row that are estimates rather than measurements or published "
        "prices.</p>"),
        f"<figure>{chart}<figcaption class=\"caption\">{e(cap_text)}</figcaption></figure>",
        f"<h2>Sensitivity (±{e(pct)})</h2>",
        (f'<figure><img alt="tornado plot" src="data:image/png;base64,{img}">'
        f'<figcaption class="caption">How to read this: for {e(run.tornado_subject)}, each bar shows how much an '
        f"output changes (in %) when one input is {e(pct)} lower (blue) or higher (orange), all else equal. "
        "Longer bars matter more. Inputs bounded by physics are clipped (PUE ≥ 1, utilisation and MFU ≤ 1); "
        "steps come from rounding accelerators to whole units.</figcaption></figure>"),
        "<h2>Inputs</h2>", f"<table><tbody>{inp}</tbody></table>",
        "<h2>Assumptions and sources</h2>",
        ('<table><thead><tr><th class="l">assumption</th><th>value</th><th class="l">unit</th>'
        f'<th class="l">estimated</th><th class="l">source</th></tr></thead><tbody>{arows}</tbody></table>'),
        ("<footer><p>Data: Electricity Maps 2023 hourly carbon intensity (ODbL); green-dcc standardised 2023 "
        "electricity prices; Azure LLM inference trace 2023 (CC BY 4.0); ML.ENERGY Leaderboard v3 (Apache-2.0); "
        "Epoch AI Data on Machine Learning Hardware (CC BY 4.0).</p></footer>"),
        "</body></html>",
    ])


def write_outputs(run: Any, out_dir: Path) -> Path:
    """Write ``capacity.csv``, ``tornado.png``, ``capacity.html`` and ``capacity.json`` atomically; the final path."""
    png = tornado_png(run)
    od = OutputDir(out_dir)
    with od as tmp:
        (tmp / "capacity.csv").write_text(render_csv(run), encoding="utf-8")
        (tmp / "tornado.png").write_bytes(png)
        (tmp / "capacity.html").write_text(render_html(run, png), encoding="utf-8")
        (tmp / "capacity.json").write_text(json.dumps(to_jsonable(run.doc()), indent=2, ensure_ascii=False,
                                                      allow_nan=False) + "\n", encoding="utf-8")
    return od.final
