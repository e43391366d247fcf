"""Self-contained, offline HTML report: scenario summary, metrics table and interactive plotly figures.

The figure data (downsampling, cumulative carbon, JCT CDF, service totals) comes from :mod:`gridshift.report.figures`,
shared with the PNG figures.
"""

from __future__ import annotations

import html as _html
import math

import numpy as np

from gridshift.report.figures import (
    MAX_POINTS,
    SAVING_PARTS,
    SAVING_REFERENCES,
    SAVING_SCOPES,
    color,
    cumulative_carbon,
    downsample,
    jct_cdf,
    naive_utc,
    reference_lines,
    saving_splits,
    service_frames,
    site_frames,
    sites_of,
)
from gridshift.report.style import CSS
from gridshift.sim.result import PolicyRun

# key -> (label, unit, better: "min" | "max" | None)
METRIC_INFO: dict[str, tuple[str, str, str | None]] = {
    "energy_mwh": ("Energy", "MWh", "min"),
    "carbon_t": ("Carbon", "t CO₂", "min"),
    "cost_usd": ("Energy cost", "USD", "min"),
    "jobs_completed": ("Jobs completed", "count", "max"),
    "deadline_miss_frac": ("Deadline misses", "fraction", "min"),
    "avg_jct_h": ("Mean job completion time", "h", "min"),
    "slo_attainment": ("Serving SLO attainment", "fraction", "max"),
    "peak_power_mw": ("Peak facility power", "MW", "min"),
    "cap_violation_mwh": ("Power-cap violation", "MWh", "min"),
    "plan_time_s": ("Planning time", "s", "min"),
    "objective_value": ("Objective value", "t CO₂ (carbon) or USD (cost, weighted)", "min"),
    "saving_vs_asap_frac": ("Saving vs asap", "fraction of asap's objective", "max"),
    "oracle_capture_frac": ("Oracle capture", "fraction of the oracle's saving", "max"),
    "batch_carbon_kg_per_acc_h": ("Batch carbon per work", "kg CO₂ per accelerator-hour", "min"),
    "avg_carbon_g_per_kwh": ("Mean carbon intensity", "g CO₂/kWh", "min"),
    "avg_price_usd_per_mwh": ("Mean energy price", "USD/MWh", "min"),
    "work_done_frac": ("Work done", "fraction", "max"),
}
_PER_UNITS = {"kg": "kg", "g": "g", "t": "t", "usd": "USD", "kwh": "kWh", "mwh": "MWh", "mw": "MW", "h": "h",
              "s": "s", "acc_h": "accelerator-hour", "job": "job"}
_SUFFIX_UNITS = (("_mwh", "MWh"), ("_mw", "MW"), ("_usd", "USD"), ("_frac", "fraction"), ("_t", "t"),
                 ("_h", "h"), ("_s", "s"), ("_pct", "%"))


def _downsample_note(n: int, window: int, what: str) -> str:
    if window <= 1:
        return f"All {n:,} slots are shown at full resolution."
    return (f"For display, the {n:,} slots are downsampled to at most {MAX_POINTS:,} points per trace "
            f"(windows of {window} slots: {what}). Exact values are in timeseries/.")


# ----------------------------------------------------------------------------------------------- figures
def _site_power_fig(runs: list[PolicyRun]):
    from plotly.subplots import make_subplots

    sites = sites_of(runs)
    if not sites:
        return None, ""
    fig = make_subplots(rows=len(sites), cols=1, shared_xaxes=True, vertical_spacing=0.06 / max(1, len(sites) / 3),
                        specs=[[{"secondary_y": True}]] * len(sites),
                        subplot_titles=[f"{s} (zone {z})" for s, z in sites])
    n_max, w_max = 0, 1
    for row, (site, _zone) in enumerate(sites, start=1):
        frames = site_frames(runs, site)
        kw = {"row": row, "col": 1}
        for i, run, df in frames:
            t, y, w = downsample(df.index, df["facility_power_mw"], "max")
            n_max, w_max = max(n_max, len(df)), max(w_max, w)
            fig.add_scatter(x=t, y=y, name=run.policy, legendgroup=run.policy,
                            line={"color": color(i), "width": 1.4}, **kw)
        for col, name, t, y in reference_lines(frames, "power_cap_mw", "power cap"):
            fig.add_scatter(x=t, y=y, name=name, legendgroup=name, line={"color": col, "dash": "dash", "width": 1.2},
                            **kw)
        if frames:
            t, y, _ = downsample(frames[0][2].index, frames[0][2]["carbon_g_per_kwh"], "mean")
            fig.add_scatter(x=t, y=y, name="grid carbon intensity", legendgroup="ci", secondary_y=True,
                            line={"color": "rgba(90,90,90,0.55)", "width": 1, "dash": "dot"}, **kw)
        fig.update_yaxes(title_text="MW", row=row, col=1, secondary_y=False, rangemode="tozero")
        fig.update_yaxes(title_text="gCO₂/kWh", row=row, col=1, secondary_y=True, showgrid=False, rangemode="tozero")
    fig.update_xaxes(title_text="time (UTC)", row=len(sites), col=1)
    fig.update_layout(height=max(360, 240 * len(sites) + 120))
    note = _downsample_note(n_max, w_max, "power and cap are window maxima so peaks stay visible, "
                                          "carbon intensity is the window mean")
    return fig, note


def _cum_carbon_fig(runs: list[PolicyRun]):
    import plotly.graph_objects as go

    fig, n_max, w_max = go.Figure(), 0, 1
    for i, run in enumerate(runs):
        s = cumulative_carbon(run)
        if not s.empty:
            t, y, w = downsample(s.index, s.to_numpy(), "last")
            n_max, w_max = max(n_max, len(s)), max(w_max, w)
            fig.add_scatter(x=t, y=y, name=run.policy, line={"color": color(i)})
    fig.update_layout(height=420, xaxis_title="time (UTC)", yaxis_title="cumulative carbon (t CO₂)")
    return (fig if fig.data else None), _downsample_note(n_max, w_max, "the value at each window's end")


def _jct_fig(runs: list[PolicyRun]):
    import plotly.graph_objects as go

    fig = go.Figure()
    for i, run in enumerate(runs):
        x, y, k, n = jct_cdf(run)
        if k:
            fig.add_scatter(x=x, y=y, name=f"{run.policy} ({k}/{n} finished)", mode="lines",
                            line={"color": color(i), "shape": "hv"})
    fig.update_layout(height=420, xaxis={"type": "log", "title": "job completion time (h, log scale)"},
                      yaxis={"title": "fraction of all jobs finished", "range": [0, 1.02]})
    return (fig if fig.data else None), ""


def _events_fig(runs: list[PolicyRun]):
    """Facility power against the requested limit through each grid event, step by step."""
    from plotly.subplots import make_subplots

    names = list(dict.fromkeys(k for r in runs for k in r.event_traces))
    if not names:
        return None, ""
    fig = make_subplots(rows=len(names), cols=1, subplot_titles=names)
    for row, name in enumerate(names, start=1):
        kw = {"row": row, "col": 1}
        ref = next(r.event_traces[name] for r in runs if name in r.event_traces)
        t = naive_utc(ref["time"])
        fig.add_scatter(x=t, y=ref["requested_mw"], name="requested limit", legendgroup="requested",
                        line={"color": "#d62728", "dash": "dash", "width": 1.6, "shape": "hv"}, **kw)
        for i, run in enumerate(runs):
            tr = run.event_traces.get(name)
            if tr is None:
                continue
            x = naive_utc(tr["time"])
            fig.add_scatter(x=x, y=tr["achieved_mw"], name=f"drawn – {run.policy}", legendgroup=run.policy,
                            line={"color": color(i), "width": 1.4, "shape": "hv"}, **kw)
            if "rebound_limit_mw" in tr and tr["rebound_limit_mw"].notna().any():
                fig.add_scatter(x=x, y=tr["rebound_limit_mw"], name=f"rebound hold – {run.policy}",
                                legendgroup=f"{run.policy}-rebound", line={"color": color(i), "width": 1.0,
                                                                           "dash": "dash", "shape": "hv"}, **kw)
            fig.add_scatter(x=x, y=tr["baseline_mw"], name=f"before response – {run.policy}",
                            legendgroup=f"{run.policy}-base", line={"color": color(i), "width": 0.8, "dash": "dot",
                                                                    "shape": "hv"}, **kw)
        fig.update_yaxes(title_text="facility MW", row=row, col=1)
    fig.update_xaxes(title_text="time (UTC)", row=len(names), col=1)
    fig.update_layout(height=max(360, 300 * len(names) + 100))
    return fig, ""


SERVED_DASH = ("solid", "dot", "dashdot", "longdash")
LEGEND_TITLE_BAND_PX = 30  # the subplot titles' band above the first panel
LEGEND_ROW_PX = 22
LEGEND_PER_ROW = 4


def legend_above_titles(fig) -> None:
    """A horizontal legend above the first panel's title (not on it): the top margin grows by the legend's
    rows and the figure by as much, so the panels keep their size."""
    n = sum(1 for t in fig.data if t.showlegend is not False)
    rows = max(1, math.ceil(n / LEGEND_PER_ROW))
    top = LEGEND_TITLE_BAND_PX + LEGEND_ROW_PX * rows + 10
    height = (fig.layout.height or 420) + top - 40
    plot_h = height - top - 50
    fig.update_layout(height=height, margin={"t": top}, legend={"orientation": "h", "x": 0, "yanchor": "bottom",
                                                                "y": 1 + LEGEND_TITLE_BAND_PX / plot_h})


def _service_fig(runs: list[PolicyRun]):
    from plotly.subplots import make_subplots

    services = service_frames(runs)
    if not services:
        return None, ""
    fig = make_subplots(rows=len(services), cols=1, shared_xaxes=True, subplot_titles=list(services))
    n_max, w_max = 0, 1
    for row, frames in enumerate(services.values(), start=1):
        kw = {"row": row, "col": 1}
        for col, name, t, y in reference_lines(frames, "demand_rps", "demand"):
            fig.add_scatter(x=t, y=y, name=name, legendgroup=name, line={"color": col, "dash": "dash", "width": 1.2},
                            **kw)
        for i, run, g in frames:
            t, y, w = downsample(g.index, g["served_rps"], "mean")
            n_max, w_max = max(n_max, len(g)), max(w_max, w)
            fig.add_scatter(x=t, y=y, name=f"served – {run.policy}", legendgroup=run.policy,  # policies that
                            line={"color": color(i), "width": 1.4 + 0.8 * (i % 3),  # serve alike stay apart
                                  "dash": SERVED_DASH[i % len(SERVED_DASH)]}, **kw)
        fig.update_yaxes(title_text="requests/s", row=row, col=1, rangemode="tozero")
    fig.update_xaxes(title_text="time (UTC)", row=len(services), col=1)
    fig.update_layout(height=max(360, 240 * len(services) + 120))
    return fig, _downsample_note(n_max, w_max, "demand is the window maximum, served the window mean")


def _savings_fig(runs: list[PolicyRun]):
    """Each saving's parts stacked per policy, jobs' own beside the site's, one panel per reference."""
    from plotly.subplots import make_subplots

    rows = saving_splits(runs)
    refs = [(r, label) for r, label in SAVING_REFERENCES if any(x["reference"] == r for x in rows)]
    if not refs:
        return None, ""
    fig = make_subplots(rows=len(refs), cols=1, subplot_titles=[f"saving {label}" for _, label in refs])
    colors = {"timing": "#2ca02c", "energy": "#1f77b4", "work_left": "#7f7f7f"}
    for n, (ref, _) in enumerate(refs, start=1):
        sel = [x for x in rows if x["reference"] == ref]
        scope_label = dict(SAVING_SCOPES)
        x = [f"{r['policy']} · {scope_label[r['scope']]}" for r in sel]
        for key, label in SAVING_PARTS:
            fig.add_bar(x=x, y=[100 * r[key] for r in sel], name=label, legendgroup=key,
                        marker_color=colors[key], row=n, col=1)
        fig.add_scatter(x=x, y=[100 * r["total"] for r in sel], mode="markers", name="total saving",
                        legendgroup="total", marker={"symbol": "diamond", "color": "black", "size": 9}, row=n, col=1)
        fig.update_yaxes(title_text="% of the reference", row=n, col=1)
    fig.update_layout(barmode="relative", height=max(360, 320 * len(refs) + 60))
    return fig, ""


def _savings_table(runs: list[PolicyRun]) -> str:
    rows = saving_splits(runs)
    if not rows:
        return ""
    e = _html.escape
    unit = next((r.metrics["savings"].get("unit", "") for r in runs if r.metrics.get("savings")), "")
    parts = [("total", "total")] + list(SAVING_PARTS)
    head = "".join(f'<th scope="col">{e(s)}: {e(p)}</th>' for _, s in SAVING_SCOPES for _, p in parts)
    out = []
    for ref, label in SAVING_REFERENCES:
        body = []
        for run in runs:
            cells = []
            for scope, _ in SAVING_SCOPES:
                r = next((x for x in rows if x["reference"] == ref and x["scope"] == scope
                          and x["policy"] == run.policy), None)
                cells += ["<td>—</td>" if r is None else f"<td>{100 * r[k]:+.2f} %</td>" for k, _ in parts]
            if any(c != "<td>—</td>" for c in cells):
                body.append(f'<tr><th scope="row">{e(run.policy)}</th>{"".join(cells)}</tr>')
        if body:
            out.append(f"<h3>Saving {e(label)}</h3><table class=\"metrics\"><thead><tr><th scope=\"col\">policy"
                       f"</th>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")
    return "".join(out) + (f'<p class="caption">{e(_CAPTIONS["savings"])} Objective unit: {e(unit)}.</p>' if out
                           else "")


def _event_cost_table(runs: list[PolicyRun]) -> str:
    """Per grid event and policy: compliance, the cut against the target's baseline, the rebound over the
    pre-event draw, and each tier's accelerator-hours and deadline misses against the same run without the
    event (``vs_no_event``); empty without events."""
    rows = []
    for run in runs:
        for ev in run.metrics.get("events", []):
            c = (ev.get("vs_no_event") or {}).get("by_tier", {})
            pct = lambda v: "—" if v is None else f"{100 * v:.1f} %"  # noqa: E731
            tiers = " / ".join(f"{100 * c[k]['acc_h_lost_frac']:.0f}" for k in sorted(c)) if c else "—"
            miss = " / ".join(f"{c[k]['deadline_misses_without_event']}→{c[k]['deadline_misses']}"
                              for k in sorted(c)) if c else "—"
            rb = ev.get("rebound_max_over_pre_event_mw")
            cut = (ev.get("baseline_cut_frac") or {}).get((ev.get("target_baseline") or {}).get("rule", "stated"))
            cells = [ev["id"], run.policy, pct(ev.get("compliance_after_ramp_frac")), pct(cut), tiers, miss,
                     f"{ev.get('rebound_s', 0) / 60:.0f} min, {'—' if rb is None else f'{1000 * rb:.1f} kW'}"]
            rows.append("<tr>" + "".join(f"<td>{_html.escape(str(x))}</td>" for x in cells) + "</tr>")
    if not rows:
        return ""
    head = ("event", "policy", "compliance after the ramp", "mean cut vs target baseline",
            "acc-h lost % by tier 0/1/2/3 vs no event", "deadline misses by tier without → with",
            "rebound hold, draw over pre-event")
    return ('<table class="metrics"><thead><tr>' + "".join(f'<th scope="col">{h}</th>' for h in head)
            + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>")

# --------------------------------------------------------------------------------------------- HTML parts
def _fmt(value) -> str:
    if isinstance(value, bool) or value is None:
        return "—" if value is None else str(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        v = float(value)
        if not math.isfinite(v):
            return "—"
        if v == int(v) and abs(v) < 1e15:
            return f"{int(v):,}"
        return f"{v:,.1f}" if abs(v) >= 100 else f"{v:.4g}"
    if isinstance(value, (list, tuple, set)):
        return ", ".join(_fmt(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_fmt(v)}" for k, v in value.items())
    return str(value)


def _metric_label(key: str) -> tuple[str, str, str | None]:
    if key in METRIC_INFO:
        return METRIC_INFO[key]
    head, per, tail = key.partition("_per_")
    if per and tail in _PER_UNITS:  # a rate: 'x_kg_per_acc_h' is kg per accelerator-hour, not hours
        quantity, _, num = head.rpartition("_")
        if num in _PER_UNITS:
            return quantity.replace("_", " "), f"{_PER_UNITS[num]} per {_PER_UNITS[tail]}", None
    for suffix, unit in _SUFFIX_UNITS:
        if key.endswith(suffix) and len(key) > len(suffix):
            return key[: -len(suffix)].replace("_", " "), unit, None
    return key.replace("_", " "), "", None


_BEST = ' class="best"'


def _metrics_table(runs: list[PolicyRun]) -> str:
    keys = [k for k in METRIC_INFO if any(k in r.metrics for r in runs)]
    keys += list(dict.fromkeys(k for r in runs for k in r.metrics if k not in METRIC_INFO and k != "savings"))
    e = _html.escape
    head = "".join(f'<th scope="col">{e(r.policy)}</th>' for r in runs)
    rows = []
    for key in keys:
        label, unit, better = _metric_label(key)
        raw = [r.metrics.get(key) for r in runs]
        nums = [float(v) if isinstance(v, (int, float, np.number)) and not isinstance(v, bool) else math.nan
                for v in raw]
        finite = [v for v in nums if math.isfinite(v)]
        best = None
        if better and len(finite) >= 2 and max(finite) != min(finite):
            best = min(finite) if better == "min" else max(finite)
        cells = "".join(f'<td{_BEST if best is not None and math.isclose(n, best, rel_tol=1e-9) else ""}>'
                        f"{e(_fmt(v))}</td>" for v, n in zip(raw, nums))
        arrow = {"min": " ↓ lower is better", "max": " ↑ higher is better"}.get(better or "", "")
        unit_txt = f" ({e(unit)})" if unit else ""
        rows.append(f'<tr><th scope="row">{e(label)}{unit_txt}<span class="key">{e(key)}{arrow}</span></th>'
                    f"{cells}</tr>")
    return (f'<table class="metrics"><thead><tr><th scope="col">metric (unit)</th>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")


def _summary(summary: dict | None) -> str:
    if not summary:
        return "<p>No scenario summary was provided.</p>"
    e = _html.escape
    rows = "".join(f'<tr><th scope="row">{e(str(k))}</th><td>{e(_fmt(v))}</td></tr>' for k, v in summary.items())
    return f'<table class="summary"><tbody>{rows}</tbody></table>'


_CAPTIONS = {
    "savings": "How to read this: each saving, as a share of the reference's objective (work left unfinished "
               "valued in), split into timing / placement (the policy's energy priced at the hours and sites where "
               "the reference ran minus at its own: when and where the work ran), energy (the energy it did not "
               "draw, priced at the reference's average: power caps, accelerator type, fewer restarts) and work "
               "left at the end; the parts add up to the total. The jobs' own saving counts the energy of the "
               "batch jobs; the site's counts every accelerator's idle and host power and the services as well. "
               "\"vs the nominal start\" compares with every job that has a habitual start run at it at full power "
               "(the jobs' own saving there covers those jobs only).",
    "power": "How to read this: one panel per site. Solid lines are each policy's facility power (MW, left "
             "axis); the dashed line is the site's power cap — a line above it is a cap violation. The dotted "
             "grey line is the zone's grid carbon intensity (gCO₂/kWh, right axis): a carbon-aware policy "
             "draws more power when the grey line is low.",
    "carbon": "How to read this: carbon emitted by all sites together since the start of the horizon. Lower at "
              "the right edge is better; a flatter stretch means the policy avoided dirty hours.",
    "jct": "How to read this: for each policy, the fraction of all jobs that finished within x hours of arrival "
           "(log scale). Curves further left/up are better. A curve ending below 1 means the rest of the jobs "
           "were still unfinished at the end of the horizon.",
    "service": "How to read this: one panel per inference service, summed over regions. The dashed line is "
               "the requests per second demanded; the other lines are what each policy served (each its own "
               "colour and dash, so policies that serve alike stay visible). Gaps below the dashed line are "
               "unserved demand.",
    "events": "How to read this: one panel per grid event, step by step (1 minute; 5 seconds around an "
              "emergency signal). The red dashed line is the limit the grid asked for; solid lines are what each "
              "policy's sites drew after the response, dotted lines what they would have drawn without it. A "
              "solid line above the red one is a minute out of compliance; steps before the event are the "
              "ramp down, steps after it the ramp back up; a dashed line in a policy's colour after the event is the "
              "rebound hold (the draw stays at or below its pre-event level). The table above gives each tier's "
              "accelerator-hours lost against the same policy run without the event (negative: more than without).",
}


def render_html(scenario_name: str, runs: list[PolicyRun], *, scenario_summary: dict | None = None,
                attributions: list[str] | None = None) -> str:
    """One self-contained HTML page (plotly.js inlined once; no network access needed to view it)."""
    from plotly.offline import get_plotlyjs

    e = _html.escape
    config = {"displaylogo": False, "responsive": True}
    sections = []
    for key, title, builder in (("power", "Facility power, power cap and grid carbon intensity per site",
                                 _site_power_fig),
                                ("carbon", "Cumulative carbon", _cum_carbon_fig),
                                ("savings", "Savings: timing / placement and energy", _savings_fig),
                                ("jct", "Job completion time (CDF)", _jct_fig),
                                ("service", "Inference serving: served vs demanded requests", _service_fig),
                                ("events", "Grid events: power drawn against the requested limit", _events_fig)):
        fig, note = builder(runs)
        seen: set[str] = set()
        for trace in fig.data if fig is not None else ():
            if trace.legendgroup:  # one legend entry per policy/reference line across all panels
                trace.showlegend = trace.legendgroup not in seen
                seen.add(trace.legendgroup)
        if fig is None:
            if key not in ("service", "events", "savings"):
                sections.append(f"<h2>{e(title)}</h2><p>No data.</p>")
            continue
        fig.update_layout(template="plotly_white", margin={"l": 60, "r": 60, "t": 40, "b": 50},
                          legend={"orientation": "h", "y": -0.12, "yanchor": "top"})
        if key not in ("carbon", "jct"):  # panels with titles: the legend goes above them
            legend_above_titles(fig)
        div = fig.to_html(full_html=False, include_plotlyjs=False, config=config,
                          default_height=f"{fig.layout.height or 420}px", default_width="100%")
        caption = _CAPTIONS[key] + (f" {note}" if note else "")
        if key == "savings":
            sections.append(f"<h2>{e(title)}</h2>{_savings_table(runs)}<figure>{div}</figure>")
            continue
        if key == "events":  # cost by tier against the run without the event, and the rebound
            title_html = f"<h2>{e(title)}</h2>{_event_cost_table(runs)}"
            sections.append(f'{title_html}<figure>{div}<figcaption class="caption">{e(caption)}</figcaption></figure>')
            continue
        sections.append(f'<h2>{e(title)}</h2><figure>{div}<figcaption class="caption">{e(caption)}'
                        f"</figcaption></figure>")
    policies = ", ".join(r.policy for r in runs) or "none"
    attrib = "".join(f"<li>{e(str(a))}</li>" for a in (attributions or []))
    footer = (f"<footer><h3>Data attribution</h3><ul>{attrib}</ul></footer>" if attrib
              else "<footer><p>No data attributions were provided.</p></footer>")
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>GridShift report – {e(scenario_name)}</title><style>{CSS}</style>",
        f'<script type="text/javascript">{get_plotlyjs()}</script></head><body>',
        f"<h1>GridShift report – {e(scenario_name)}</h1><p>Policies compared: {e(policies)}.</p>",
        "<h2>Scenario</h2>", _summary(scenario_summary),
        "<h2>Metrics</h2>",
        _metrics_table(runs) if runs else "<p>No policy runs.</p>",
        '<p class="caption">How to read this: one column per policy; the best value in each row is '
        "highlighted green (only where a lower/higher-is-better direction is known and values differ).</p>",
        *sections, footer, "</body></html>",
    ])
