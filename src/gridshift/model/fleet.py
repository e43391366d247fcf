"""Fleet: grid zones, sites and the accelerator pools they hold."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gridshift.model import bounds as B
from gridshift.model.time import utc_in_range


class Zone(BaseModel):
    """A grid zone whose signals (carbon intensity, clean share, price) come from the data registry.

    A constant ``price_usd_per_mwh`` or ``carbon_g_per_kwh`` replaces the data for that signal (needed
    where a zone has no price file, or for what-if studies). ``signals_file`` (a CSV of ``time`` and any of
    ``carbon_g_per_kwh``, ``price_usd_per_mwh``, ``clean_frac``, at its native step — 5-, 15-, 30-minute or
    hourly; see :mod:`gridshift.data.signal_file`) replaces the data for the signals it holds; a path relative
    to the scenario file. ``carbon_file`` is its alias for a file used for carbon alone (one ``*_g_per_kwh``
    column), read by the same reader and rules. For carbon the order is: the constant, ``carbon_file``,
    ``signals_file``, the registry.
    """

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, description="Zone id as in the data registry, e.g. 'DE-LU' or 'US-CAL-CISO'.")
    carbon_basis: Literal["lca", "direct", "marginal"] = Field(
        "lca", description="Which carbon signal drives and accounts the zone: the registry's average life-cycle "
                           "('lca') or direct ('direct') intensity, or 'marginal' from carbon_file (e.g. WattTime "
                           "MOER written by `gridshift signals fetch`).")
    carbon_file: str | None = Field(
        default=None, description="A signals_file for carbon alone: CSV of 'time' (UTC offset) and one *_g_per_kwh "
                                  "column at its native step, relative to the scenario file, used instead of the "
                                  "registry's carbon intensity (required for 'marginal').")
    carbon_g_per_kwh: float | None = Field(default=None, ge=0, le=B.MAX_CARBON_G_PER_KWH, allow_inf_nan=False)
    price_usd_per_mwh: float | None = Field(default=None, ge=-B.MAX_PRICE_USD_PER_MWH, le=B.MAX_PRICE_USD_PER_MWH,
                                            allow_inf_nan=False)
    signals_file: str | None = Field(default=None, min_length=1, max_length=4096)

    @model_validator(mode="after")
    def _carbon_source(self) -> Zone:
        if self.carbon_basis == "marginal" and self.carbon_file is None:
            raise ValueError("carbon_basis 'marginal' needs a carbon_file (no marginal signal is bundled)")
        if self.carbon_file is not None and self.carbon_g_per_kwh is not None:
            raise ValueError("give carbon_file or a constant carbon_g_per_kwh, not both")
        return self


class Pool(BaseModel):
    """The accelerators of one type at one site."""

    model_config = ConfigDict(extra="forbid")

    accelerator: str = Field(min_length=1, description="Accelerator type name from the catalog.")
    count: int = Field(ge=1, le=B.MAX_ACCELERATORS, description="Accelerators in the pool (at least one).")


class PowerCapStep(BaseModel):
    """From ``start`` on (until the next step), the site may draw at most ``power_cap_mw``."""

    model_config = ConfigDict(extra="forbid")

    start: datetime
    power_cap_mw: float = Field(gt=0, le=B.MAX_POWER_MW, allow_inf_nan=False)

    _utc = field_validator("start")(utc_in_range)


class Site(BaseModel):
    """A data-center site on one grid zone.

    ``power_cap_mw`` limits the metered (facility) power: a constant, or a step series over time.
    ``region`` is the cloud region code used for network latency (for example 'us-west2').
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    zone: str = Field(min_length=1)
    region: str | None = None
    pue: float = Field(default=1.2, ge=1.0, le=3.0, allow_inf_nan=False)
    power_cap_mw: float | list[PowerCapStep] = Field(description="Facility power limit, MW.")
    ramp_mw_per_min: float | None = Field(default=None, gt=0, le=B.MAX_RAMP_MW_PER_MIN, allow_inf_nan=False,
                                          description="Largest change of facility draw per minute in grid events, "
                                                      "both ways (None: as fast as the levers act).")
    pools: list[Pool] = Field(min_length=1)

    @field_validator("power_cap_mw")
    @classmethod
    def _cap(cls, v: float | list[PowerCapStep]) -> float | list[PowerCapStep]:
        if isinstance(v, float | int):
            if not (0 < v <= B.MAX_POWER_MW):
                raise ValueError(f"power_cap_mw must be a number > 0 and <= {B.MAX_POWER_MW:g}")
        elif not v:
            raise ValueError("power_cap_mw series must have at least one step")
        else:
            starts = [s.start for s in v]
            if starts != sorted(starts) or len(set(starts)) != len(starts):
                raise ValueError("power_cap_mw steps must have strictly increasing start times")
        return v

    @model_validator(mode="after")
    def _pools(self) -> Site:
        names = [p.accelerator.lower() for p in self.pools]
        if len(set(names)) != len(names):
            raise ValueError("each accelerator type may appear in only one pool per site")
        return self
