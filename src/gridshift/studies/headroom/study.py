"""The headroom study as one call: hourly load of the chosen EIA regions -> the headroom table per region and
curtailment limit, per year, ours beside the published figures, optionally joined with a site's flexibility
tiers; and the tiers of a scenario's site.

Reads the hourly load (:func:`gridshift.data.grid.load_grid_load`), the accelerator catalog and, for
:func:`scenario_tiers`, a scenario; the maths is in the sibling modules.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from gridshift.errors import ScenarioError
from gridshift.studies.headroom.depth import TierDepth, tier_depth
from gridshift.studies.headroom.regions import (
    CONUS,
    DUKE_GW,
    DUKE_SOURCE,
    SUM_REGION,
    headroom_table,
    prepare_region,
)

REQUIRED_COLUMNS = ["region", "curtailment_frac", "headroom_gw", "hours_curtailed", "events"]
METHOD = ("curtailment-enabled headroom: largest constant new load that never lifts load above the "
          "historical seasonal peak (winter Dec-Feb, spring Mar-May, summer Jun-Aug, fall Sep-Nov; UTC "
          "months) by curtailing the excess, within an annual curtailment limit on its energy")
DATA_SOURCE = "Ruggles & Farnham, cleaned EIA-930 hourly demand, CC BY 4.0 (doi:10.5281/zenodo.3517197)"


@dataclass
class HeadroomRun:
    """Everything one headroom study computed, for the tables, CSV, JSON and PNG."""

    doc: dict[str, Any]  # the JSON document (headroom.json), before conversion to JSON types
    table: pd.DataFrame  # one row per region x limit (REQUIRED_COLUMNS first)
    by_year: pd.DataFrame
    tiers: TierDepth | None
    comparison: list[dict[str, Any]]
    fractions: list[float]

    # row labels of the table and the published figures' source, for the outputs
    sum_region: ClassVar[str] = SUM_REGION
    conus: ClassVar[str] = CONUS
    published_source: ClassVar[str] = DUKE_SOURCE


def comparison(table: pd.DataFrame, fractions: Sequence[float], all_regions: bool) -> list[dict]:
    """Per limit: our contiguous-US figures (the sum only when every region is in it) beside the published one."""

    def pick(region: str, f: float) -> float | None:
        s = table.loc[(table["region"] == region) & (table["curtailment_frac"] == f), "headroom_gw"]
        return float(s.iloc[0]) if len(s) else None

    return [{"curtailment_frac": f, "sum_of_regions_gw": pick(SUM_REGION, f) if all_regions else None,
             "conus_one_region_gw": pick(CONUS, f), "duke_22_ba_gw": DUKE_GW.get(f)} for f in fractions]


def site_tiers(shares: Sequence[float], accelerator: str | None) -> TierDepth:
    """The deliverable depth of a site's tier ``shares``, with ``accelerator``'s power-cap curve if given."""
    kw = {}
    if accelerator:
        from gridshift.catalog import get_accelerator

        acc = get_accelerator(accelerator)
        curve = acc.power_cap_curve
        kw = {"power_frac": curve.power_frac, "throughput_frac": curve.throughput_frac,
              "board_share": acc.board_power_w / (acc.board_power_w + acc.host_power_w),
              "accelerator": acc.name}
    return tier_depth(shares, **kw)


def scenario_tiers(path: str | Path) -> tuple[list[float], str | None]:
    """A scenario's tier energy shares (rounded to 6 decimals) and its main accelerator."""
    from gridshift.data.scenario import load_scenario
    from gridshift.studies.tiers import main_accelerator, tier_energy_shares
    from gridshift.world.build import assemble

    asm = assemble(load_scenario(path))
    return [float(f"{x:.6f}") for x in tier_energy_shares(asm.world)], main_accelerator(asm.world)


def run_headroom(regions: Sequence[str], years: Sequence[int], fractions: Sequence[float], *, basis: str = "mean",
                 max_event_h: int | None = None, tier_shares: Sequence[float] | None = None,
                 accelerator: str | None = None,
                 loading: AbstractContextManager | None = None) -> HeadroomRun:
    """The headroom of ``regions`` (EIA region names) at each curtailment limit over ``years``.

    ``basis`` is ``"mean"`` or ``"worst-year"``; ``tier_shares`` (with an optional ``accelerator``) joins
    the site's deliverable depth. ``loading`` is entered while the hourly load is read (e.g. a spinner).
    """
    from gridshift.data.grid import available_load_regions, load_grid_load

    fractions = list(fractions)
    if basis not in ("mean", "worst-year"):
        raise ScenarioError(f"unknown basis '{basis}'; use 'mean' or 'worst-year'", field="basis")
    if max_event_h is not None and max_event_h < 1:
        raise ScenarioError(f"--max-event-h must be at least 1 hour (got {max_event_h})", field="max_event_h")
    tiers = None
    if tier_shares is not None:
        tiers = site_tiers(tier_shares, accelerator)
    elif accelerator:
        raise ScenarioError("--accelerator only applies with --tier-shares", field="accelerator")
    names = list(regions)

    with loading if loading is not None else nullcontext():
        loads = {r: prepare_region(r, load_grid_load(r)["load_mw"], years) for r in names}
    table, by_year = headroom_table(loads, fractions, basis=basis, max_event_h=max_event_h,
                                    depth_frac=tiers.depth_frac if tiers else None)
    cols = REQUIRED_COLUMNS + [c for c in table.columns if c not in REQUIRED_COLUMNS]
    table = table[cols]
    all_regions = set(available_load_regions()) - {CONUS} <= set(names)
    comp = comparison(table, fractions, all_regions)
    years_label = str(table["years"].iloc[0])
    doc = {
        "method": METHOD,
        "basis": basis,
        "years": years_label,
        "curtailment_fracs": fractions,
        "max_event_h": max_event_h,
        "regions": names,
        "comparison": comp,
        "published": {"source": DUKE_SOURCE, "headroom_gw": {str(k): v for k, v in DUKE_GW.items()}},
        "data": DATA_SOURCE,
        "tiers": None if tiers is None else {
            "shares": tiers.shares, "loss_limits": tiers.loss_limits, "lever": tiers.lever,
            "cut_frac": tiers.cut_frac, "cap_power_frac": tiers.cap_power_frac, "depth_frac": tiers.depth_frac,
            "accelerator": tiers.accelerator},
        "rows": table.to_dict(orient="records"),
    }
    return HeadroomRun(doc, table, by_year, tiers, comp, fractions)
