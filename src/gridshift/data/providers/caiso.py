"""CAISO OASIS: locational marginal prices (LMPs) of a node, day-ahead hourly and real-time five-minute.

Documentation: CAISO, "Interface Specification for OASIS" (the OASIS API; https://www.caiso.com/library/oasis)
and the OASIS site (http://oasis.caiso.com). ``GET {base}/SingleZip?resultformat=6&queryname&version
&market_run_id&node&startdatetime=yyyymmddThh:mm-0000&enddatetime=…`` (times in GMT; at most 31 days a
request, so longer ranges are asked in pieces; no key) answers with a zip archive holding one CSV file, or,
when the request fails, one XML file whose ``ERR_CODE`` and ``ERR_DESC`` say why (code 1000, "No data
returned for the specified selection", is an empty answer; any other is an error naming it). Queries used:

- ``PRC_LMP``, ``market_run_id=DAM``, ``version=12`` → ``lmp_da_usd_per_mwh`` (hourly);
- ``PRC_INTVL_LMP``, ``market_run_id=RTM``, ``version=3`` → ``lmp_rt_usd_per_mwh`` (five-minute).

The CSV has one row per interval and LMP component: ``INTERVALSTARTTIME_GMT`` (ISO 8601 with offset),
``INTERVALENDTIME_GMT``, ``OPR_DT``, ``OPR_HR``, ``OPR_INTERVAL``, ``NODE_ID_XML``, ``NODE_ID``, ``NODE``,
``MARKET_RUN_ID``, ``LMP_TYPE`` (``LMP`` the total; ``MCE``, ``MCC``, ``MCL``, ``MGHG`` its energy,
congestion, loss and greenhouse-gas parts), ``XML_DATA_ITEM``, ``PNODE_RESMRID``, ``GRP_TYPE``, ``POS``, the
price (``MW`` in ``PRC_LMP``, ``VALUE`` in ``PRC_INTVL_LMP``), ``GROUP``. Only ``LMP`` rows are read, at their
GMT interval start, so the 23- and 25-hour days of Pacific time need nothing special. Prices are US dollars
per MWh already and can be negative. Zones are OASIS node names (``TH_NP15_GEN-APND`` …; a table of the
three trading hubs below).

**Forecasts**: the day-ahead market's results for the next trading day are published the day before
(about 13:00 Pacific), so ``forecasts`` returns the day-ahead LMPs of the next 48 hours with the hour they
were fetched as their issue time. ``gridstatus`` is not used: its OASIS base URL is a constant, not an
option.
"""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
import zipfile
from datetime import timedelta
from typing import Any

from gridshift.data.providers.base import Batch, ProviderError, RangeProvider, clean, frame, where
from gridshift.data.providers.electricitymaps import pieces
from gridshift.model.time import S_PER_H, as_utc_timestamp

MAX_RANGE = timedelta(days=31)
NO_DATA = "1000"
QUERIES = {"lmp_da_usd_per_mwh": ("PRC_LMP", "DAM", "12", S_PER_H),
           "lmp_rt_usd_per_mwh": ("PRC_INTVL_LMP", "RTM", "3", 300)}
PRICE_COLUMNS = ("MW", "VALUE", "PRC")
NODES = {"CAISO-NP15": "TH_NP15_GEN-APND", "CAISO-SP15": "TH_SP15_GEN-APND", "CAISO-ZP26": "TH_ZP26_GEN-APND"}


def _gmt(t: Any) -> str:
    return as_utc_timestamp(t).strftime("%Y%m%dT%H:%M-0000")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


class Caiso(RangeProvider):
    name = "caiso"
    default_base_url = "http://oasis.caiso.com/oasisapi"
    needs_key = False
    doc_url = "https://www.caiso.com/library/oasis"
    min_interval_s = 5.0  # OASIS answers bursts with HTTP 429 and publishes no number: 5 s is a cautious default (min_interval_s)
    signals = {"lmp_da_usd_per_mwh": (True, True), "lmp_rt_usd_per_mwh": (True, False)}

    def provider_zone(self, zone: str) -> str:
        return self.config.zones.get(zone, NODES.get(zone, zone))

    def _csv_rows(self, body: bytes, zone: str, start: Any, end: Any) -> list[dict]:
        """The rows of the CSV in the answer's zip; [] for OASIS's "no data" error, ProviderError for others."""
        try:
            with zipfile.ZipFile(io.BytesIO(body)) as z:
                names = z.namelist()
                if not names:
                    raise self.shape_error(zone, start, end, "an empty zip archive")
                data = z.read(names[0])
        except zipfile.BadZipFile:
            raise ProviderError(f"{where(self.name, zone, start, end)}: malformed answer: not a zip archive") from None
        if names[0].lower().endswith(".xml"):
            try:
                root = ET.fromstring(data)
            except ET.ParseError as e:
                raise self.shape_error(zone, start, end, f"malformed XML error file ({e})") from None
            fields = {_local(el.tag): (el.text or "").strip() for el in root.iter()}
            if fields.get("ERR_CODE") == NO_DATA:
                return []
            raise ProviderError(f"{where(self.name, zone, start, end)}: OASIS error {fields.get('ERR_CODE', '?')}: "
                                f"{fields.get('ERR_DESC', 'no description')}")
        text = data.decode("utf-8-sig", errors="replace")
        reader = csv.DictReader(io.StringIO(text))
        need = {"INTERVALSTARTTIME_GMT", "LMP_TYPE"}
        if reader.fieldnames is None or not need <= set(reader.fieldnames) or \
                not any(c in reader.fieldnames for c in PRICE_COLUMNS):
            raise self.shape_error(zone, start, end, f"CSV without INTERVALSTARTTIME_GMT, LMP_TYPE and a price column "
                                   f"(got {', '.join(reader.fieldnames or [])})")
        return list(reader)

    def _fetch(self, zone: str, start: Any, end: Any, want: list[str], issued: Any = None) -> Batch:
        out = Batch.empty(self.name, zone)
        node = self.provider_zone(zone)
        for sig in want:
            query, market, version, step_s = QUERIES[sig]
            records: list[dict] = []
            for lo, hi in pieces(start, end, MAX_RANGE):
                params = {"resultformat": "6", "queryname": query, "version": version, "market_run_id": market,
                          "node": node, "startdatetime": _gmt(lo), "enddatetime": _gmt(hi)}
                for r in self._csv_rows(self.get("/SingleZip", params, zone, lo, hi), zone, lo, hi):
                    if r.get("LMP_TYPE") != "LMP" or r.get("NODE", node) != node:
                        continue
                    price = next((r[c] for c in PRICE_COLUMNS if r.get(c) not in (None, "")), None)
                    records.append({"signal": sig, "at": r.get("INTERVALSTARTTIME_GMT"), "value": price,
                                    "issue_time": issued})
            out = out.extend(clean(Batch(self.name, zone, frame(records)), start, end, step_s=step_s,
                                   forecast=issued is not None))
        return out

