"""`gridshift capacity` command (registered on the main app by `register`).

Sizes a fleet for a demand (tokens per day, training FLOP per month) per accelerator type and for mixes, or
says what a power budget buys; prints a table and every assumption with its source, and with ``--out``
writes ``capacity.csv``, ``capacity.html``, ``tornado.png`` and ``capacity.json`` atomically. The
arithmetic lives in :mod:`gridshift.studies.capacity`.
"""

from __future__ import annotations

import base64
import html as _html
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from gridshift.errors import GridShiftError

DEFAULT_ACCELERATORS = "H100,H200,B200,MI300X,Trainium2,TPU-v5p,Ascend-910B"
TRACES = ("conv", "code")


@dataclass
class _Run:
    """Everything one invocation computed, for the table, JSON, CSV and HTML."""

    mode: str  # "demand" | "budget"
    inputs: dict[str, Any]
    assumptions: list  # list[Assumption]
    results: list  # list[Sizing] or list[BudgetCapacity]
    mixes: list  # list[MixResult]
    tornado: list  # list[TornadoBar]
    tornado_subject: str
    sensitivity_frac: float


# ------------------------------------------------------------------------------------------- computation


def _opt_number(name: str, v: float | None, *, lo: float = 0.0, positive: bool = False) -> None:
    from gridshift.studies.capacity import CapacityError

    if v is None:
        return
    if not math.isfinite(v) or v < lo or (positive and v <= lo):
        rel = "above" if positive else "at least"
        raise CapacityError(f"--{name} must be {rel} {lo:g} (got {v:g})", field=name)


def _compute(*, tokens_per_day, requests_per_day, model_class, training_flop_per_month, utilisation, pue, zone,
             carbon_g_per_kwh, energy_price, accelerators, budget_mw, budget_gw, budget_basis, mixes, trace,
             peak_to_mean, mfu, amortisation_years, server_capex_frac, sensitivity) -> _Run:
    from gridshift.catalog import get_accelerator, load_catalog
    from gridshift.data import (
        available_price_zones,
        available_zones,
        load_azure_llm,
        load_carbon,
        load_price,
    )
    from gridshift.studies import capacity as cap

    A = cap.load_assumptions()
    d = A.defaults
    for name, v, lo, pos in (("tokens-per-day", tokens_per_day, 0, False), ("requests-per-day", requests_per_day, 0, False),
                             ("training-flop-per-month", training_flop_per_month, 0, False),
                             ("budget-mw", budget_mw, 0, True), ("budget-gw", budget_gw, 0, True),
                             ("carbon-g-per-kwh", carbon_g_per_kwh, 0, False),
                             ("energy-price-usd-per-mwh", energy_price, 0, False),
                             ("pue", pue, 1, False), ("peak-to-mean", peak_to_mean, 1, False),
                             ("amortisation-years", amortisation_years, 0, True),
                             ("server-capex-frac", server_capex_frac, 0, False)):
        _opt_number(name, v, lo=lo, positive=pos)
    for name, v in (("utilisation", utilisation), ("mfu", mfu)):
        if v is not None and (not math.isfinite(v) or not 0 < v <= 1):
            raise cap.CapacityError(f"--{name} must be above 0 and at most 1 (got {v:g})", field=name)
    if sensitivity is not None and (not math.isfinite(sensitivity) or not 0 < sensitivity <= 0.95):
        raise cap.CapacityError(f"--sensitivity must be above 0 and at most 0.95 (got {sensitivity:g})",
                                field="sensitivity")
    if budget_mw is not None and budget_gw is not None:
        raise cap.CapacityError("give --budget-mw or --budget-gw, not both", field="budget")
    budget = budget_mw if budget_mw is not None else (budget_gw * 1000.0 if budget_gw is not None else None)
    if tokens_per_day is not None and requests_per_day is not None:
        raise cap.CapacityError("give --tokens-per-day or --requests-per-day, not both", field="tokens_per_day")
    has_demand = any(v is not None for v in (tokens_per_day, requests_per_day, training_flop_per_month))
    if budget is not None and has_demand:
        raise cap.CapacityError("a power budget (--budget-mw/--budget-gw) and a demand (--tokens-per-day, "
                                "--requests-per-day, --training-flop-per-month) are separate questions; give one",
                                field="budget")
    if budget is None and not has_demand:
        raise cap.CapacityError("nothing to size: give a demand (--tokens-per-day, --requests-per-day, "
                                "--training-flop-per-month) or a power budget (--budget-mw or --budget-gw)")
    if budget is not None and mixes:
        raise cap.CapacityError("--mix sizes a demand; it does not apply to a power budget", field="mix")
    basis = budget_basis.strip().lower()
    if basis not in ("facility", "it"):
        raise cap.CapacityError(f"--budget-basis must be 'facility' or 'it' (got '{budget_basis}')",
                                field="budget_basis")
    if trace not in TRACES:
        raise cap.CapacityError(f"unknown trace '{trace}'; use {' or '.join(TRACES)}", field="trace")
    mc_name = cap.canonical_model_class(model_class or d["model_class"].value, A)
    mc = A.model_classes[mc_name]

    # accelerators
    catalog = load_catalog()
    names = list(catalog) if accelerators.strip().lower() == "all" else [
        get_accelerator(a.strip(), catalog).name for a in accelerators.split(",") if a.strip()]
    if not names:
        raise cap.CapacityError("--accelerators names no accelerator", field="accelerators")
    names = list(dict.fromkeys(names))
    parsed_mixes = [cap.parse_mix(m, lambda n: get_accelerator(n, catalog).name) for m in (mixes or [])]
    needed = list(dict.fromkeys([*names, *(p.accelerator for m in parsed_mixes for p in m.parts)]))
    reference = catalog[A.reference_accelerator]
    profiles = {n: cap.build_profile(catalog[n], reference, A, mc_name) for n in needed}

    # grid zone
    zone = zone or d["zone"].value
    zones = available_zones()
    zone = {z.upper(): z for z in zones}.get(zone.strip().upper(), zone)
    if zone not in zones:
        raise cap.CapacityError(f"unknown zone '{zone}'; known: {', '.join(zones)}", field="zone")
    assumptions: list = []
    used = dict(d)

    def given(key: str, value, unit: str | None = None):
        a = d[key]
        used[key] = cap.Assumption(key, value, unit or a.unit, "given on the command line", False)

    if carbon_g_per_kwh is None:
        ci = load_carbon(zone)
        carbon = float(ci["carbon_g_per_kwh"].mean())
        carbon_a = cap.Assumption("carbon_g_per_kwh", round(carbon, 1), "gCO2eq/kWh, life-cycle",
                                  f"Electricity Maps 2023 hourly data for {zone} (ODbL), mean of "
                                  f"{len(ci):,} hours (flat load)", bool(ci["estimated"].all()))
    else:
        carbon = float(carbon_g_per_kwh)
        carbon_a = cap.Assumption("carbon_g_per_kwh", carbon, "gCO2eq/kWh", "given on the command line", False)
    if energy_price is None:
        if zone not in available_price_zones():
            raise cap.CapacityError(f"no electricity price data for zone '{zone}'; give --energy-price-usd-per-mwh",
                                    field="energy_price_usd_per_mwh")
        pr = load_price(zone)
        price = float(pr["price_usd_per_mwh"].mean())
        price_a = cap.Assumption("energy_price_usd_per_mwh", round(price, 2), "USD/MWh",
                                 f"2023 hourly market price for {zone} (green-dcc standardised), mean of "
                                 f"{len(pr):,} hours (flat load)", False)
    else:
        price = float(energy_price)
        price_a = cap.Assumption("energy_price_usd_per_mwh", price, "USD/MWh", "given on the command line", False)

    # demand shape from the Azure LLM trace
    az = load_azure_llm(trace)
    t_s = (az["time"] - az["time"].min()).dt.total_seconds().to_numpy()
    shape = cap.trace_shape(f"azure-llm/{trace}", t_s, az["generated_tokens"].to_numpy(),
                            az["context_tokens"].to_numpy(), window_s=60.0 * d["burst_window_min"].value,
                            diurnal_amplitude_frac=d["diurnal_amplitude_frac"].value,
                            weekend_factor=d["weekend_factor"].value)
    p2m = shape.peak_to_mean if peak_to_mean is None else float(peak_to_mean)
    if tokens_per_day is None and requests_per_day is not None:
        tokens_per_day = requests_per_day * shape.mean_generated_tokens

    for key, v in (("pue", pue), ("utilisation_frac", utilisation), ("mfu_frac", mfu),
                   ("amortisation_years", amortisation_years), ("server_capex_frac", server_capex_frac),
                   ("sensitivity_frac", sensitivity)):
        if v is not None:
            given(key, float(v))
    if model_class is not None:
        given("model_class", mc_name)
    if trace != d["trace"].value:
        used["trace"] = cap.Assumption("trace", trace, "Azure LLM inference trace",
                                       "Azure LLM inference trace 2023, code service (AzureLLMInferenceTrace_code.csv;"
                                       " Patel et al., Splitwise, ISCA 2024; CC BY 4.0): one hour, 8,819 requests.",
                                       False)
    used["zone"] = cap.Assumption("zone", zone, "grid zone", d["zone"].source if zone == d["zone"].value
                                  else "given on the command line", False)
    params = cap.Params(
        utilisation_frac=float(used["utilisation_frac"].value), pue=float(used["pue"].value), peak_to_mean=p2m,
        mfu_frac=float(used["mfu_frac"].value), carbon_g_per_kwh=carbon, energy_price_usd_per_mwh=price,
        amortisation_years=float(used["amortisation_years"].value),
        server_capex_frac=float(used["server_capex_frac"].value))
    params.check()
    frac = float(used["sensitivity_frac"].value)

    # the list of assumptions, in reading order
    for key in ("pue", "utilisation_frac", "mfu_frac", "training_board_power_frac", "amortisation_years",
                "server_capex_frac", "zone"):
        assumptions.append(used[key])
    assumptions += [carbon_a, price_a, used["model_class"]]
    assumptions.append(cap.Assumption("model_weights_gb", mc.weights_gb, "GB", mc.weights_source, False))
    assumptions.append(cap.Assumption("itl_slo_ms", A.itl_slo_ms, "ms median inter-token latency", A.itl_slo_source,
                                      True))
    assumptions.append(used["trace"])
    burst_src = (f"measured: busiest {shape.window_s / 60:g}-min window / mean of the generated-token rate over "
                 f"the {shape.duration_s / 60:.0f} min of {shape.trace} ({shape.requests:,} requests)")
    assumptions += [used["burst_window_min"],
                    cap.Assumption("burst_peak_to_mean", round(shape.burst_peak_to_mean, 3), "ratio", burst_src, False),
                    used["diurnal_amplitude_frac"], used["weekend_factor"]]
    if peak_to_mean is None:
        assumptions.append(cap.Assumption(
            "peak_to_mean", round(p2m, 3), "busiest window / annual mean",
            f"burst {shape.burst_peak_to_mean:.3f} x daily (1 + {shape.diurnal_amplitude_frac:g}) x weekly "
            f"7 / (5 + 2 x {shape.weekend_factor:g})", True))
    else:
        assumptions.append(cap.Assumption("peak_to_mean", p2m, "busiest window / annual mean",
                                          "given on the command line", False))
    assumptions.append(cap.Assumption(
        "generated_tokens_per_request", round(shape.mean_generated_tokens, 1), "tokens",
        f"mean over {shape.trace} (its mean context is {shape.mean_context_tokens:,.0f} tokens per request)", False))
    for n in needed:
        acc, p = catalog[n], profiles[n]
        src = acc.sources
        assumptions.append(cap.Assumption(f"{n}.tokens_per_s", round(p.tokens_per_s, 1),
                                          f"output tokens/s per accelerator, {mc_name}",
                                          p.throughput_source, p.throughput_estimated))
        draw_src = (p.throughput_source if not p.throughput_estimated else
                    f"ESTIMATE: {A.reference_accelerator}'s measured draw as a fraction of board power")
        assumptions.append(cap.Assumption(f"{n}.inference_power_w", round(p.inference_power_w, 1),
                                          "W board draw while serving", draw_src, p.throughput_estimated))
        for f, unit in (("board_power_w", "W"), ("host_power_w", "W per accelerator"), ("idle_power_w", "W"),
                        ("peak_bf16_tflops", "TFLOP/s dense"), ("hbm_tb_per_s", "TB/s"), ("hbm_gb", "GB")):
            assumptions.append(cap.Assumption(f"{n}.{f}", getattr(acc, f), unit,
                                              f"accelerator catalog: {src.get(f, 'see accelerators.yaml')}",
                                              f in acc.estimated))
        assumptions.append(cap.Assumption(f"{n}.price_usd", p.price_usd, "USD per accelerator", p.price_source,
                                          p.price_estimated))
    assumptions.append(used["sensitivity_frac"])

    inputs: dict[str, Any] = {"model_class": mc_name, "model": mc.description, "zone": zone, "trace": shape.trace,
                              "utilisation_frac": params.utilisation_frac, "pue": params.pue,
                              "peak_to_mean": params.peak_to_mean, "mfu_frac": params.mfu_frac,
                              "carbon_g_per_kwh": carbon, "energy_price_usd_per_mwh": price,
                              "amortisation_years": params.amortisation_years,
                              "server_capex_frac": params.server_capex_frac, "accelerators": names}
    if budget is not None:
        inputs.update(budget_mw=budget, budget_basis=basis)
        results = [cap.capacity_for_budget(profiles[n], budget, params, basis) for n in names]
        subject = names[0]
        bars = cap.tornado(cap.budget_evaluator(subject, budget, basis), {subject: profiles[subject]}, params, frac)
        return _Run("budget", inputs, assumptions, results, [], bars, subject, frac)
    demand = cap.Demand(float(tokens_per_day or 0.0), float(training_flop_per_month or 0.0))
    demand.check()
    inputs.update(tokens_per_day=demand.tokens_per_day, training_flop_per_month=demand.training_flop_per_month)
    if requests_per_day is not None:
        inputs["requests_per_day"] = requests_per_day
    results = [cap.size_for_demand(profiles[n], demand, params) for n in names]
    mix_results = [cap.size_mix(m, profiles, demand, params) for m in parsed_mixes]
    if parsed_mixes:
        subj: Any = parsed_mixes[0]
        subject = f"mix {parsed_mixes[0].name}"
        sub_profiles = {p.accelerator: profiles[p.accelerator] for p in parsed_mixes[0].parts}
    else:
        subj = subject = names[0]
        sub_profiles = {subject: profiles[subject]}
    bars = cap.tornado(cap.demand_evaluator(subj, demand), sub_profiles, params, frac)
    return _Run("demand", inputs, assumptions, results, mix_results, bars, subject, frac)


# ------------------------------------------------------------------------------------------- documents


def _doc(run: _Run) -> dict[str, Any]:
    from dataclasses import asdict

    doc: dict[str, Any] = {"mode": run.mode, "inputs": run.inputs}
    doc["results"] = {r.accelerator: {k: v for k, v in r.row().items() if k != "accelerator"} for r in run.results}
    if run.mode == "demand":
        doc["mixes"] = {m.mix.name: {"total": {k: v for k, v in m.total.row().items() if k != "accelerator"},
                                     "parts": [p.row() for p in m.parts]} for m in run.mixes}
    doc["tornado"] = {"subject": run.tornado_subject, "sensitivity_frac": run.sensitivity_frac,
                      "bars": [asdict(b) for b in run.tornado]}
    doc["assumptions"] = [asdict(a) for a in run.assumptions]
    return doc


def _rows(run: _Run) -> list[dict[str, Any]]:
    rows = [{"group": "accelerator", **r.row()} for r in run.results]
    for m in run.mixes:
        rows += [{"group": m.mix.name, **p.row()} for p in m.parts]
        rows.append({"group": m.mix.name, **m.total.row(), "accelerator": "total"})
    return rows


def _csv(run: _Run) -> str:
    import pandas as pd

    from gridshift.studies.capacity import BUDGET_COLUMNS, SIZING_COLUMNS

    cols = ["group", *(BUDGET_COLUMNS if run.mode == "budget" else SIZING_COLUMNS)]
    return pd.DataFrame(_rows(run), columns=cols).to_csv(index=False, lineterminator="\n")


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


def _table_spec(run: _Run):
    return _BUDGET_TABLE if run.mode == "budget" else _DEMAND_TABLE


def _est(r) -> str:
    flags = [w for w, on in (("throughput", r.throughput_estimated), ("price", r.price_estimated)) if on]
    return ", ".join(flags)


def _title(run: _Run) -> str:
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


def _print(run: _Run) -> None:
    """Results with metrics as rows and accelerators (and mixes) as columns, then every assumption."""
    from rich.table import Table

    from gridshift.cli.common import out

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
    out.print(t)
    for i, m in enumerate(run.mixes, start=1):
        out.print(f"mix {i} = {m.mix.name}", markup=False, highlight=False, soft_wrap=True)
    out.print("Assumptions (value, unit, source; [estimated] = not a published or measured figure):",
              markup=False, highlight=False)
    for a in run.assumptions:
        flag = " [estimated]" if a.estimated else ""
        out.print(f"  {a.key} = {_num(a.value)} {a.unit}{flag} — {a.source}", markup=False, highlight=False,
                  soft_wrap=True)


_OUTPUT_LABELS = {"accelerators": "accelerators", "facility_mw": "facility power (MW)",
                  "cost_usd_per_yr": "cost (USD/yr)", "carbon_t_per_yr": "carbon (t CO₂/yr)",
                  "tokens_per_day": "tokens per day", "training_flop_per_month": "training FLOP per month",
                  "usd_per_million_tokens": "inference cost (USD per million tokens)"}


def _tornado_png(run: _Run) -> bytes:
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


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0 auto;
max-width:1200px;padding:1rem 1.5rem;color:#222;line-height:1.45}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5rem 0;font-size:.88rem}th,td{padding:.3rem .6rem;border:1px solid #ddd;
text-align:right;vertical-align:top}th{background:#f4f4f4}td.l,th.l{text-align:left}tr.total td{font-weight:700}
.caption{font-size:.9rem;color:#444;background:#fafafa;border-left:3px solid #bbb;padding:.4rem .8rem}
img{max-width:100%}footer{margin-top:2.5rem;font-size:.8rem;color:#666;border-top:1px solid #ddd}
"""


def _html_page(run: _Run, png: bytes) -> str:
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
        f"<title>GridShift capacity – {e(run.inputs['model_class'])}</title><style>{_CSS}</style>",
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


def _write(run: _Run, out_dir: Path) -> Path:
    from gridshift.report.output import OutputDir, to_jsonable

    png = _tornado_png(run)
    od = OutputDir(out_dir)
    with od as tmp:
        (tmp / "capacity.csv").write_text(_csv(run), encoding="utf-8")
        (tmp / "tornado.png").write_bytes(png)
        (tmp / "capacity.html").write_text(_html_page(run, png), encoding="utf-8")
        (tmp / "capacity.json").write_text(json.dumps(to_jsonable(_doc(run)), indent=2, ensure_ascii=False,
                                                      allow_nan=False) + "\n", encoding="utf-8")
    return od.final


# ------------------------------------------------------------------------------------------- command


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""

    @app.command()
    def capacity(
        tokens_per_day: Annotated[float | None, typer.Option(
            "--tokens-per-day", help="Inference demand: generated tokens per day (annual mean).")] = None,
        requests_per_day: Annotated[float | None, typer.Option(
            "--requests-per-day", help="Inference demand in requests per day (x the trace's generated tokens per "
                                       "request).")] = None,
        model_class: Annotated[str | None, typer.Option(
            "--model-class", help="llama-8b | llama-70b | llama-405b-fp8 (default llama-70b).")] = None,
        training_flop_per_month: Annotated[float | None, typer.Option(
            "--training-flop-per-month", help="Training demand, FLOP per month (730 h).")] = None,
        utilisation: Annotated[float | None, typer.Option(
            "--utilisation", help="Target utilisation 0-1 (default 0.7).")] = None,
        pue: Annotated[float | None, typer.Option("--pue", help="Power usage effectiveness (default 1.56).")] = None,
        zone: Annotated[str | None, typer.Option("--zone", help="Grid zone for carbon and price "
                                                    "(default US-MIDA-PJM).")] = None,
        carbon_g_per_kwh: Annotated[float | None, typer.Option(
            "--carbon-g-per-kwh", help="Override the zone's 2023 mean carbon intensity.")] = None,
        energy_price: Annotated[float | None, typer.Option(
            "--energy-price-usd-per-mwh", help="Override the zone's 2023 mean electricity price.")] = None,
        accelerators: Annotated[str, typer.Option(
            "--accelerators", "-a", help="Comma-separated catalog names or aliases, or 'all'.")] = DEFAULT_ACCELERATORS,
        budget_mw: Annotated[float | None, typer.Option("--budget-mw", help="Power budget in MW (inverse mode).")] = None,
        budget_gw: Annotated[float | None, typer.Option("--budget-gw", help="Power budget in GW (inverse mode).")] = None,
        budget_basis: Annotated[str, typer.Option(
            "--budget-basis", help="facility (metered, includes PUE) or it.")] = "facility",
        mix: Annotated[list[str] | None, typer.Option(
            "--mix", help="A mix (repeatable): 'H100:0.6,B200:0.4' or 'inference=B200,training=Trainium2'.")] = None,
        trace: Annotated[str, typer.Option("--trace", help="Azure LLM trace shaping demand: conv or code.")] = "conv",
        peak_to_mean: Annotated[float | None, typer.Option(
            "--peak-to-mean", help="Override the demand's peak-to-mean ratio (1 = flat).")] = None,
        mfu: Annotated[float | None, typer.Option("--mfu", help="Training model FLOP utilisation (default 0.40).")] = None,
        amortisation_years: Annotated[float | None, typer.Option(
            "--amortisation-years", help="Capex amortisation period (default 5).")] = None,
        server_capex_frac: Annotated[float | None, typer.Option(
            "--server-capex-frac", help="Server, network and storage capex per accelerator, as a share of its "
                                        "price (default 0.5).")] = None,
        sensitivity: Annotated[float | None, typer.Option(
            "--sensitivity", help="Tornado range, fraction (default 0.2 = ±20 %).")] = None,
        out_dir: Annotated[Path | None, typer.Option(
            "--out", "-o", help="Write capacity.csv, capacity.html, tornado.png, capacity.json here (atomically).")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False,
    ) -> None:
        """Size accelerators, power, energy, carbon and cost for a demand, or say what a power budget buys."""
        from gridshift.cli.common import fail, out
        from gridshift.report.output import to_jsonable

        try:
            run = _compute(tokens_per_day=tokens_per_day, requests_per_day=requests_per_day, model_class=model_class,
                           training_flop_per_month=training_flop_per_month, utilisation=utilisation, pue=pue,
                           zone=zone, carbon_g_per_kwh=carbon_g_per_kwh, energy_price=energy_price,
                           accelerators=accelerators, budget_mw=budget_mw, budget_gw=budget_gw,
                           budget_basis=budget_basis, mixes=mix, trace=trace, peak_to_mean=peak_to_mean, mfu=mfu,
                           amortisation_years=amortisation_years, server_capex_frac=server_capex_frac,
                           sensitivity=sensitivity)
            final = _write(run, out_dir) if out_dir is not None else None
        except GridShiftError as e:
            fail(e)
        if as_json:
            typer.echo(json.dumps(to_jsonable(_doc(run)), indent=2, ensure_ascii=False, allow_nan=False))
            return
        _print(run)
        if final is not None:
            out.print(f"wrote {final}/capacity.csv, capacity.html, tornado.png, capacity.json",
                      markup=False, highlight=False, soft_wrap=True)


__all__ = ["register"]
