"""Sensitivity (tornado): each input scaled down and up by a fraction, and how much the main outputs move."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

from gridshift.studies.capacity.budget import BudgetBasis, capacity_for_budget
from gridshift.studies.capacity.common import CapacityError, check_in_range
from gridshift.studies.capacity.demand import Demand
from gridshift.studies.capacity.mix import Mix, size_mix
from gridshift.studies.capacity.profile import AcceleratorProfile, Params
from gridshift.studies.capacity.sizing import size_for_demand

# input key -> label; every input is scaled by a factor (power_w scales board, idle, host and draw alike)
SENSITIVITY_INPUTS: dict[str, str] = {
    "pue": "PUE",
    "utilisation_frac": "utilisation",
    "tokens_per_s": "throughput per accelerator",
    "power_w": "power per accelerator",
    "peak_to_mean": "peak-to-mean of demand",
    "mfu_frac": "model FLOP utilisation",
    "carbon_g_per_kwh": "grid carbon intensity",
    "energy_price_usd_per_mwh": "electricity price",
    "price_usd": "accelerator price (capex)",
    "amortisation_years": "amortisation period",
}
_BOUNDS = {"pue": (1.0, math.inf), "utilisation_frac": (0.0, 1.0), "peak_to_mean": (1.0, math.inf),
           "mfu_frac": (0.0, 1.0)}
_POWER_FIELDS = ("inference_power_w", "training_power_w", "board_power_w", "idle_power_w", "host_power_w")


def perturb(profiles: Mapping[str, AcceleratorProfile], params: Params, key: str,
            factor: float) -> tuple[dict[str, AcceleratorProfile], Params, float]:
    """Scale input ``key`` by ``factor`` (in every profile, or in ``params``), clipped to its valid range.

    Returns the new profiles, params, and the factor actually applied (after clipping; for an accelerator
    input, the first profile's).
    """
    if key not in SENSITIVITY_INPUTS:
        raise CapacityError(f"unknown sensitivity input '{key}'", field="sensitivity")
    if key in ("tokens_per_s", "price_usd"):
        return ({n: replace(p, **{key: getattr(p, key) * factor}) for n, p in profiles.items()}, params, factor)
    if key == "power_w":
        return ({n: replace(p, **{f: getattr(p, f) * factor for f in _POWER_FIELDS}) for n, p in profiles.items()},
                params, factor)
    base = getattr(params, key)
    lo, hi = _BOUNDS.get(key, (0.0, math.inf))
    new = min(max(base * factor, lo), hi)
    return dict(profiles), replace(params, **{key: new}), (new / base if base else 1.0)


@dataclass(frozen=True)
class TornadoBar:
    input: str
    label: str
    output: str
    base: float
    low: float  # output with the input at its low value
    high: float  # output with the input at its high value
    low_factor: float  # applied factors (after clipping)
    high_factor: float

    @property
    def swing(self) -> float:
        return abs(self.high - self.low)


def tornado(evaluate: Callable[[Mapping[str, AcceleratorProfile], Params], Mapping[str, float]],
            profiles: Mapping[str, AcceleratorProfile], params: Params, frac: float,
            inputs: Iterable[str] = tuple(SENSITIVITY_INPUTS)) -> list[TornadoBar]:
    """Re-run ``evaluate`` with each input at ``1 - frac`` and ``1 + frac`` of its value.

    Returns one bar per (input, output) whose output moves, ordered by output, then by swing (largest first).
    """
    check_in_range("sensitivity", frac, 0.0, 0.95, low_open=True)
    base = evaluate(profiles, params)
    bars: list[TornadoBar] = []
    for key in inputs:
        lp, lpar, lf = perturb(profiles, params, key, 1.0 - frac)
        hp, hpar, hf = perturb(profiles, params, key, 1.0 + frac)
        lo, hi = evaluate(lp, lpar), evaluate(hp, hpar)
        for out, b in base.items():
            if b is None or lo[out] is None or hi[out] is None:
                continue
            if math.isclose(lo[out], b, rel_tol=1e-12, abs_tol=0.0) and math.isclose(hi[out], b, rel_tol=1e-12,
                                                                                    abs_tol=0.0):
                continue
            bars.append(TornadoBar(key, SENSITIVITY_INPUTS[key], out, float(b), float(lo[out]), float(hi[out]),
                                   lf, hf))
    order = {o: i for i, o in enumerate(base)}
    bars.sort(key=lambda t: (order[t.output], -t.swing))
    return bars


DEMAND_OUTPUTS = ("accelerators", "facility_mw", "cost_usd_per_yr", "carbon_t_per_yr")
BUDGET_OUTPUTS = ("accelerators", "tokens_per_day", "training_flop_per_month", "usd_per_million_tokens")


def demand_evaluator(subject: str | Mix, demand: Demand) -> Callable[[Mapping[str, AcceleratorProfile], Params],
                                                                     dict[str, float]]:
    """``evaluate`` for :func:`tornado`: the main outputs of sizing one type or one mix for ``demand``."""

    def run(profiles: Mapping[str, AcceleratorProfile], params: Params) -> dict[str, float]:
        s = (size_mix(subject, profiles, demand, params).total if isinstance(subject, Mix)
             else size_for_demand(profiles[subject], demand, params))
        return {k: getattr(s, k) for k in DEMAND_OUTPUTS}

    return run


def budget_evaluator(subject: str, budget_mw: float, basis: BudgetBasis = "facility"):
    """``evaluate`` for :func:`tornado`: the main outputs of a power budget spent on one type."""

    def run(profiles: Mapping[str, AcceleratorProfile], params: Params) -> dict[str, float]:
        b = capacity_for_budget(profiles[subject], budget_mw, params, basis)
        return {k: getattr(b, k) for k in BUDGET_OUTPUTS}

    return run
