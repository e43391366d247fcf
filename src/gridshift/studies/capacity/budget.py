"""Inverse sizing (power budget -> capacity): the fleet of one type a budget buys, and what it delivers as
inference (tokens per day) or as training (FLOP per month)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from gridshift.studies.capacity.common import CapacityError, check_at_least
from gridshift.studies.capacity.profile import AcceleratorProfile, Params
from gridshift.studies.capacity.sizing import (
    floor_whole,
    role_costs,
    tokens_per_day_per_accelerator,
    training_flop_per_month_per_accelerator,
    usd_per_million_tokens_of,
)

BudgetBasis = Literal["facility", "it"]


@dataclass(frozen=True)
class BudgetCapacity:
    """What a power budget buys of one accelerator type: the fleet, and what it delivers either as
    inference (tokens per day) or as training (FLOP per month)."""

    accelerator: str
    budget_mw: float
    basis: str  # "facility" (metered, includes PUE) or "it"
    accelerators: int
    all_in_w_per_accelerator: float  # provisioned IT power per accelerator (board + host)
    it_mw: float
    facility_mw: float
    tokens_per_s_per_accelerator: float
    tokens_per_day: float
    training_flop_per_month: float
    inference_annual_mwh: float
    inference_carbon_t_per_yr: float
    training_annual_mwh: float
    training_carbon_t_per_yr: float
    capex_usd_per_yr: float
    inference_cost_usd_per_yr: float
    training_cost_usd_per_yr: float
    usd_per_million_tokens: float | None
    min_accelerators_per_replica: int
    throughput_estimated: bool
    price_estimated: bool

    def row(self) -> dict[str, Any]:
        return asdict(self)


BUDGET_COLUMNS = tuple(f.name for f in fields(BudgetCapacity))


def accelerators_for_budget(p: AcceleratorProfile, budget_mw: float, params: Params,
                            basis: BudgetBasis = "facility") -> int:
    """``floor(budget_w / (pue * all-in W))`` for a facility budget, ``floor(budget_w / all-in W)`` for IT."""
    check_at_least("budget_mw", budget_mw, 0.0)
    if basis not in ("facility", "it"):
        raise CapacityError(f"budget basis must be 'facility' or 'it' (got {basis!r})", field="budget_basis")
    per_w = p.provisioned_w * (params.pue if basis == "facility" else 1.0)
    return floor_whole(budget_mw * 1e6 / per_w)


def capacity_for_budget(p: AcceleratorProfile, budget_mw: float, params: Params,
                        basis: BudgetBasis = "facility") -> BudgetCapacity:
    """Accelerators of type ``p`` that fit a power budget, and their inference or training output."""
    params.check()
    n = accelerators_for_budget(p, budget_mw, params, basis)
    u = params.utilisation_frac
    inf = role_costs(p, n, p.inference_power_w, u / params.peak_to_mean, params)
    trn = role_costs(p, n, p.training_power_w, u, params)
    tokens = n * tokens_per_day_per_accelerator(p, params)
    it_mw = n * p.provisioned_w / 1e6
    return BudgetCapacity(
        accelerator=p.name, budget_mw=float(budget_mw), basis=basis, accelerators=n,
        all_in_w_per_accelerator=p.provisioned_w, it_mw=it_mw, facility_mw=it_mw * params.pue,
        tokens_per_s_per_accelerator=p.tokens_per_s, tokens_per_day=tokens,
        training_flop_per_month=n * training_flop_per_month_per_accelerator(p, params),
        inference_annual_mwh=inf["annual_mwh"], inference_carbon_t_per_yr=inf["carbon_t_per_yr"],
        training_annual_mwh=trn["annual_mwh"], training_carbon_t_per_yr=trn["carbon_t_per_yr"],
        capex_usd_per_yr=inf["capex_usd_per_yr"], inference_cost_usd_per_yr=inf["cost_usd_per_yr"],
        training_cost_usd_per_yr=trn["cost_usd_per_yr"], usd_per_million_tokens=usd_per_million_tokens_of(inf["cost_usd_per_yr"], tokens),
        min_accelerators_per_replica=p.min_accelerators_per_replica,
        throughput_estimated=p.throughput_estimated, price_estimated=p.price_estimated)
