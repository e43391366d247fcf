"""ENTSO-E Transparency Platform (RESTful API, XML): actual load and the day-ahead load forecast, day-ahead
wind and solar forecasts, actual generation per production type, day-ahead prices.

Documentation: https://transparency.entsoe.eu/content/static_content/Static%20content/web%20api/Guide.html
(``GET {base}?securityToken&documentType&processType&…&periodStart&periodEnd``, times ``yyyyMMddHHmm`` UTC;
at most one year per request, so longer ranges are asked in pieces). Documents used:

==============================  =========================================  ============================
signal                          request                                    document
==============================  =========================================  ============================
``load_mw``                     A65, processType A16, outBiddingZone       GL_MarketDocument
``load_forecast_mw``            A65, processType A01, outBiddingZone       GL_MarketDocument (forecast)
``wind_forecast_mw``            A69, processType A01, in_Domain (B18+B19)  GL_MarketDocument (forecast)
``solar_forecast_mw``           A69, processType A01, in_Domain (B16)      GL_MarketDocument (forecast)
``generation_<type>_mw``        A75, processType A16, in_Domain            GL_MarketDocument
``price_eur_per_mwh``           A44, in_Domain = out_Domain                Publication_MarketDocument
==============================  =========================================  ============================

Each ``TimeSeries/Period`` has ``timeInterval/start``, a ``resolution`` (``PT15M``, ``PT30M``, ``PT60M``)
and ``Point``\\ s (``position`` from 1, ``quantity`` or ``price.amount``); with ``curveType`` A03 a
position left out repeats the previous one (as the guide defines it). Values at a finer resolution than an
hour are averaged to the hour. An ``Acknowledgement_MarketDocument`` with reason 999 ("No matching data
found") is an empty answer; any other reason is an error naming it. A forecast's issue time is the
document's ``createdDateTime``. Zones are bidding-zone EIC codes (a table of common ones below; others in
``zones``). ``entsoe-py`` is not used: its URL is a module constant, not an option, so it cannot be pointed
at a test server; the XML is parsed here directly with the standard library.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from gridshift.data.providers.base import Batch, Provider, ProviderError, clean, frame, where
from gridshift.data.providers.electricitymaps import pieces
from gridshift.model.time import S_PER_H, as_utc_timestamp

MAX_RANGE = timedelta(days=365)
EIC = {"DE-LU": "10Y1001A1001A82H", "DE": "10Y1001A1001A82H", "FR": "10YFR-RTE------C",
       "NL": "10YNL----------L", "BE": "10YBE----------2", "ES": "10YES-REE------0", "PT": "10YPT-REN------W",
       "AT": "10YAT-APG------L", "CH": "10YCH-SWISSGRIDZ", "PL": "10YPL-AREA-----S", "CZ": "10YCZ-CEPS-----N",
       "FI": "10YFI-1--------U", "DK-DK1": "10YDK-1--------W", "DK-DK2": "10YDK-2--------M",
       "SE-SE3": "10Y1001A1001A46L", "NO-NO1": "10YNO-1--------2", "IE": "10Y1001A1001A59C"}
PSR = {"B01": "biomass", "B02": "lignite", "B03": "coal_gas", "B04": "gas", "B05": "hard_coal", "B06": "oil",
       "B07": "oil_shale", "B08": "peat", "B09": "geothermal", "B10": "hydro_pumped", "B11": "hydro_river",
       "B12": "hydro_reservoir", "B13": "marine", "B14": "nuclear", "B15": "other_renewable", "B16": "solar",
       "B17": "waste", "B18": "wind_offshore", "B19": "wind_onshore", "B20": "other"}
GENERATION = {f"generation_{v}_mw": k for k, v in PSR.items()}
RES = {"PT15M": 900, "PT30M": 1800, "PT60M": 3600, "P1D": 86400}
EIC_SHAPE = re.compile(r"^\d{2}[A-Z][A-Z0-9-]{13}$")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(el: ET.Element, name: str) -> ET.Element | None:
    return next((c for c in el if _local(c.tag) == name), None)


def _text(el: ET.Element | None, *path: str) -> str | None:
    for p in path:
        if el is None:
            return None
        el = _child(el, p)
    return None if el is None or el.text is None else el.text.strip()


def _time(text: str | None) -> pd.Timestamp | None:
    try:
        return None if not text else as_utc_timestamp(text)
    except ValueError:
        return None


class Entsoe(Provider):
    name = "entsoe"
    default_base_url = "https://web-api.tp.entsoe.eu/api"
    key_env = "ENTSOE_API_KEY"
    doc_url = "https://transparency.entsoe.eu/content/static_content/Static%20content/web%20api/Guide.html"
    min_interval_s = 0.2  # a conservative default pause between requests (min_interval_s in the configuration)
    signals = {"load_mw": (True, False), "load_forecast_mw": (False, True), "wind_forecast_mw": (False, True),
               "solar_forecast_mw": (False, True), "price_eur_per_mwh": (True, False),
               **{g: (True, False) for g in GENERATION}}

    def eic(self, zone: str) -> str:
        pz = self.provider_zone(zone)
        code = EIC.get(pz, pz)
        if not EIC_SHAPE.match(code):
            raise ProviderError(f"{self.name}: zone {zone}: unknown zone (known: {', '.join(sorted(EIC))}; "
                                "give others by EIC code in the provider's zones)")
        return code

    def _doc(self, params: dict, zone: str, lo: Any, hi: Any, problems: list[str]) -> ET.Element | None:
        query = {"securityToken": self.key() or "", **params,
                 "periodStart": as_utc_timestamp(lo).strftime("%Y%m%d%H%M"),
                 "periodEnd": as_utc_timestamp(hi).strftime("%Y%m%d%H%M")}
        body = self.get("", query, zone, lo, hi)
        try:
            root = ET.fromstring(body)
        except ET.ParseError as e:
            raise ProviderError(f"{where(self.name, zone, lo, hi)}: malformed XML in the answer ({e})") from None
        if _local(root.tag) == "Acknowledgement_MarketDocument":
            code, text = _text(root, "Reason", "code"), _text(root, "Reason", "text") or ""
            if code == "999":
                problems.append(f"{where(self.name, zone, lo, hi)}: no matching data ({params['documentType']})")
                return None
            raise ProviderError(f"{where(self.name, zone, lo, hi)}: the platform answered reason {code}: "
                                f"{' '.join(text.split())}")
        return root

    def _points(self, root: ET.Element, value_tag: str,
                skipped: list[str]) -> list[tuple[str | None, str, float | str]]:
        """(psrType, period time ISO, value) for every point of every series, A03 gaps repeated. Series in
        other units than MW (``MAW``) or EUR per MWh, and periods without a start or a known resolution, are
        left out and named in ``skipped``."""
        out = []
        for ts in (c for c in root if _local(c.tag) == "TimeSeries"):
            if _child(ts, "outBiddingZone_Domain.mRID") is not None and _child(ts, "inBiddingZone_Domain.mRID") is None \
                    and value_tag == "quantity" and _text(ts, "MktPSRType", "psrType"):
                continue  # consumption of a production type (pumping): not generation
            units = ((_text(ts, "quantity_Measure_Unit.name"), ("MAW",)),) if value_tag == "quantity" else \
                ((_text(ts, "currency_Unit.name"), ("EUR",)), (_text(ts, "price_Measure_Unit.name"), ("MWH",)))
            bad = [u for u, ok in units if u is not None and u not in ok]
            if bad:
                skipped.append(f"a series in {'/'.join(bad)} (expected {' per '.join(o[0] for _, o in units)})")
                continue
            psr = _text(ts, "MktPSRType", "psrType")
            curve = _text(ts, "curveType") or "A01"
            for period in (c for c in ts if _local(c.tag) == "Period"):
                t0, t1 = _time(_text(period, "timeInterval", "start")), _time(_text(period, "timeInterval", "end"))
                step = RES.get(_text(period, "resolution") or "")
                if t0 is None or step is None:
                    skipped.append(f"a period with start '{_text(period, 'timeInterval', 'start')}' and resolution "
                                   f"'{_text(period, 'resolution')}' not understood")
                    continue
                pts: dict[int, str | None] = {}
                for p in (c for c in period if _local(c.tag) == "Point"):
                    pos = _text(p, "position")
                    if pos is not None and pos.isdigit():
                        if int(pos) in pts:  # the same position twice: both go on, for clean() to judge
                            out.append((psr, (t0 + pd.Timedelta(seconds=step * (int(pos) - 1))).isoformat(),
                                        _text(p, value_tag)))
                        else:
                            pts[int(pos)] = _text(p, value_tag)
                n = max(pts, default=0)
                if curve == "A03" and t1 is not None:
                    n = int((t1 - t0).total_seconds() // step)
                last = None
                for pos in range(1, n + 1):
                    v = pts.get(pos, last if curve == "A03" else None)
                    if v is None:
                        continue
                    last = v
                    out.append((psr, (t0 + pd.Timedelta(seconds=step * (pos - 1))).isoformat(), v))
        return out

    def _hourly(self, records: list[dict], zone: str, start: Any, end: Any, problems: list[str]) -> list[dict]:
        """Finer-than-hourly values averaged to the hour (the mean over the hour's points). A point given twice
        with different values is dropped first (both), so no mean hides it."""
        if not records:
            return records
        df = frame(records)
        bad = df[df["at"].isna() | df["value"].isna()]
        ok = df.drop(bad.index)
        key = ["signal", "at", "issue_time"]
        conflict = ok.groupby(key, dropna=False)["value"].transform("nunique").to_numpy() > 1
        if conflict.any():
            problems.append(f"{where(self.name, zone, start, end)}: {int(conflict.sum())} row(s) dropped: the same "
                            f"time given twice with different values (first at "
                            f"{ok.loc[conflict, 'at'].min().strftime('%Y-%m-%dT%H:%MZ')})")
            ok = ok.loc[~conflict]
        ok = ok.drop_duplicates(key)
        ok = ok.assign(at=ok["at"].dt.floor("h")).groupby(["signal", "at", "issue_time"], dropna=False,
                                                           as_index=False)["value"].mean()
        return [*ok.to_dict("records"), *bad.to_dict("records")]

    def _fetch(self, zone: str, start: Any, end: Any, want: list[str], forecast: bool) -> Batch:
        eic = self.eic(zone)
        records: list[dict] = []
        problems: list[str] = []
        skipped: list[str] = []
        for lo, hi in pieces(start, end, MAX_RANGE):
            def doc(params: dict) -> ET.Element | None:
                return self._doc(params, zone, lo, hi, problems)  # noqa: B023 (used at once)

            issued = None
            if "load_mw" in want and (root := doc({"documentType": "A65", "processType": "A16",
                                                     "outBiddingZone_Domain": eic})) is not None:
                records += [{"signal": "load_mw", "at": t, "value": v} for _, t, v in self._points(root, "quantity", skipped)]
            if "load_forecast_mw" in want and (root := doc({"documentType": "A65", "processType": "A01",
                                                              "outBiddingZone_Domain": eic})) is not None:
                issued = _text(root, "createdDateTime")
                records += [{"signal": "load_forecast_mw", "at": t, "value": v, "issue_time": issued}
                            for _, t, v in self._points(root, "quantity", skipped)]
            ws = [s for s in ("wind_forecast_mw", "solar_forecast_mw") if s in want]
            if ws and (root := doc({"documentType": "A69", "processType": "A01", "in_Domain": eic})) is not None:
                issued = _text(root, "createdDateTime")
                parts = [{"signal": "solar_forecast_mw" if psr == "B16" else "wind_forecast_mw", "at": t,
                          "value": v, "issue_time": issued, "psr": psr}
                         for psr, t, v in self._points(root, "quantity", skipped) if psr in ("B16", "B18", "B19")]
                df = frame(parts)
                if not df.empty:  # offshore + onshore wind: summed per time, at the hourly mean
                    df = df.assign(at=df["at"].dt.floor("h"))
                    df["psr"] = [p["psr"] for p in parts]
                    df = df.groupby(["signal", "at", "issue_time", "psr"], as_index=False)["value"].mean()
                    df = df.groupby(["signal", "at", "issue_time"], as_index=False)["value"].sum()
                    records += [r for r in df.to_dict("records") if r["signal"] in ws]
            gen = [s for s in want if s in GENERATION]
            if gen and (root := doc({"documentType": "A75", "processType": "A16", "in_Domain": eic})) is not None:
                codes = {GENERATION[s]: s for s in gen}
                records += [{"signal": codes[psr], "at": t, "value": v}
                            for psr, t, v in self._points(root, "quantity", skipped) if psr in codes]
            if "price_eur_per_mwh" in want and (root := doc({"documentType": "A44", "in_Domain": eic,
                                                               "out_Domain": eic})) is not None:
                records += [{"signal": "price_eur_per_mwh", "at": t, "value": v}
                            for _, t, v in self._points(root, "price.amount", skipped)]
        for what in dict.fromkeys(skipped):
            problems.append(f"{where(self.name, zone, start, end)}: {skipped.count(what)} dropped: {what}")
        return clean(Batch(self.name, zone, frame(self._hourly(records, zone, start, end, problems)), problems),
                     start, end,
                     step_s=S_PER_H, forecast=forecast)

    def actuals(self, zone: str, start: datetime, end: datetime, signals: Iterable[str] | None = None) -> Batch:
        return self._fetch(zone, start, end, self.chosen(signals, forecast=False), forecast=False)

    def forecasts(self, zone: str, signals: Iterable[str] | None = None, start: datetime | None = None,
                  end: datetime | None = None) -> Batch:
        if start is None or end is None:
            now = pd.Timestamp.now(tz="UTC").floor("D")
            start, end = now, now + pd.Timedelta(days=2)
        return self._fetch(zone, start, end, self.chosen(signals, forecast=True), forecast=True)
