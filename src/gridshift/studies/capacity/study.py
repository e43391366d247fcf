"""The capacity study as one call: from the command's options to a :class:`CapacityRun` (results, mixes,
tornado, and every assumption with its source), and the run's JSON document and table rows.

Reads the packaged assumptions, the accelerator catalog, the zone's 2023 carbon intensity and electricity
price and the Azure LLM trace; the arithmetic is in the sibling modules.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from gridshift.model import bounds as B
from gridshift.studies.capacity.assumptions import Assumption, canonical_model_class, load_assumptions
from gridshift.studies.capacity.budget import BUDGET_COLUMNS, capacity_for_budget
from gridshift.studies.capacity.common import CapacityError
from gridshift.studies.capacity.demand import Demand, trace_shape
from gridshift.studies.capacity.mix import parse_mix, size_mix
from gridshift.studies.capacity.profile import Params, build_profile
from gridshift.studies.capacity.sensitivity import budget_evaluator, demand_evaluator, tornado
from gridshift.studies.capacity.sizing import SIZING_COLUMNS, size_for_demand

DEFAULT_ACCELERATORS = "H100,H200,B200,MI300X,Trainium2,TPU-v5p,Ascend-910B"
TRACES = ("conv", "code")


@dataclass
class CapacityRun:
    """Everything one invocation computed, for the table, JSON, CSV and HTML."""

    mode: str  # "demand" | "budget"
    inputs: dict[str, Any]
    assumptions: list  # list[Assumption]
    results: list  # list[Sizing] or list[BudgetCapacity]
    mixes: list  # list[MixResult]
    tornado: list  # list[TornadoBar]
    tornado_subject: str
    sensitivity_frac: float

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns of :meth:`rows` (``group`` first)."""
        return ("group", *(BUDGET_COLUMNS if self.mode == "budget" else SIZING_COLUMNS))

    def doc(self) -> dict[str, Any]:
        return result_doc(self)

    def rows(self) -> list[dict[str, Any]]:
        return result_rows(self)


# The options' upper ends: far beyond any real demand or site, so that no figure overflows to inf or nan.
OPTION_MAX = {"tokens-per-day": 1e18, "requests-per-day": 1e15, "training-flop-per-month": 1e32,
              "budget-mw": B.MAX_POWER_MW * 10, "budget-gw": B.MAX_POWER_MW / 100,
              "carbon-g-per-kwh": B.MAX_CARBON_G_PER_KWH, "energy-price-usd-per-mwh": B.MAX_PRICE_USD_PER_MWH,
              "pue": 10.0, "peak-to-mean": 1_000.0, "amortisation-years": 100.0, "server-capex-frac": 100.0}


def _check_option(name: str, v: float | None, *, lo: float = 0.0, positive: bool = False) -> None:
    if v is None:
        return
    hi = OPTION_MAX.get(name, math.inf)
    if not math.isfinite(v) or v < lo or (positive and v <= lo) or v > hi:
        rel = "above" if positive else "at least"
        raise CapacityError(f"--{name} must be {rel} {lo:g} and at most {hi:g} (got {v:g})", field=name)


def run_capacity(*, tokens_per_day, requests_per_day, model_class, training_flop_per_month, utilisation, pue, zone,
                 carbon_g_per_kwh, energy_price, accelerators, budget_mw, budget_gw, budget_basis, mixes, trace,
                 peak_to_mean, mfu, amortisation_years, server_capex_frac, sensitivity) -> CapacityRun:
    """The whole capacity study for the command's options (``None`` = the assumption's default).

    Checks the options, builds each accelerator's profile, reads the zone's carbon intensity and price and
    the Azure LLM trace's shape, lists every assumption used with its source, and sizes the demand (per type
    and per mix) or says what the power budget buys, with the tornado of the first type (or mix).
    """
    from gridshift.catalog import get_accelerator, load_catalog
    from gridshift.data import (
        available_price_zones,
        available_zones,
        load_azure_llm,
        load_carbon,
        load_price,
    )

    A = load_assumptions()
    d = A.defaults
    for name, v, lo, pos in (("tokens-per-day", tokens_per_day, 0, False), ("requests-per-day", requests_per_day, 0, False),
                             ("training-flop-per-month", training_flop_per_month, 0, False),
                             ("budget-mw", budget_mw, 0, True), ("budget-gw", budget_gw, 0, True),
                             ("carbon-g-per-kwh", carbon_g_per_kwh, 0, False),
                             ("energy-price-usd-per-mwh", energy_price, 0, False),
                             ("pue", pue, 1, False), ("peak-to-mean", peak_to_mean, 1, False),
                             ("amortisation-years", amortisation_years, 0, True),
                             ("server-capex-frac", server_capex_frac, 0, False)):
        _check_option(name, v, lo=lo, positive=pos)
    for name, v in (("utilisation", utilisation), ("mfu", mfu)):
        if v is not None and (not math.isfinite(v) or not 0 < v <= 1):
            raise CapacityError(f"--{name} must be above 0 and at most 1 (got {v:g})", field=name)
    if sensitivity is not None and (not math.isfinite(sensitivity) or not 0 < sensitivity <= 0.95):
        raise CapacityError(f"--sensitivity must be above 0 and at most 0.95 (got {sensitivity:g})",
                                field="sensitivity")
    if budget_mw is not None and budget_gw is not None:
        raise CapacityError("give --budget-mw or --budget-gw, not both", field="budget")
    budget = budget_mw if budget_mw is not None else (budget_gw * 1000.0 if budget_gw is not None else None)
    if tokens_per_day is not None and requests_per_day is not None:
        raise CapacityError("give --tokens-per-day or --requests-per-day, not both", field="tokens_per_day")
    has_demand = any(v is not None for v in (tokens_per_day, requests_per_day, training_flop_per_month))
    if budget is not None and has_demand:
        raise CapacityError("a power budget (--budget-mw/--budget-gw) and a demand (--tokens-per-day, "
                                "--requests-per-day, --training-flop-per-month) are separate questions; give one",
                                field="budget")
    if budget is None and not has_demand:
        raise CapacityError("nothing to size: give a demand (--tokens-per-day, --requests-per-day, "
                                "--training-flop-per-month) or a power budget (--budget-mw or --budget-gw)")
    if budget is not None and mixes:
        raise CapacityError("--mix sizes a demand; it does not apply to a power budget", field="mix")
    basis = budget_basis.strip().lower()
    if basis not in ("facility", "it"):
        raise CapacityError(f"--budget-basis must be 'facility' or 'it' (got '{budget_basis}')",
                                field="budget_basis")
    if trace not in TRACES:
        raise CapacityError(f"unknown trace '{trace}'; use {' or '.join(TRACES)}", field="trace")
    mc_name = canonical_model_class(model_class or d["model_class"].value, A)
    mc = A.model_classes[mc_name]

    # accelerators
    catalog = load_catalog()
    names = list(catalog) if accelerators.strip().lower() == "all" else [
        get_accelerator(a.strip(), catalog).name for a in accelerators.split(",") if a.strip()]
    if not names:
        raise CapacityError("--accelerators names no accelerator", field="accelerators")
    names = list(dict.fromkeys(names))
    parsed_mixes = [parse_mix(m, lambda n: get_accelerator(n, catalog).name) for m in (mixes or [])]
    needed = list(dict.fromkeys([*names, *(p.accelerator for m in parsed_mixes for p in m.parts)]))
    reference = catalog[A.reference_accelerator]
    profiles = {n: build_profile(catalog[n], reference, A, mc_name) for n in needed}

    # grid zone
    zone = zone or d["zone"].value
    zones = available_zones()
    zone = {z.upper(): z for z in zones}.get(zone.strip().upper(), zone)
    if zone not in zones:
        raise CapacityError(f"unknown zone '{zone}'; known: {', '.join(zones)}", field="zone")
    assumptions: list = []
    used = dict(d)

    def given(key: str, value, unit: str | None = None):
        a = d[key]
        used[key] = Assumption(key, value, unit or a.unit, "given on the command line", False)

    if carbon_g_per_kwh is None:
        ci = load_carbon(zone)
        carbon = float(ci["carbon_g_per_kwh"].mean())
        carbon_a = Assumption("carbon_g_per_kwh", round(carbon, 1), "gCO2eq/kWh, life-cycle",
                                  f"Electricity Maps 2023 hourly data for {zone} (ODbL), mean of "
                                  f"{len(ci):,} hours (flat load)", bool(ci["estimated"].all()))
    else:
        carbon = float(carbon_g_per_kwh)
        carbon_a = Assumption("carbon_g_per_kwh", carbon, "gCO2eq/kWh", "given on the command line", False)
    if energy_price is None:
        if zone not in available_price_zones():
            raise CapacityError(f"no electricity price data for zone '{zone}'; give --energy-price-usd-per-mwh",
                                    field="energy_price_usd_per_mwh")
        pr = load_price(zone)
        price = float(pr["price_usd_per_mwh"].mean())
        price_a = Assumption("energy_price_usd_per_mwh", round(price, 2), "USD/MWh",
                                 f"2023 hourly market price for {zone} (green-dcc standardised), mean of "
                                 f"{len(pr):,} hours (flat load)", False)
    else:
        price = float(energy_price)
        price_a = Assumption("energy_price_usd_per_mwh", price, "USD/MWh", "given on the command line", False)

    # demand shape from the Azure LLM trace
    az = load_azure_llm(trace)
    t_s = (az["time"] - az["time"].min()).dt.total_seconds().to_numpy()
    shape = trace_shape(f"azure-llm/{trace}", t_s, az["generated_tokens"].to_numpy(),
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
        used["trace"] = Assumption("trace", trace, "Azure LLM inference trace",
                                       "Azure LLM inference trace 2023, code service (AzureLLMInferenceTrace_code.csv;"
                                       " Patel et al., Splitwise, ISCA 2024; CC BY 4.0): one hour, 8,819 requests.",
                                       False)
    used["zone"] = Assumption("zone", zone, "grid zone", d["zone"].source if zone == d["zone"].value
                                  else "given on the command line", False)
    params = Params(
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
    assumptions.append(Assumption("model_weights_gb", mc.weights_gb, "GB", mc.weights_source, False))
    assumptions.append(Assumption("itl_slo_ms", A.itl_slo_ms, "ms median inter-token latency", A.itl_slo_source,
                                      True))
    assumptions.append(used["trace"])
    burst_src = (f"measured: busiest {shape.window_s / 60:g}-min window / mean of the generated-token rate over "
                 f"the {shape.duration_s / 60:.0f} min of {shape.trace} ({shape.requests:,} requests)")
    assumptions += [used["burst_window_min"],
                    Assumption("burst_peak_to_mean", round(shape.burst_peak_to_mean, 3), "ratio", burst_src, False),
                    used["diurnal_amplitude_frac"], used["weekend_factor"]]
    if peak_to_mean is None:
        assumptions.append(Assumption(
            "peak_to_mean", round(p2m, 3), "busiest window / annual mean",
            f"burst {shape.burst_peak_to_mean:.3f} x daily (1 + {shape.diurnal_amplitude_frac:g}) x weekly "
            f"7 / (5 + 2 x {shape.weekend_factor:g})", True))
    else:
        assumptions.append(Assumption("peak_to_mean", p2m, "busiest window / annual mean",
                                          "given on the command line", False))
    assumptions.append(Assumption(
        "generated_tokens_per_request", round(shape.mean_generated_tokens, 1), "tokens",
        f"mean over {shape.trace} (its mean context is {shape.mean_context_tokens:,.0f} tokens per request)", False))
    for n in needed:
        acc, p = catalog[n], profiles[n]
        src = acc.sources
        assumptions.append(Assumption(f"{n}.tokens_per_s", round(p.tokens_per_s, 1),
                                          f"output tokens/s per accelerator, {mc_name}",
                                          p.throughput_source, p.throughput_estimated))
        draw_src = (p.throughput_source if not p.throughput_estimated else
                    f"ESTIMATE: {A.reference_accelerator}'s measured draw as a fraction of board power")
        assumptions.append(Assumption(f"{n}.inference_power_w", round(p.inference_power_w, 1),
                                          "W board draw while serving", draw_src, p.throughput_estimated))
        for f, unit in (("board_power_w", "W"), ("host_power_w", "W per accelerator"), ("idle_power_w", "W"),
                        ("peak_bf16_tflops", "TFLOP/s dense"), ("hbm_tb_per_s", "TB/s"), ("hbm_gb", "GB")):
            assumptions.append(Assumption(f"{n}.{f}", getattr(acc, f), unit,
                                              f"accelerator catalog: {src.get(f, 'see accelerators.yaml')}",
                                              f in acc.estimated))
        assumptions.append(Assumption(f"{n}.price_usd", p.price_usd, "USD per accelerator", p.price_source,
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
        results = [capacity_for_budget(profiles[n], budget, params, basis) for n in names]
        subject = names[0]
        bars = tornado(budget_evaluator(subject, budget, basis), {subject: profiles[subject]}, params, frac)
        return CapacityRun("budget", inputs, assumptions, results, [], bars, subject, frac)
    demand = Demand(float(tokens_per_day or 0.0), float(training_flop_per_month or 0.0))
    demand.check()
    inputs.update(tokens_per_day=demand.tokens_per_day, training_flop_per_month=demand.training_flop_per_month)
    if requests_per_day is not None:
        inputs["requests_per_day"] = requests_per_day
    results = [size_for_demand(profiles[n], demand, params) for n in names]
    mix_results = [size_mix(m, profiles, demand, params) for m in parsed_mixes]
    if parsed_mixes:
        subj: Any = parsed_mixes[0]
        subject = f"mix {parsed_mixes[0].name}"
        sub_profiles = {p.accelerator: profiles[p.accelerator] for p in parsed_mixes[0].parts}
    else:
        subj = subject = names[0]
        sub_profiles = {subject: profiles[subject]}
    bars = tornado(demand_evaluator(subj, demand), sub_profiles, params, frac)
    return CapacityRun("demand", inputs, assumptions, results, mix_results, bars, subject, frac)


def result_doc(run: CapacityRun) -> dict[str, Any]:
    """The JSON document of a run: mode, inputs, results, mixes, tornado and assumptions."""
    doc: dict[str, Any] = {"mode": run.mode, "inputs": run.inputs}
    doc["results"] = {r.accelerator: {k: v for k, v in r.row().items() if k != "accelerator"} for r in run.results}
    if run.mode == "demand":
        doc["mixes"] = {m.mix.name: {"total": {k: v for k, v in m.total.row().items() if k != "accelerator"},
                                     "parts": [p.row() for p in m.parts]} for m in run.mixes}
    doc["tornado"] = {"subject": run.tornado_subject, "sensitivity_frac": run.sensitivity_frac,
                      "bars": [asdict(b) for b in run.tornado]}
    doc["assumptions"] = [asdict(a) for a in run.assumptions]
    return doc


def result_rows(run: CapacityRun) -> list[dict[str, Any]]:
    """One row per accelerator type, per mix part and per mix total (``group`` names the mix)."""
    rows = [{"group": "accelerator", **r.row()} for r in run.results]
    for m in run.mixes:
        rows += [{"group": m.mix.name, **p.row()} for p in m.parts]
        rows.append({"group": m.mix.name, **m.total.row(), "accelerator": "total"})
    return rows
