"""Forward sizing (demand -> fleet) of one accelerator type: accelerators, power, energy, carbon and cost."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from gridshift.studies.capacity.common import (
    DAYS_PER_YEAR,
    HOURS_PER_YEAR,
    SECONDS_PER_DAY,
    SECONDS_PER_MONTH,
    CapacityError,
    check_at_least,
)
from gridshift.studies.capacity.demand import Demand
from gridshift.studies.capacity.profile import AcceleratorProfile, Params

REL_TOL = 1e-12  # ratios within this of a whole number are that number (float noise, not demand)


def ceil_whole(x: float) -> int:
    return math.ceil(x * (1.0 - REL_TOL))


def floor_whole(x: float) -> int:
    return math.floor(x * (1.0 + REL_TOL))


def tokens_per_day_per_accelerator(p: AcceleratorProfile, params: Params) -> float:
    """Mean daily generated tokens one accelerator serves when the busiest window runs at ``u``."""
    return p.tokens_per_s * params.utilisation_frac * SECONDS_PER_DAY / params.peak_to_mean


def training_flop_per_month_per_accelerator(p: AcceleratorProfile, params: Params) -> float:
    return p.peak_bf16_flop_per_s * params.mfu_frac * params.utilisation_frac * SECONDS_PER_MONTH


def inference_accelerators(p: AcceleratorProfile, tokens_per_day: float, params: Params) -> int:
    if tokens_per_day <= 0:
        return 0
    per = tokens_per_day_per_accelerator(p, params)
    if per <= 0:
        raise CapacityError(f"accelerator '{p.name}' has no serving throughput", field="tokens_per_s")
    return ceil_whole(tokens_per_day / per)


def training_accelerators(p: AcceleratorProfile, flop_per_month: float, params: Params) -> int:
    if flop_per_month <= 0:
        return 0
    return ceil_whole(flop_per_month / training_flop_per_month_per_accelerator(p, params))


def average_power_w(idle_w: float, active_w: float, host_w: float, load_frac: float) -> float:
    """IT power of one accelerator and its host share at a load (0 idle .. 1 its maximum throughput)."""
    return idle_w + (active_w - idle_w) * min(max(load_frac, 0.0), 1.0) + host_w


@dataclass(frozen=True)
class Sizing:
    """A fleet of one accelerator type (or the total of a mix) and what it costs to run for a year."""

    accelerator: str
    tokens_per_day: float
    training_flop_per_month: float
    inference_accelerators: int
    training_accelerators: int
    accelerators: int
    it_mw: float  # provisioned: every accelerator at board power, plus host
    facility_mw: float  # it_mw x PUE: the grid connection to ask for
    avg_facility_mw: float
    annual_mwh: float
    carbon_t_per_yr: float
    capex_usd_per_yr: float
    energy_usd_per_yr: float
    cost_usd_per_yr: float
    inference_cost_usd_per_yr: float
    usd_per_million_tokens: float | None
    min_accelerators_per_replica: int | None = None
    throughput_estimated: bool = False
    price_estimated: bool = False

    def row(self) -> dict[str, Any]:
        return asdict(self)


SIZING_COLUMNS = tuple(f.name for f in fields(Sizing))


def role_costs(p: AcceleratorProfile, n: int, active_w: float, load_frac: float, params: Params) -> dict[str, float]:
    it_w = n * p.provisioned_w
    avg_it_w = n * average_power_w(p.idle_power_w, active_w, p.host_power_w, load_frac)
    avg_fac_mw = avg_it_w * params.pue / 1e6
    mwh = avg_fac_mw * HOURS_PER_YEAR
    capex = n * p.price_usd * (1.0 + params.server_capex_frac) / params.amortisation_years
    energy = mwh * params.energy_price_usd_per_mwh
    return {"it_mw": it_w / 1e6, "avg_facility_mw": avg_fac_mw, "annual_mwh": mwh,
            "carbon_t_per_yr": mwh * params.carbon_g_per_kwh / 1000.0, "capex_usd_per_yr": capex,
            "energy_usd_per_yr": energy, "cost_usd_per_yr": capex + energy}


def size_for_demand(p: AcceleratorProfile, demand: Demand, params: Params) -> Sizing:
    """Fleet of type ``p`` that serves ``demand`` (both inference and training on this type)."""
    params.check()
    check_at_least("tokens_per_day", demand.tokens_per_day, 0.0)
    check_at_least("training_flop_per_month", demand.training_flop_per_month, 0.0)
    n_i = inference_accelerators(p, demand.tokens_per_day, params)
    n_t = training_accelerators(p, demand.training_flop_per_month, params)
    # load = demand's mean rate / the fleet's maximum rate (<= u / peak_to_mean because N is rounded up)
    load_i = demand.tokens_per_day / SECONDS_PER_DAY / (n_i * p.tokens_per_s) if n_i else 0.0
    load_t = (demand.training_flop_per_month / SECONDS_PER_MONTH / (n_t * p.peak_bf16_flop_per_s * params.mfu_frac)
              if n_t else 0.0)
    inf = role_costs(p, n_i, p.inference_power_w, load_i, params)
    trn = role_costs(p, n_t, p.training_power_w, load_t, params)
    tot = {k: inf[k] + trn[k] for k in inf}
    return Sizing(
        accelerator=p.name, tokens_per_day=float(demand.tokens_per_day),
        training_flop_per_month=float(demand.training_flop_per_month),
        inference_accelerators=n_i, training_accelerators=n_t, accelerators=n_i + n_t,
        it_mw=tot["it_mw"], facility_mw=tot["it_mw"] * params.pue, avg_facility_mw=tot["avg_facility_mw"],
        annual_mwh=tot["annual_mwh"], carbon_t_per_yr=tot["carbon_t_per_yr"],
        capex_usd_per_yr=tot["capex_usd_per_yr"], energy_usd_per_yr=tot["energy_usd_per_yr"],
        cost_usd_per_yr=tot["cost_usd_per_yr"], inference_cost_usd_per_yr=inf["cost_usd_per_yr"],
        usd_per_million_tokens=usd_per_million_tokens_of(inf["cost_usd_per_yr"], demand.tokens_per_day),
        min_accelerators_per_replica=p.min_accelerators_per_replica if n_i else None,
        throughput_estimated=p.throughput_estimated and n_i > 0, price_estimated=p.price_estimated)


def usd_per_million_tokens_of(cost_usd_per_yr: float, tokens_per_day: float) -> float | None:
    if tokens_per_day <= 0:
        return None
    return cost_usd_per_yr / (tokens_per_day * DAYS_PER_YEAR / 1e6)
