"""The GB Carbon Intensity API (National Energy System Operator with the University of Oxford): national
actuals and forecasts, regional forecasts, 48 hours ahead, half-hourly; no key.

Documentation: https://carbon-intensity.github.io/api-definitions/ . Requests used:

- ``GET /intensity/{from}/{to}`` → ``{"data": [{"from", "to", "intensity": {"forecast", "actual",
  "index"}}]}`` (national; at most 14 days per request, so longer ranges are asked in pieces);
- ``GET /intensity/{from}/fw48h`` → the same rows, 48 hours ahead (``actual`` null in the future);
- ``GET /regional/intensity/{from}/fw48h/regionid/{id}`` → ``{"data": {"regionid", "dnoregion",
  "shortname", "data": [{"from", "to", "intensity": {"forecast", "index"}, "generationmix": [{"fuel",
  "perc"}]}]}}`` (regional figures are forecasts only; the body is also accepted with ``data`` as a
  one-element list, as the ``/regional/regionid/{id}`` answer has it).

Zone ``GB`` (or provider zone ``national``) is national; a provider zone that is a number 1–17 is that
region (``zones: {GB-LONDON: "13"}``). The figures count CO2 from generation (operational, not life-cycle),
so the signal is ``carbon_direct_g_per_kwh``; ``carbon_index`` maps the index bands very low … very high to
0 … 4. The API gives no issue time: a forecast's issue time is the half hour in which it was fetched.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from gridshift.data.providers.base import Batch, Provider, clean, frame
from gridshift.data.providers.electricitymaps import pieces
from gridshift.model.time import as_utc_timestamp, utcnow

STEP_S = 1800.0
MAX_RANGE = timedelta(days=14)
INDEX = {"very low": 0, "low": 1, "moderate": 2, "high": 3, "very high": 4}


def _t(t: Any) -> str:
    return as_utc_timestamp(t).strftime("%Y-%m-%dT%H:%MZ")


class GbCarbonIntensity(Provider):
    name = "gb-carbon-intensity"
    default_base_url = "https://api.carbonintensity.org.uk"
    needs_key = False
    doc_url = "https://carbon-intensity.github.io/api-definitions/"
    signals = {"carbon_direct_g_per_kwh": (True, True), "carbon_index": (True, True)}

    def _region(self, zone: str) -> str | None:
        pz = self.provider_zone(zone)
        return None if pz in ("GB", "national") else pz

    def _rows(self, body: Any, zone: str, start: Any, end: Any, *, regional: bool) -> list[dict]:
        data = body.get("data") if isinstance(body, dict) else None
        if regional:
            if isinstance(data, list) and len(data) == 1:
                data = data[0]
            data = data.get("data") if isinstance(data, dict) else None
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise self.shape_error(zone, start, end, "no list of half hours in 'data'")
        return data

    def _records(self, rows: list[dict], want: list[str], field: str, issued: Any = None) -> list[dict]:
        out = []
        for r in rows:
            inten = r.get("intensity") if isinstance(r.get("intensity"), dict) else {}
            for sig in want:
                if sig == "carbon_index":
                    v = INDEX.get(str(inten.get("index", "")).lower()) if inten.get("index") is not None else None
                else:
                    v = inten.get(field)
                out.append({"signal": sig, "at": r.get("from"), "value": v, "issue_time": issued})
        return out

    def actuals(self, zone: str, start: datetime, end: datetime, signals: Iterable[str] | None = None) -> Batch:
        want = self.chosen(signals, forecast=False)
        region = self._region(zone)
        batch = Batch.empty(self.name, zone)
        if region is not None:
            batch.problems.append(f"{self.name}: zone {zone}: regional figures are forecasts only; "
                                  "no actuals pulled")
            return batch
        records: list[dict] = []
        for lo, hi in pieces(start, end, MAX_RANGE):
            body = self.get_json(f"/intensity/{_t(lo)}/{_t(hi)}", None, zone, lo, hi)
            records += self._records(self._rows(body, zone, lo, hi, regional=False), want, "actual")
        return clean(Batch(self.name, zone, frame(records)), start, end, step_s=STEP_S)

    def forecasts(self, zone: str, signals: Iterable[str] | None = None, start: datetime | None = None,
                  end: datetime | None = None) -> Batch:
        want = self.chosen(signals, forecast=True)
        region = self._region(zone)
        issued = pd.Timestamp(utcnow()).floor("30min")
        frm = _t(start if start is not None else issued)
        path = f"/intensity/{frm}/fw48h" if region is None else f"/regional/intensity/{frm}/fw48h/regionid/{region}"
        body = self.get_json(path, None, zone, start, end)
        rows = self._rows(body, zone, start, end, regional=region is not None)
        records = self._records(rows, want, "forecast", issued=issued.isoformat())
        return clean(Batch(self.name, zone, frame(records)), start, end, step_s=STEP_S, forecast=True)
