"""Electricity Maps v3 power-breakdown objects in the documented shape, for the loopback server.

Source: https://static.electricitymaps.com/api/docs/index.html — "Live power breakdown"
(``/v3/power-breakdown/latest``: one object), "Recent power breakdown history" (``/v3/power-breakdown/history``:
``{"zone", "history": [objects]}``) and "Past power breakdown range" (``/v3/power-breakdown/past-range``:
``{"zone", "data": [objects]}``). An object has ``zone``, ``datetime``, ``updatedAt``, ``createdAt``,
``powerConsumptionBreakdown`` and ``powerProductionBreakdown`` (MW per fuel: nuclear, geothermal, biomass, coal,
wind, solar, hydro, gas, oil, unknown, "hydro discharge", "battery discharge"; ``null`` where the zone reports
none), ``powerImportBreakdown`` and ``powerExportBreakdown`` (MW per neighbouring zone), ``fossilFreePercentage``,
``renewablePercentage``, ``powerConsumptionTotal``, ``powerProductionTotal``, ``powerImportTotal``,
``powerExportTotal`` (MW), ``isEstimated`` and ``estimationMethod``. No other field is used here."""

from __future__ import annotations

from typing import Any

FUELS = ("nuclear", "geothermal", "biomass", "coal", "wind", "solar", "hydro", "gas", "oil", "unknown",
         "hydro discharge", "battery discharge")


def breakdown(at: str, k: int = 0, zone: str = "DE", **override: Any) -> dict[str, Any]:
    """One power-breakdown object for the hour starting at ``at`` (``2023-06-01T00:00:00.000Z``); ``k``
    varies the figures from hour to hour; ``override`` replaces fields (``powerImportTotal=None``) and a
    ``production``/``consumption`` dict replaces single fuels (``production={"geothermal": None}``)."""
    production = {"nuclear": None, "geothermal": None, "biomass": 4500 + k, "coal": 9000 + 10 * k, "wind": 20000 + 100 * k,
                  "solar": 8000 + 50 * k, "hydro": 1800, "gas": 5500 + k, "oil": 300, "unknown": 250,
                  "hydro discharge": 400 - 300 * k, "battery discharge": None}
    consumption = {"nuclear": 1200, "geothermal": 0, "biomass": 4400 + k, "coal": 8800 + 10 * k, "wind": 19500 + 100 * k,
                   "solar": 7900 + 50 * k, "hydro": 2100, "gas": 5600 + k, "oil": 290, "unknown": 240,
                   "hydro discharge": 390, "battery discharge": 0}
    production.update(override.pop("production", {}))
    consumption.update(override.pop("consumption", {}))
    obj = {"zone": zone, "datetime": at, "updatedAt": "2023-06-01T06:00:00.000Z",
           "createdAt": "2023-05-29T00:00:00.000Z",
           "powerConsumptionBreakdown": consumption, "powerProductionBreakdown": production,
           "powerImportBreakdown": {"FR": 1500 + k, "PL": 0}, "powerExportBreakdown": {"NL": 2000, "CH": 700 + k},
           "fossilFreePercentage": 64, "renewablePercentage": 55,
           "powerConsumptionTotal": 51234 + k, "powerProductionTotal": 52000 + k,
           "powerImportTotal": 1500 + k, "powerExportTotal": 2700 + k,
           "isEstimated": False, "estimationMethod": None}
    obj.update(override)
    return obj
