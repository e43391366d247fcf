"""Capacity arithmetic: what a demand needs, and what a power budget buys, per accelerator type.

A re-export face of the package: the arithmetic is pure functions and frozen dataclasses in
:mod:`~.common` (units, error, checks), :mod:`~.assumptions` (the packaged ``capacity_assumptions.yaml``),
:mod:`~.demand` (demand and its shape), :mod:`~.profile` (accelerator profiles, planning parameters),
:mod:`~.sizing` (forward), :mod:`~.mix` (mixes), :mod:`~.budget` (inverse) and :mod:`~.sensitivity`
(tornado); :mod:`~.study` runs the whole study for the command line (it reads the data). Units are in the names: ``_w`` watts, ``_mw`` megawatts, ``_mwh`` megawatt-hours,
``_per_s`` per second, ``_per_day`` per day (86,400 s), ``_per_month`` per month (730 h = 8,760 h / 12),
``_per_yr`` per year (8,760 h), ``_frac`` a 0-1 fraction, ``_usd`` US dollars, ``carbon_g_per_kwh`` grams
CO2-eq per kWh, ``carbon_t`` tonnes CO2-eq. ``tokens`` are generated (output) tokens.

Forward (demand -> fleet), for one accelerator type serving a share of the demand:

* inference accelerators ``N_i = ceil(tokens_per_day * peak_to_mean / 86,400 / (tokens_per_s * u))``: the
  fleet serves the busiest window of the year at utilisation ``u`` of its measured maximum throughput;
* training accelerators ``N_t = ceil(F / (peak_bf16_flop_per_s * mfu * u * 2,628,000 s))``;
* provisioned IT power ``it_mw = N * (board_power_w + host_power_w) / 1e6`` (every accelerator at board
  power), facility power ``facility_mw = it_mw * pue``;
* average IT power per accelerator ``idle_w + (active_w - idle_w) * load_frac + host_w``, where
  ``active_w`` is the measured board draw while serving (or training) and ``load_frac`` the share of the
  fleet's maximum throughput the demand uses on average; ``annual_mwh = avg_facility_mw * 8,760``;
* ``carbon_t_per_yr = annual_mwh * carbon_g_per_kwh / 1,000``; cost per year = capex
  ``N * price_usd * (1 + server_capex_frac) / amortisation_years`` + ``annual_mwh * energy_price_usd_per_mwh``.

Inverse (budget -> capacity): ``N = floor(budget_w / (pue * (board_power_w + host_power_w)))`` for a
facility budget (without ``pue`` for an IT budget); ``tokens_per_day = N * tokens_per_s * u * 86,400 /
peak_to_mean`` and, alternatively, ``training_flop_per_month = N * peak_bf16_flop_per_s * mfu * u *
2,628,000``. Sizing a demand and then asking what its facility power buys gives back the same fleet.
"""

from __future__ import annotations

from gridshift.studies.capacity.assumptions import (
    ASSUMPTIONS_RESOURCE,
    Assumption,
    Assumptions,
    ModelClass,
    ServingPoint,
    best_serving_point,
    canonical_model_class,
    load_assumptions,
    parse_assumptions,
)
from gridshift.studies.capacity.budget import (
    BUDGET_COLUMNS,
    BudgetBasis,
    BudgetCapacity,
    accelerators_for_budget,
    capacity_for_budget,
)
from gridshift.studies.capacity.common import (
    DAYS_PER_YEAR,
    HOURS_PER_YEAR,
    SECONDS_PER_DAY,
    SECONDS_PER_MONTH,
    CapacityError,
)
from gridshift.studies.capacity.demand import Demand, TraceShape, trace_shape
from gridshift.studies.capacity.mix import Mix, MixPart, MixResult, parse_mix, size_mix
from gridshift.studies.capacity.profile import AcceleratorProfile, Params, build_profile
from gridshift.studies.capacity.sensitivity import (
    BUDGET_OUTPUTS,
    DEMAND_OUTPUTS,
    SENSITIVITY_INPUTS,
    TornadoBar,
    budget_evaluator,
    demand_evaluator,
    perturb,
    tornado,
)
from gridshift.studies.capacity.sizing import (
    SIZING_COLUMNS,
    Sizing,
    average_power_w,
    inference_accelerators,
    size_for_demand,
    tokens_per_day_per_accelerator,
    training_accelerators,
    training_flop_per_month_per_accelerator,
)
from gridshift.studies.capacity.study import DEFAULT_ACCELERATORS, TRACES, CapacityRun, run_capacity

__all__ = [
    "ASSUMPTIONS_RESOURCE", "BUDGET_COLUMNS", "BUDGET_OUTPUTS", "DAYS_PER_YEAR", "DEFAULT_ACCELERATORS",
    "DEMAND_OUTPUTS", "HOURS_PER_YEAR", "SECONDS_PER_DAY", "SECONDS_PER_MONTH", "SENSITIVITY_INPUTS",
    "SIZING_COLUMNS", "TRACES", "AcceleratorProfile", "Assumption", "Assumptions", "BudgetBasis",
    "BudgetCapacity", "CapacityError", "CapacityRun", "Demand", "Mix", "MixPart", "MixResult", "ModelClass",
    "Params", "ServingPoint", "Sizing", "TornadoBar", "TraceShape", "accelerators_for_budget",
    "average_power_w", "best_serving_point", "budget_evaluator", "build_profile", "canonical_model_class",
    "capacity_for_budget", "demand_evaluator", "inference_accelerators", "load_assumptions",
    "parse_assumptions", "parse_mix", "perturb", "run_capacity", "size_for_demand", "size_mix",
    "tokens_per_day_per_accelerator", "tornado", "trace_shape", "training_accelerators",
    "training_flop_per_month_per_accelerator",
]
