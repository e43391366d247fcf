"""Grid events: requests from a utility or grid operator to limit or cut a site's (or a region's) draw over a
time window, emergency cuts with a response deadline, and price or carbon signals announced as events.

Flexibility tiers (on every job and service) say how much each piece of work may give up when an event asks
for less power: tier 0 is never slowed; tier 1 may lose up to 10 % of its throughput; tier 2 up to 25 %;
tier 3 up to 50 % and may be paused. Online inference keeps its latency SLO whatever its tier.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gridshift.model import bounds as B
from gridshift.model.time import utc_in_range

# Largest throughput loss each tier accepts (share of its full-power throughput); tier 3 may also pause.
TIER_MAX_THROUGHPUT_LOSS = (0.0, 0.10, 0.25, 0.50)
TIER_MAY_PAUSE = (False, False, False, True)
N_TIERS = len(TIER_MAX_THROUGHPUT_LOSS)

EventKind = Literal["limit", "cut", "emergency", "price", "carbon"]


class GridEvent(BaseModel):
    """One event. Its target is one of:

    - ``limit_mw``: draw at most this many MW (per site, or summed over the region's sites);
    - ``cut_frac``: draw at most (1 − cut_frac) × baseline, where the baseline is ``baseline_mw`` if stated,
      else the planned draw when the event is issued;
    - ``cut_mw``: draw at least this many MW less than the baseline (a fleet-level request, split among the
      region's sites by the response).

    ``kind: emergency`` adds ``respond_within_s``: the cut must be reached that many seconds after
    ``start`` (simulated with sub-minute steps). ``kind: price`` / ``carbon`` carry a signal value for the
    window instead of a target. The event is known ``notice_s`` seconds before ``start``.
    """

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    kind: EventKind = "limit"
    sites: list[str] | None = Field(default=None, description="Sites the event applies to.")
    zone: str | None = Field(default=None, description="Or: every site in this grid zone (a fleet-level event).")
    start: datetime
    end: datetime
    notice_s: float = Field(default=3600.0, ge=0, le=B.MAX_NOTICE_S, allow_inf_nan=False)
    limit_mw: float | None = Field(default=None, ge=0, le=B.MAX_POWER_MW, allow_inf_nan=False)
    cut_frac: float | None = Field(default=None, gt=0, le=1, allow_inf_nan=False)
    cut_mw: float | None = Field(default=None, gt=0, le=B.MAX_POWER_MW, allow_inf_nan=False)
    baseline_mw: float | None = Field(default=None, gt=0, le=B.MAX_POWER_MW, allow_inf_nan=False)
    respond_within_s: float | None = Field(default=None, gt=0, le=B.MAX_RESPOND_S, allow_inf_nan=False)
    price_usd_per_mwh: float | None = Field(default=None, ge=-B.MAX_PRICE_USD_PER_MWH, le=B.MAX_PRICE_USD_PER_MWH,
                                            allow_inf_nan=False)
    carbon_g_per_kwh: float | None = Field(default=None, ge=0, le=B.MAX_CARBON_G_PER_KWH, allow_inf_nan=False)
    baseline: Literal["stated", "before_notice", "x_of_y"] = Field(
        default="stated", description="Baseline a cut is measured from: 'stated' (baseline_mw), or measured when the "
        "event is issued: 'before_notice' (mean draw over demand_response.baseline_hours_before_notice before it) or "
        "'x_of_y' (demand_response.baseline_x_of_y); a measured one falls back to baseline_mw without the history.")
    rebound_s: float | None = Field(default=None, ge=0, le=B.MAX_NOTICE_S, allow_inf_nan=False,
                                    description="After the event, hold the draw at or below its pre-event level this "
                                                "long (default: demand_response.rebound_s).")

    _utc = field_validator("start", "end")(utc_in_range)

    @model_validator(mode="after")
    def _check(self) -> GridEvent:
        if self.kind == "emergency" and "notice_s" not in self.model_fields_set:
            self.notice_s = 0.0  # an emergency arrives when it starts unless told otherwise
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if (self.sites is None) == (self.zone is None):
            raise ValueError("give exactly one of 'sites' or 'zone'")
        if self.sites is not None and not self.sites:
            raise ValueError("'sites' is empty")
        targets = [k for k in ("limit_mw", "cut_frac", "cut_mw") if getattr(self, k) is not None]
        if self.kind in ("limit", "cut", "emergency"):
            if len(targets) != 1:
                raise ValueError(f"a '{self.kind}' event needs exactly one of limit_mw, cut_frac, cut_mw")
        elif targets:
            raise ValueError(f"a '{self.kind}' event carries a signal, not {targets[0]}")
        if (self.cut_frac is not None or self.cut_mw is not None) and self.baseline_mw is None \
                and self.baseline == "stated":
            raise ValueError("a cut is measured from a stated baseline: give baseline_mw (or baseline: before_notice)")
        if self.baseline != "stated" and self.cut_frac is None and self.cut_mw is None:
            raise ValueError("a measured baseline is for cuts: give cut_frac or cut_mw")
        if self.cut_mw is not None and self.baseline_mw is not None and self.cut_mw >= self.baseline_mw:
            raise ValueError("cut_mw must be below baseline_mw")
        if self.kind == "emergency" and self.respond_within_s is None:
            raise ValueError("an emergency event needs respond_within_s")
        if self.kind != "emergency" and self.respond_within_s is not None:
            raise ValueError("respond_within_s is only for emergency events")
        if self.kind == "price" and self.price_usd_per_mwh is None:
            raise ValueError("a price event needs price_usd_per_mwh")
        if self.kind == "carbon" and self.carbon_g_per_kwh is None:
            raise ValueError("a carbon event needs carbon_g_per_kwh")
        return self

    def target_mw(self) -> float | None:
        """Facility draw the event allows (summed over its sites); None for signal events."""
        if self.limit_mw is not None:
            return self.limit_mw
        if self.baseline_mw is None:  # measured when the event is issued (sim.dr_metrics.measured_targets)
            return float("inf")
        if self.cut_frac is not None:
            return self.baseline_mw * (1.0 - self.cut_frac)
        if self.cut_mw is not None:
            return self.baseline_mw - self.cut_mw
        return None

    @property
    def issued_at(self) -> datetime:
        return self.start - timedelta(seconds=self.notice_s)

    @property
    def is_power_request(self) -> bool:
        return self.kind in ("limit", "cut", "emergency")


class DemandResponse(BaseModel):
    """How sites respond to power requests (ramp limits are per site: ``sites[].ramp_mw_per_min``)."""

    model_config = ConfigDict(extra="forbid")

    margin_frac: float = Field(default=0.02, ge=0, lt=0.5, allow_inf_nan=False,
                               description="Aim this share below the target so noise does not cross it.")
    rebound_s: float = Field(default=900.0, ge=0, allow_inf_nan=False,
                             description="After an event the draw stays at or below its pre-event level this long, "
                                         "then ramps back at the site's ramp limit (programs penalise snap-back).")
    baseline_hours_before_notice: float = Field(default=1.0, gt=0, allow_inf_nan=False,
                                                description="Measured baseline: mean draw over these hours before "
                                                            "the event is issued.")
    baseline_x_of_y: tuple[int, int] = Field(default=(4, 5), description="Measured baseline: mean draw in the event's "
                                             "hours over the X highest of the Y days before (PJM's 'High 4 of 5').")
    counterfactual: bool = Field(default=True, description="Run each policy once more without the events and report "
                                 "each event's cost by tier against that run.")

    @model_validator(mode="after")
    def _check_x_of_y(self) -> DemandResponse:
        x, y = self.baseline_x_of_y
        if not 1 <= x <= y:
            raise ValueError("baseline_x_of_y: need 1 <= X <= Y")
        return self
