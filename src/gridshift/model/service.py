"""Online inference services: demand per user region, capacity and power per accelerator type at the
latency SLO, and the sites allowed by latency."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gridshift.model import bounds as B


class ServiceProfile(BaseModel):
    """What one accelerator of a type delivers for this service while meeting the latency SLO."""

    model_config = ConfigDict(extra="forbid")

    requests_per_s_per_accelerator: float = Field(gt=0, le=B.MAX_REQUESTS_PER_S, allow_inf_nan=False)
    power_w_per_accelerator: float = Field(
        gt=0, le=B.MAX_BOARD_POWER_W, allow_inf_nan=False, description="Board power of a replica serving at that capacity, W."
    )


class DemandSpec(BaseModel):
    """Where the request rate comes from: a real trace, shaped into days and weeks and scaled per region.

    ``peak_requests_per_s`` gives, per user region (cloud region code), the rate at the trace's busiest slot.
    """

    model_config = ConfigDict(extra="forbid")

    trace: Literal["azure-llm/conv", "azure-llm/code", "mooncake/conversation", "mooncake/synthetic"] = (
        "azure-llm/conv"
    )
    peak_requests_per_s: dict[str, float] = Field(min_length=1)
    diurnal_amplitude_frac: float = Field(
        default=0.35, ge=0, lt=1, description="Peak-to-mean swing of the daily cycle applied to the trace."
    )
    weekend_factor: float = Field(default=0.8, gt=0, le=1.5, description="Weekend demand relative to weekdays.")

    @model_validator(mode="after")
    def _check(self) -> DemandSpec:
        for region, rps in self.peak_requests_per_s.items():
            if not (0 <= rps <= B.MAX_REQUESTS_PER_S):
                raise ValueError(f"peak_requests_per_s for '{region}' must be a number from 0 to "
                                 f"{B.MAX_REQUESTS_PER_S:g}")
        return self


class Service(BaseModel):
    """An online inference service."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    tenant: str = "default"
    latency_slo_ms: float = Field(gt=0, le=B.MAX_LATENCY_MS, allow_inf_nan=False, description="Bound on network round-trip time, ms.")
    profiles: dict[str, ServiceProfile] = Field(min_length=1, description="Per accelerator type name.")
    demand: DemandSpec
    allowed_sites: list[str] | None = Field(
        default=None,
        description="Sites that may serve each region; None = every site whose RTT to the region is within the SLO.",
    )
    headroom_frac: float = Field(default=0.1, ge=0, le=1, description="Spare capacity kept above the demand.")
    tier: int = Field(default=1, ge=0, le=3, description="Flexibility tier in grid events (the latency SLO "
                      "holds in every tier; tiers > 0 may run with less spare capacity).")
