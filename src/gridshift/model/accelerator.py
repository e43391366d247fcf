"""Accelerator types and their power-cap curves.

Units live in field names. Power caps are expressed as a fraction of board power (TDP); a curve maps
that fraction to the fraction of full-power throughput the accelerator keeps.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator


class PowerCapCurve(BaseModel):
    """Piecewise-linear throughput kept vs power cap, both as fractions of full (board) power.

    ``power_frac`` is strictly increasing and ends at 1.0; ``throughput_frac`` is non-decreasing and
    ends at 1.0. Below the first point the accelerator cannot be capped.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    power_frac: list[float] = Field(min_length=2)
    throughput_frac: list[float] = Field(min_length=2)
    source: str = Field(description="Where the points come from (dataset, paper) and how they were derived.")

    @model_validator(mode="after")
    def _check(self) -> PowerCapCurve:
        p = np.asarray(self.power_frac, dtype=float)
        t = np.asarray(self.throughput_frac, dtype=float)
        if p.shape != t.shape:
            raise ValueError("power_frac and throughput_frac must have the same length")
        if not np.all(np.isfinite(p)) or not np.all(np.isfinite(t)):
            raise ValueError("curve points must be finite numbers")
        if np.any(np.diff(p) <= 0):
            raise ValueError("power_frac must be strictly increasing")
        if np.any(np.diff(t) < 0):
            raise ValueError("throughput_frac must be non-decreasing")
        if p[0] <= 0 or abs(p[-1] - 1.0) > 1e-9 or abs(t[-1] - 1.0) > 1e-9 or t[0] <= 0:
            raise ValueError("curve must lie in (0, 1] and end at (1.0, 1.0)")
        return self

    @property
    def min_power_frac(self) -> float:
        return float(self.power_frac[0])

    def throughput_at(self, power_frac: np.ndarray | float) -> np.ndarray:
        """Throughput fraction kept at the given power-cap fraction(s), clipped to the curve's range."""
        x = np.clip(np.asarray(power_frac, dtype=float), self.power_frac[0], 1.0)
        return np.interp(x, self.power_frac, self.throughput_frac)


class AcceleratorType(BaseModel):
    """One accelerator model as the planner and simulator see it.

    ``sources`` maps a field name to the datasheet, dataset or paper it comes from; ``estimated`` lists the
    fields that are estimates rather than published or measured figures.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    vendor: str
    peak_bf16_tflops: float = Field(gt=0, description="Dense BF16 tensor throughput, TFLOP/s.")
    peak_fp8_tflops: float | None = Field(default=None, gt=0, description="Dense FP8 tensor throughput, TFLOP/s.")
    hbm_gb: float = Field(gt=0)
    hbm_tb_per_s: float = Field(gt=0)
    board_power_w: float = Field(gt=0, description="Board power (TDP) at full load, W.")
    idle_power_w: float = Field(ge=0, description="Power drawn by an idle, powered-on accelerator, W.")
    host_power_w: float = Field(
        default=0.0,
        ge=0,
        description="Server overhead per accelerator (CPU, memory, NIC, fans) while the server is on, W.",
    )
    power_cap_curve: PowerCapCurve
    sources: dict[str, str] = Field(default_factory=dict)
    estimated: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> AcceleratorType:
        if self.idle_power_w >= self.board_power_w:
            raise ValueError("idle_power_w must be below board_power_w")
        return self

    @property
    def min_power_cap_frac(self) -> float:
        return self.power_cap_curve.min_power_frac
