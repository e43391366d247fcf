"""Inputs of the arithmetic: one accelerator type's profile for a model class (measured or scaled from a
reference type) and the planning parameters shared by all types.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gridshift.studies.capacity.assumptions import Assumptions
from gridshift.studies.capacity.common import CapacityError, check_at_least, check_in_range


@dataclass(frozen=True)
class AcceleratorProfile:
    """Everything the arithmetic needs about one accelerator type for one model class."""

    name: str
    tokens_per_s: float  # maximum output tokens/s per accelerator within the latency bound
    inference_power_w: float  # board draw while serving at that point
    training_power_w: float  # board draw while training
    board_power_w: float
    idle_power_w: float
    host_power_w: float
    peak_bf16_flop_per_s: float
    price_usd: float
    hbm_gb: float = 0.0
    weights_gb: float = 0.0
    throughput_estimated: bool = False
    throughput_source: str = ""
    price_estimated: bool = False
    price_source: str = ""

    @property
    def provisioned_w(self) -> float:
        """All-in IT power an accelerator is provisioned for: board power plus its share of the host."""
        return self.board_power_w + self.host_power_w

    @property
    def min_accelerators_per_replica(self) -> int:
        """Accelerators whose HBM holds the model weights alone (a lower bound; KV cache needs more)."""
        return max(1, math.ceil(self.weights_gb / self.hbm_gb)) if self.hbm_gb > 0 else 1

    def check(self) -> None:
        for f in ("tokens_per_s", "inference_power_w", "training_power_w", "board_power_w", "idle_power_w",
                  "host_power_w", "peak_bf16_flop_per_s", "price_usd", "hbm_gb", "weights_gb"):
            v = getattr(self, f)
            if not math.isfinite(v) or v < 0:
                raise CapacityError(f"accelerator '{self.name}': {f} must be a non-negative number (got {v})",
                                    field=f)
        if self.board_power_w <= 0:
            raise CapacityError(f"accelerator '{self.name}': board power must be positive", field="board_power_w")


@dataclass(frozen=True)
class Params:
    """Planning parameters shared by all accelerator types."""

    utilisation_frac: float
    pue: float
    peak_to_mean: float
    mfu_frac: float
    carbon_g_per_kwh: float
    energy_price_usd_per_mwh: float
    amortisation_years: float
    server_capex_frac: float

    def check(self) -> None:
        check_in_range("utilisation_frac", self.utilisation_frac, 0.0, 1.0, low_open=True)
        check_in_range("mfu_frac", self.mfu_frac, 0.0, 1.0, low_open=True)
        check_at_least("pue", self.pue, 1.0)
        check_at_least("peak_to_mean", self.peak_to_mean, 1.0)
        check_at_least("carbon_g_per_kwh", self.carbon_g_per_kwh, 0.0)
        check_at_least("energy_price_usd_per_mwh", self.energy_price_usd_per_mwh, 0.0)
        check_at_least("server_capex_frac", self.server_capex_frac, 0.0)
        check_in_range("amortisation_years", self.amortisation_years, 0.0, math.inf, low_open=True)


def build_profile(acc, reference, assumptions: Assumptions, model_class: str, *,
                  training_board_power_frac: float | None = None) -> AcceleratorProfile:
    """Profile of catalog entry ``acc`` (an :class:`~gridshift.model.accelerator.AcceleratorType`).

    Measured serving throughput and power (ML.ENERGY) where the model class has them for ``acc``; otherwise
    the ``reference`` type's measurement scaled by HBM bandwidth, at the reference's board-power fraction.
    """
    mc = assumptions.model_classes.get(model_class)
    if mc is None:
        raise CapacityError(f"unknown model class '{model_class}'; known: {', '.join(assumptions.model_classes)}",
                            field="model_class")
    frac = assumptions.default("training_board_power_frac") if training_board_power_frac is None \
        else training_board_power_frac
    m = mc.measured.get(acc.name)
    if m is not None:
        tps, power_w, est = m.tokens_per_s, m.gpu_power_w, False
        src = (f"ML.ENERGY v3 measured: {mc.mlenergy_model}, {assumptions.mlenergy_task}, {m.num_gpus} x {acc.name}, "
               f"max_num_seqs {m.max_num_seqs:g}, median ITL {m.median_itl_ms:g} ms")
    else:
        ref = mc.measured.get(reference.name)
        if ref is None:
            raise CapacityError(f"model class '{model_class}' has no measurement on the reference "
                                f"'{reference.name}'", field="model_class")
        tps = ref.tokens_per_s * acc.hbm_tb_per_s / reference.hbm_tb_per_s
        power_w = min(acc.board_power_w, acc.board_power_w * ref.gpu_power_w / reference.board_power_w)
        est = True
        src = (f"ESTIMATE: {reference.name} measured {ref.tokens_per_s:g} tokens/s x HBM bandwidth ratio "
               f"{acc.hbm_tb_per_s:g}/{reference.hbm_tb_per_s:g} TB/s")
    price = assumptions.prices.get(acc.name)
    if price is None:
        raise CapacityError(f"no price assumption for accelerator '{acc.name}'", field="accelerators")
    prof = AcceleratorProfile(
        name=acc.name, tokens_per_s=float(tps), inference_power_w=float(power_w),
        training_power_w=float(acc.board_power_w * frac), board_power_w=float(acc.board_power_w),
        idle_power_w=float(acc.idle_power_w), host_power_w=float(acc.host_power_w),
        peak_bf16_flop_per_s=float(acc.peak_bf16_tflops) * 1e12, price_usd=float(price.value),
        hbm_gb=float(acc.hbm_gb), weights_gb=mc.weights_gb, throughput_estimated=est, throughput_source=src,
        price_estimated=price.estimated, price_source=price.source)
    prof.check()
    return prof
