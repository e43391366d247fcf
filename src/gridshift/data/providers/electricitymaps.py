"""Electricity Maps API v3: carbon intensity (life-cycle and direct; history and forecast) and the power
breakdown (per fuel, produced and consumed; imports and exports; renewable and fossil-free shares; totals).

Documentation: https://static.electricitymaps.com/api/docs/index.html (v3; the key goes in the
``auth-token`` header). Requests used:

- ``GET /carbon-intensity/past-range?zone&start&end&emissionFactorType`` → ``{"zone", "data": [{"zone",
  "carbonIntensity", "datetime", "updatedAt", "createdAt", "emissionFactorType", "isEstimated",
  "estimationMethod"}]}`` (hourly; at most 10 days per request, so longer ranges are asked in pieces);
- ``GET /carbon-intensity/forecast?zone&emissionFactorType`` → ``{"zone", "forecast": [{"carbonIntensity",
  "datetime"}], "updatedAt"}`` (``updatedAt`` is the issue time);
- ``GET /power-breakdown/past-range?zone&start&end`` → ``{"zone", "data": [{"zone", "datetime",
  "powerConsumptionBreakdown": {fuel: MW}, "powerProductionBreakdown": {fuel: MW}, "powerImportBreakdown":
  {zone: MW}, "powerExportBreakdown": {zone: MW}, "fossilFreePercentage", "renewablePercentage",
  "powerConsumptionTotal", "powerProductionTotal", "powerImportTotal", "powerExportTotal", "isEstimated",
  "estimationMethod"}]}``; the fuels are :data:`FUELS` (a fuel a zone does not report is ``null``);
- ``GET /carbon-intensity/latest?zone&emissionFactorType`` and ``GET /power-breakdown/latest?zone`` → one
  such object (``latest``);
- with ``options: {history: true}`` (the endpoints of the free personal tier), actuals come from
  ``GET /carbon-intensity/history?zone&emissionFactorType`` and ``GET /power-breakdown/history?zone`` →
  ``{"zone", "history": [the same objects]}``, which cover the last 24 hours only.

Units: gCO2eq/kWh as given; percentages → fractions; MW as given (``generation_<fuel>_mw`` from the
production breakdown, ``consumption_<fuel>_mw`` from the consumption breakdown, a space in a fuel's name
becoming ``_``: ``generation_hydro_discharge_mw``). Times are UTC ISO 8601. A ``null`` is a gap (the row is
dropped and reported, never read as zero).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from gridshift.data.providers.base import Batch, Provider, ProviderError, clean, frame
from gridshift.model.time import S_PER_H, as_utc_timestamp

MAX_RANGE = timedelta(days=10)
CARBON = {"carbon_lifecycle_g_per_kwh": "lifecycle", "carbon_direct_g_per_kwh": "direct"}
FUELS = ("nuclear", "geothermal", "biomass", "coal", "wind", "solar", "hydro", "gas", "oil", "unknown",
         "hydro discharge", "battery discharge")
# signal -> (field of a power-breakdown object, key inside it (a fuel) or None, scale to the signal's unit)
BREAKDOWN: dict[str, tuple[str, str | None, float]] = {
    "renewable_frac": ("renewablePercentage", None, 0.01), "clean_frac": ("fossilFreePercentage", None, 0.01),
    "load_mw": ("powerConsumptionTotal", None, 1.0), "generation_total_mw": ("powerProductionTotal", None, 1.0),
    "import_total_mw": ("powerImportTotal", None, 1.0), "export_total_mw": ("powerExportTotal", None, 1.0),
    **{f"generation_{f.replace(' ', '_')}_mw": ("powerProductionBreakdown", f, 1.0) for f in FUELS},
    **{f"consumption_{f.replace(' ', '_')}_mw": ("powerConsumptionBreakdown", f, 1.0) for f in FUELS}}
# pulled when a configuration names no signals (the per-fuel ones only when asked for by name)
DEFAULT = ("carbon_lifecycle_g_per_kwh", "carbon_direct_g_per_kwh", "renewable_frac", "clean_frac", "load_mw")


def _iso(t: Any) -> str:
    return as_utc_timestamp(t).strftime("%Y-%m-%dT%H:%M:%SZ")


def pieces(start: datetime, end: datetime, step: timedelta) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """``[start, end)`` cut into consecutive ranges of at most ``step``."""
    lo, hi = as_utc_timestamp(start), as_utc_timestamp(end)
    out = []
    while lo < hi:
        out.append((lo, min(lo + step, hi)))
        lo = out[-1][1]
    return out


def breakdown_value(row: dict, signal: str) -> Any:
    """The value of a breakdown ``signal`` in one power-breakdown object, in the signal's unit (``None``
    where the provider gives ``null`` or leaves the field out)."""
    field, key, scale = BREAKDOWN[signal]
    v = row.get(field)
    if key is not None:
        v = v.get(key) if isinstance(v, dict) else None
    return v * scale if isinstance(v, int | float) and not isinstance(v, bool) else v


class ElectricityMaps(Provider):
    name = "electricitymaps"
    default_base_url = "https://api.electricitymap.org/v3"
    key_env = "ELECTRICITYMAPS_API_KEY"
    doc_url = "https://static.electricitymaps.com/api/docs/index.html"
    signals = {**{s: (True, True) for s in CARBON}, **{s: (True, False) for s in BREAKDOWN}}
    default_signals = DEFAULT

    def chosen(self, signals: Iterable[str] | None, forecast: bool) -> list[str]:
        signals = None if signals is None else list(signals)
        for s in signals or ():
            kind, _, rest = s.partition("_")
            if s not in self.signals and kind in ("generation", "consumption") and rest.endswith("_mw"):
                raise ProviderError(f"{self.name}: unknown fuel '{rest[:-3]}' in signal {s} (fuels: "
                                    f"{', '.join(f.replace(' ', '_') for f in FUELS)}, total)")
        return super().chosen(signals, forecast)

    def _headers(self) -> dict[str, str]:
        return {"auth-token": self.key() or ""}

    def _list(self, body: Any, key: str, zone: str, start: Any, end: Any) -> list[dict]:
        rows = body.get(key) if isinstance(body, dict) else None
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise self.shape_error(zone, start, end, f"no list '{key}'")
        return rows

    def actuals(self, zone: str, start: datetime, end: datetime, signals: Iterable[str] | None = None) -> Batch:
        want = self.chosen(signals, forecast=False)
        if self.config.options.get("history"):
            return self._history(zone, start, end, want)
        pz = self.provider_zone(zone)
        records: list[dict] = []
        for lo, hi in pieces(start, end, MAX_RANGE):
            params = {"zone": pz, "start": _iso(lo), "end": _iso(hi)}
            for sig in (s for s in want if s in CARBON):
                body = self.get_json("/carbon-intensity/past-range", {**params, "emissionFactorType": CARBON[sig]},
                                     zone, lo, hi, headers=self._headers())
                records += [{"signal": sig, "at": r.get("datetime"), "value": r.get("carbonIntensity")}
                            for r in self._list(body, "data", zone, lo, hi)]
            breakdown = [s for s in want if s in BREAKDOWN]
            if breakdown:
                body = self.get_json("/power-breakdown/past-range", params, zone, lo, hi, headers=self._headers())
                records += self._breakdown(self._list(body, "data", zone, lo, hi), breakdown)
        return clean(Batch(self.name, zone, frame(records)), start, end, step_s=S_PER_H)

    def _breakdown(self, rows: list[dict], want: list[str]) -> list[dict]:
        return [{"signal": sig, "at": r.get("datetime"), "value": breakdown_value(r, sig)} for r in rows for sig in want]

    def _history(self, zone: str, start: datetime, end: datetime, want: list[str]) -> Batch:
        """Actuals from the ``/history`` endpoints (the last 24 hours), kept inside ``[start, end)``."""
        pz = self.provider_zone(zone)
        records: list[dict] = []
        for sig in (s for s in want if s in CARBON):
            body = self.get_json("/carbon-intensity/history", {"zone": pz, "emissionFactorType": CARBON[sig]},
                                 zone, start, end, headers=self._headers())
            records += [{"signal": sig, "at": r.get("datetime"), "value": r.get("carbonIntensity")}
                        for r in self._list(body, "history", zone, start, end)]
        breakdown = [s for s in want if s in BREAKDOWN]
        if breakdown:
            body = self.get_json("/power-breakdown/history", {"zone": pz}, zone, start, end, headers=self._headers())
            records += self._breakdown(self._list(body, "history", zone, start, end), breakdown)
        rows = frame(records)
        inside = rows["at"].isna() | ((rows["at"] >= as_utc_timestamp(start)) & (rows["at"] < as_utc_timestamp(end)))
        return clean(Batch(self.name, zone, rows[inside].reset_index(drop=True)), start, end, step_s=S_PER_H)

    def forecasts(self, zone: str, signals: Iterable[str] | None = None, start: datetime | None = None,
                  end: datetime | None = None) -> Batch:
        want = self.chosen(signals, forecast=True)
        pz = self.provider_zone(zone)
        records: list[dict] = []
        for sig in want:
            body = self.get_json("/carbon-intensity/forecast", {"zone": pz, "emissionFactorType": CARBON[sig]},
                                 zone, start, end, headers=self._headers())
            issued = body.get("updatedAt") if isinstance(body, dict) else None
            records += [{"signal": sig, "at": r.get("datetime"), "value": r.get("carbonIntensity"),
                         "issue_time": issued} for r in self._list(body, "forecast", zone, start, end)]
        return clean(Batch(self.name, zone, frame(records)), start, end, step_s=S_PER_H, forecast=True)

    def latest(self, zone: str, signals: Iterable[str] | None = None) -> Batch:
        want = self.chosen(signals, forecast=False)
        pz = self.provider_zone(zone)
        records: list[dict] = []
        for sig in (s for s in want if s in CARBON):
            r = self.get_json("/carbon-intensity/latest", {"zone": pz, "emissionFactorType": CARBON[sig]},
                              zone, None, None, headers=self._headers())
            if not isinstance(r, dict):
                raise self.shape_error(zone, None, None, "not an object")
            records.append({"signal": sig, "at": r.get("datetime"), "value": r.get("carbonIntensity")})
        breakdown = [s for s in want if s in BREAKDOWN]
        if breakdown:
            r = self.get_json("/power-breakdown/latest", {"zone": pz}, zone, None, None, headers=self._headers())
            if not isinstance(r, dict):
                raise self.shape_error(zone, None, None, "not an object")
            records += self._breakdown([r], breakdown)
        return clean(Batch(self.name, zone, frame(records)), step_s=S_PER_H)
