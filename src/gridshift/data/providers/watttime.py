"""WattTime API v3: marginal (``co2_moer``) and average (``co2_aoer``) CO2 emission rates, ``health_damage``,
the signal index, and forecasts.

Documentation: https://docs.watttime.org (OpenAPI: https://docs.watttime.org/openapi.json). A token comes
from ``GET /login`` with HTTP basic auth (``{"token": …}``, valid 30 minutes; fetched again after a 401),
then:

- ``GET /v3/historical?region&start&end&signal_type`` → ``{"data": [{"point_time", "value"}], "meta":
  {"region", "signal_type", "units", "data_point_period_seconds", "model", "warnings"}}`` (at most 32
  days per request, so longer ranges are asked in pieces);
- ``GET /v3/forecast?region&signal_type&horizon_hours`` → the same ``data`` with ``meta.generated_at`` (the
  issue time);
- ``GET /v3/signal-index?region&signal_type`` → the current percentile (0–100) of the MOER;
- ``GET /v3/forecast/historical?region&start&end&signal_type`` → ``{"data": [{"generated_at", "forecast":
  [{"point_time", "value"}]}], "meta": {…}}``: the forecasts issued in a past range (asked a day at a time).

Units: ``lbs_co2_per_mwh`` → g/kWh (× 0.45359237: 453.59237 g per lb, 1,000 kWh per MWh); health damage as
given in ``$`` per MWh. The username and password come from ``WATTTIME_USER`` and ``WATTTIME_PASSWORD``
(or ``username_env`` and ``api_key_env``/``api_key_file`` for the password). The official ``watttime``
client is not used: its base URL is a class attribute, not an option, so it cannot be pointed at a test
server; the requests and responses it wraps are the ones above.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from gridshift.data.providers.base import Batch, Provider, ProviderError, clean, frame, where
from gridshift.data.providers.electricitymaps import _iso, pieces

LB_PER_MWH_TO_G_PER_KWH = 0.45359237
MAX_RANGE = timedelta(days=32)
MAX_FORECAST_RANGE = timedelta(days=1)
SIGNAL_TYPES = {"moer_g_per_kwh": "co2_moer", "aoer_g_per_kwh": "co2_aoer",
                "health_damage_usd_per_mwh": "health_damage", "moer_index_pct": "co2_moer"}
UNITS = {"lbs_co2_per_mwh": LB_PER_MWH_TO_G_PER_KWH, "g_co2_per_kwh": 1.0, "kg_co2_per_mwh": 1.0,
         "percentile": 1.0}


class WattTime(Provider):
    name = "watttime"
    default_base_url = "https://api.watttime.org"
    key_env = "WATTTIME_PASSWORD"
    doc_url = "https://docs.watttime.org"
    min_interval_s = 0.1  # 3,000 requests in any 5 minutes (docs.watttime.org, "rate limit")
    signals = {"moer_g_per_kwh": (True, True), "aoer_g_per_kwh": (True, False),
               "health_damage_usd_per_mwh": (True, True), "moer_index_pct": (True, False)}

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self._token: str | None = None

    def _login(self, zone: str, start: Any, end: Any) -> str:
        user = os.environ.get(self.config.username_env or "WATTTIME_USER") or self.config.options.get("username")
        if not user:
            raise ProviderError(f"{self.name}: no username (set ${self.config.username_env or 'WATTTIME_USER'})")
        body = self.get_json("/login", None, zone, start, end, auth=(str(user), self.key() or ""))
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise self.shape_error(zone, start, end, "login answer without a token")
        return token

    def _data(self, path: str, params: dict, zone: str, start: Any, end: Any) -> tuple[list[dict], dict]:
        for attempt in (0, 1):
            if self._token is None:
                self._token = self._login(zone, start, end)
            try:
                body = self.get_json(path, params, zone, start, end,
                                     headers={"Authorization": f"Bearer {self._token}"})
                break
            except ProviderError as e:
                if attempt == 0 and "HTTP 401" in str(e):  # the token expired: log in again once
                    self._token = None
                    continue
                raise
        data = body.get("data") if isinstance(body, dict) else None
        meta = body.get("meta") if isinstance(body, dict) else None
        if not isinstance(data, list) or not isinstance(meta, dict):
            raise self.shape_error(zone, start, end, "no 'data' list and 'meta' object")
        return data, meta

    @staticmethod
    def _scale(sig: str, meta: dict) -> float | None:
        """The factor to the signal's unit (None: units not known, the rows are dropped)."""
        if sig == "health_damage_usd_per_mwh":
            return 1.0
        return UNITS.get(str(meta.get("units", "")))

    def _records(self, sig: str, data: list, meta: dict, zone: str, start: Any, end: Any,
                 problems: list[str], issued: Any = None) -> list[dict]:
        scale = self._scale(sig, meta)
        if scale is None:
            problems.append(f"{where(self.name, zone, start, end)}: {len(data)} row(s) dropped: "
                            f"unknown units '{meta.get('units')}' for {SIGNAL_TYPES[sig]}")
            return []
        out = []
        for r in data:
            v = r.get("value") if isinstance(r, dict) else None
            out.append({"signal": sig, "at": r.get("point_time") if isinstance(r, dict) else None,
                        "value": v * scale if isinstance(v, int | float) and not isinstance(v, bool) else v,
                        "issue_time": issued})
        return out

    def actuals(self, zone: str, start: datetime, end: datetime, signals: Iterable[str] | None = None) -> Batch:
        want = self.chosen(signals, forecast=False)
        region = self.provider_zone(zone)
        records: list[dict] = []
        problems: list[str] = []
        step = None
        for sig in want:
            if sig == "moer_index_pct":
                data, meta = self._data("/v3/signal-index", {"region": region, "signal_type": "co2_moer"},
                                        zone, start, end)
                records += self._records(sig, data, meta, zone, start, end, problems)
                continue
            for lo, hi in pieces(start, end, MAX_RANGE):
                data, meta = self._data("/v3/historical", {"region": region, "start": _iso(lo), "end": _iso(hi),
                                                           "signal_type": SIGNAL_TYPES[sig]}, zone, lo, hi)
                step = meta.get("data_point_period_seconds") or step
                records += self._records(sig, data, meta, zone, lo, hi, problems)
        batch = Batch(self.name, zone, frame(records), problems)
        if "moer_index_pct" in want:  # the index is "now", not inside the range: keep it out of the range check
            return clean(batch, step_s=_step_s(step))
        return clean(batch, start, end, step_s=_step_s(step))

    def forecasts(self, zone: str, signals: Iterable[str] | None = None, start: datetime | None = None,
                  end: datetime | None = None) -> Batch:
        want = self.chosen(signals, forecast=True)
        region = self.provider_zone(zone)
        records: list[dict] = []
        problems: list[str] = []
        step = None
        for sig in want:
            params = {"region": region, "signal_type": SIGNAL_TYPES[sig],
                      "horizon_hours": int(self.config.options.get("horizon_hours", 24))}
            data, meta = self._data("/v3/forecast", params, zone, start, end)
            step = meta.get("data_point_period_seconds") or step
            records += self._records(sig, data, meta, zone, start, end, problems, issued=meta.get("generated_at"))
        return clean(Batch(self.name, zone, frame(records), problems), start, end,
                     step_s=_step_s(step), forecast=True)

    def past_forecasts(self, zone: str, start: datetime, end: datetime,
                       signals: Iterable[str] | None = None) -> Batch:
        want = self.chosen(signals, forecast=True)
        region = self.provider_zone(zone)
        records: list[dict] = []
        problems: list[str] = []
        step = None
        for sig in want:
            for lo, hi in pieces(start, end, MAX_FORECAST_RANGE):
                data, meta = self._data("/v3/forecast/historical", {"region": region, "start": _iso(lo), "end": _iso(hi),
                                                                     "signal_type": SIGNAL_TYPES[sig]}, zone, lo, hi)
                step = meta.get("data_point_period_seconds") or step
                for issued in data:
                    if not isinstance(issued, dict) or not isinstance(issued.get("forecast"), list):
                        problems.append(f"{where(self.name, zone, lo, hi)}: a past forecast without a 'forecast' "
                                        "list dropped")
                        continue
                    records += self._records(sig, issued["forecast"], meta, zone, lo, hi, problems,
                                             issued=issued.get("generated_at"))
        return clean(Batch(self.name, zone, frame(records), problems), start, end,
                     step_s=_step_s(step), forecast=True)


def _step_s(step: object) -> float | None:
    """The answers' ``data_point_period_seconds`` as a number (None when the metadata gave none)."""
    return float(step) if isinstance(step, int | float) else None
