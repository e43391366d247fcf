"""Which forecast drives the live planner in each zone: a provider's issued forecast, or the project's own.

For every zone whose planning signal comes from a provider (``planning`` in the providers file), the
provider's kept forecasts (``<forecast_dir>/<provider>/<zone>/<signal>.csv``, written by the provider
clocks) are read and the newest is used by ``mpc`` when the rule allows (``forecast_use`` in the providers
file):

- ``preferred`` (the default): when issued within the provider's ``stale_after_s`` and the rolling backtest
  (:mod:`gridshift.service.forecast_skill`) scores it better than the project's own model (so a new
  deployment plans on its own model until the backtest has scored enough of the provider's forecasts);
- ``fresh``: whenever issued within the provider's ``stale_after_s``;
- ``off``: never.

Otherwise the zone plans on the project's own model, with the reason stated (no forecast kept yet, the
newest is stale, the backtest prefers the own model, forecasts are not kept …). The choice is made at every
plan and written into the plan record (``summary.forecasts`` and each item's ``why.forecasts``), the
reconciler's status (``/api/v1/health``, ``/metrics``, the dashboard).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from gridshift.model.time import as_utc_timestamp
from gridshift.service.provider_pull import ProviderPuller, planning_target

FORECAST_USE = ("fresh", "preferred", "off")


@dataclass
class ZoneForecast:
    """What forecasts the planning signal of one zone: ``source`` is ``provider`` or ``own``."""

    zone: str
    signal: str  # the planner's signal it stands for: carbon_g_per_kwh or price_usd_per_mwh
    provider: str
    provider_signal: str
    source: str
    reason: str
    issue_time: datetime | None = None
    age_s: float | None = None
    table: pd.DataFrame | None = None

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("table")
        d["issue_time"] = None if self.issue_time is None else self.issue_time.isoformat()
        return d


class ProviderForecasts:
    """The forecast choice for the zones a :class:`ProviderPuller` plans, read from its kept files (cached
    by path, size and modification time)."""

    def __init__(self, puller: ProviderPuller, use: str = "preferred") -> None:
        if use not in FORECAST_USE:
            raise ValueError(f"forecast_use must be one of {', '.join(FORECAST_USE)}")
        self.puller, self.use = puller, use
        self._cache: dict[Path, tuple[tuple[int, int], pd.DataFrame]] = {}

    def _read(self, path: Path) -> pd.DataFrame | None:
        if not path.is_file():
            return None
        st = path.stat()
        key = (st.st_size, st.st_mtime_ns)
        hit = self._cache.get(path)
        if hit is None or hit[0] != key:
            from gridshift.data.issued_forecasts import read_forecasts

            hit = (key, read_forecasts(path))
            self._cache[path] = hit
        return hit[1]

    def choose(self, now: datetime) -> dict[str, ZoneForecast]:
        """Per planning zone, the forecast the planner should use at ``now`` (see the module docstring)."""
        p = self.puller
        out = {}
        skill = p.forecast_skill()
        for zone, (provider, signal) in p.planning.items():
            cfg = next(c for c in p.configs if c.name == provider)
            zf = ZoneForecast(zone, planning_target(signal), provider, signal, "own", "")
            out[zone] = zf
            if self.use == "off":
                zf.reason = "provider forecasts are turned off (forecast_use: off)"
                continue
            if not cfg.forecasts or p.forecast_dir is None:
                zf.reason = f"{provider}'s forecasts are not kept (forecasts: false)"
                continue
            table = self._read(p.forecast_dir / provider / zone / f"{signal}.csv")
            now_ts = as_utc_timestamp(now)
            if table is not None:
                table = table[table["issue_time"] <= now_ts]
            if table is None or table.empty:
                zf.reason = f"no forecast from {provider} kept yet"
                continue
            newest = table["issue_time"].max()
            zf.issue_time = newest.to_pydatetime()
            zf.age_s = float((now_ts - newest).total_seconds())
            if zf.age_s > cfg.stale_after_s:
                zf.reason = (f"{provider}'s newest forecast, issued {newest:%Y-%m-%dT%H:%MZ}, is {zf.age_s:.0f} s old "
                             f"(stale after {cfg.stale_after_s:g} s)")
                continue
            sk = skill.get(zone)
            if self.use == "preferred" and not (sk and sk.get("preferred")):
                zf.reason = ("the rolling backtest does not prefer it" + (
                    f" ({sk['forecasts_scored']} forecast(s) scored; MAE {provider} {sk['provider_mae']}, "
                    f"own {sk['own_mae']})" if sk else " (not scored yet)"))
                continue
            zf.source, zf.table = "provider", table[table["issue_time"] == newest]
            zf.reason = f"fresh: issued {newest:%Y-%m-%dT%H:%MZ}, {zf.age_s:.0f} s old" + (
                ", preferred by the rolling backtest" if self.use == "preferred" else "")
        return out
