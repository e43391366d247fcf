"""The U.S. Energy Information Administration's API v2 (hourly data of Form EIA-930, by balancing
authority): demand, the day-ahead demand forecast, net generation by fuel type.

Documentation: https://www.eia.gov/opendata/documentation.php (API v2: ``GET /v2/{route}/data/?api_key
&frequency=hourly&data[0]=value&facets[…][]=…&start&end&sort[0][column]=period&sort[0][direction]=asc
&offset&length``; at most 5,000 rows per answer, so answers are paged by ``offset`` until
``response.total`` rows are read). Routes used:

- ``electricity/rto/region-data`` with ``facets[type][]`` ``D`` (demand, ``load_mw``) and ``DF`` (day-ahead
  demand forecast, ``load_forecast_mw``) → ``{"response": {"total", "data": [{"period", "respondent",
  "respondent-name", "type", "type-name", "value", "value-units"}]}}``;
- ``electricity/rto/fuel-type-data`` with ``facets[fueltype][]`` → rows with ``fueltype`` instead of
  ``type`` (``generation_<fuel>_mw``).

``period`` is ``YYYY-MM-DDTHH`` in UTC with ``frequency=hourly``; EIA-930 hours are reported by the hour
they end (https://www.eia.gov/electricity/gridmonitor/about), so a value is stored at ``period - 1 h``, the
start of its hour. MWh per hour = average MW. The API gives no issue time for ``DF``: a forecast's issue
time is the hour in which it was fetched. Zones are EIA respondent codes (``CISO``, ``ERCO``, ``PJM`` …).
``gridstatus`` is not used: its EIA base URL is a class constant, not an option; LMPs (which only
``gridstatus``' per-ISO scrapers give) are not covered.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from gridshift.data.providers.base import Batch, RangeProvider, clean, frame
from gridshift.model.time import S_PER_H, as_utc_timestamp

PAGE = 5000
FUELS = {"COL": "coal", "NG": "gas", "NUC": "nuclear", "OIL": "oil", "WAT": "hydro", "SUN": "solar",
         "WND": "wind", "OTH": "other"}
GENERATION = {f"generation_{v}_mw": k for k, v in FUELS.items()}
REGION = {"load_mw": "D", "load_forecast_mw": "DF"}


def _hour(t: Any) -> str:
    return as_utc_timestamp(t).strftime("%Y-%m-%dT%H")


def _period_start(period: Any) -> str | None:
    """The start of the hour that ``period`` (``YYYY-MM-DDTHH``, hour ending, UTC) ends."""
    try:
        return (pd.Timestamp(str(period), tz="UTC") - pd.Timedelta(hours=1)).isoformat()
    except ValueError:
        return None


class Eia(RangeProvider):
    name = "eia"
    default_base_url = "https://api.eia.gov/v2"
    key_env = "EIA_API_KEY"
    doc_url = "https://www.eia.gov/opendata/documentation.php"
    signals = {"load_mw": (True, False), "load_forecast_mw": (False, True), **{g: (True, False) for g in GENERATION}}

    def _rows(self, route: str, facets: list[tuple[str, str]], zone: str, start: Any, end: Any) -> list[dict]:
        """Every row of a route for ``[start, end)`` (ending hours ``start + 1 h`` … ``end``), page by page."""
        rows: list[dict] = []
        offset = 0
        while True:
            params = [("api_key", self.key() or ""), ("frequency", "hourly"), ("data[0]", "value"),
                      ("facets[respondent][]", self.provider_zone(zone)), *facets,
                      ("start", _hour(as_utc_timestamp(start) + pd.Timedelta(hours=1))), ("end", _hour(end)),
                      ("sort[0][column]", "period"), ("sort[0][direction]", "asc"),
                      ("offset", str(offset)), ("length", str(PAGE))]
            body = self.get_json(f"/{route}/data/", params, zone, start, end)
            resp = body.get("response") if isinstance(body, dict) else None
            data = resp.get("data") if isinstance(resp, dict) else None
            if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
                raise self.shape_error(zone, start, end, "no list 'response.data'")
            try:
                total = int(resp.get("total", len(data)))
            except (TypeError, ValueError):
                raise self.shape_error(zone, start, end, f"'response.total' is {resp.get('total')!r}") from None
            rows += data
            offset += len(data)
            if not data or offset >= total:
                return rows

    def _fetch(self, zone: str, start: Any, end: Any, want: list[str], issued: Any = None) -> Batch:
        records: list[dict] = []
        types = {REGION[s]: s for s in want if s in REGION}
        if types:
            for r in self._rows("electricity/rto/region-data", [("facets[type][]", t) for t in types],
                                zone, start, end):
                sig = types.get(r.get("type"))
                if sig is not None:
                    records.append({"signal": sig, "at": _period_start(r.get("period")), "value": r.get("value"),
                                    "issue_time": issued})
        fuels = {GENERATION[s]: s for s in want if s in GENERATION}
        if fuels:
            for r in self._rows("electricity/rto/fuel-type-data", [("facets[fueltype][]", f) for f in fuels],
                                zone, start, end):
                sig = fuels.get(r.get("fueltype"))
                if sig is not None:
                    records.append({"signal": sig, "at": _period_start(r.get("period")), "value": r.get("value")})
        return clean(Batch(self.name, zone, frame(records)), start, end, step_s=S_PER_H, forecast=issued is not None)

