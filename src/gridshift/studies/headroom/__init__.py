"""Curtailment-enabled grid headroom: how much constant new load a region can take if it curtails at peaks.

The rule (after Norris et al., "Rethinking Load Growth", Nicholas Institute, Duke University, 2025,
https://hdl.handle.net/10161/32077): a constant new load of ``L`` MW is added to a region's hourly load.
The region must never exceed its historical seasonal peak (the largest load seen in that meteorological
season — winter Dec–Feb, spring Mar–May, summer Jun–Aug, fall Sep–Nov — over the study years), so in
every hour where ``load + L`` would exceed that threshold the new load curtails by exactly the excess
(never more than ``L``). The curtailment rate is the curtailed energy divided by the energy the new load
would use uncurtailed, ``L × hours``. The headroom at a limit ``r`` is the largest ``L`` whose rate is at
most ``r``, with the rate taken as the mean of the annual rates (``basis="mean"``) or, stricter, in every
year (``basis="worst-year"``).

Everything here is array code over hours: the headroom is solved exactly (the rate is a piecewise
``a - b/L`` function of ``L`` between consecutive sorted gaps), with no search loop and no loop over hours.

Further bounds of the form ``L <= bound``:

- a maximum event length (consecutive curtailed hours) of ``H`` hours: ``L`` may not exceed the smallest,
  over every window of ``H + 1`` consecutive hours, of the largest gap in that window (part of the headroom
  when asked for);
- a curtailment depth ``d`` (the share of its power the new load can shed in an hour): the required
  curtailment may never exceed ``d × L``, i.e. ``L <= min(gap) / (1 - d)`` (reported separately, as the
  load a site with that depth can add, beside the backup power it would need at the full headroom).

The depth comes from a site's flexibility tiers (:func:`tier_depth`): tier 0 is never slowed; tiers 1, 2
and 3 accept up to 10 %, 25 % and 50 % throughput loss, and tier 3 may pause. A tier sheds the larger of
what duty-cycling gives (power off the accelerators whose work it gives up: cut = throughput loss) and
what power capping gives (the accelerator's power-cap curve, applied to board power only: the host stays
on).

Loads are MW and UTC hour-start; results are GW. A re-export face of the package: the maths (no file I/O)
is in :mod:`~.curtailment` (thresholds, curtailment, bounds, events), :mod:`~.regions` (per region and the
table over regions) and :mod:`~.depth` (a site's tiers); :mod:`~.study` runs the whole study for the
command line (it reads the hourly load).
"""

from __future__ import annotations

from gridshift.studies.headroom.curtailment import (
    SEASON_NAMES,
    Events,
    curtailment_mw,
    events,
    max_load_for_depth,
    max_load_for_event_length,
    max_load_for_rate,
    season_index,
    seasonal_peak_mw,
)
from gridshift.studies.headroom.depth import (
    PAUSE_TIERS,
    TIER_LOSS_LIMITS,
    TierDepth,
    power_frac_for_throughput,
    tier_depth,
)
from gridshift.studies.headroom.regions import (
    CONUS,
    DEFAULT_FRACTIONS,
    DUKE_GW,
    DUKE_SOURCE,
    SUM_REGION,
    Basis,
    HeadroomResult,
    RegionLoad,
    headroom,
    headroom_many,
    headroom_table,
    prepare_region,
)
from gridshift.studies.headroom.study import (
    REQUIRED_COLUMNS,
    HeadroomRun,
    comparison,
    run_headroom,
    scenario_tiers,
    site_tiers,
)

__all__ = [
    "CONUS",
    "DEFAULT_FRACTIONS",
    "DUKE_GW",
    "DUKE_SOURCE",
    "PAUSE_TIERS",
    "REQUIRED_COLUMNS",
    "SEASON_NAMES",
    "SUM_REGION",
    "TIER_LOSS_LIMITS",
    "Basis",
    "Events",
    "HeadroomResult",
    "HeadroomRun",
    "RegionLoad",
    "TierDepth",
    "comparison",
    "curtailment_mw",
    "events",
    "headroom",
    "headroom_many",
    "headroom_table",
    "max_load_for_depth",
    "max_load_for_event_length",
    "max_load_for_rate",
    "power_frac_for_throughput",
    "prepare_region",
    "run_headroom",
    "scenario_tiers",
    "season_index",
    "seasonal_peak_mw",
    "site_tiers",
    "tier_depth",
]
