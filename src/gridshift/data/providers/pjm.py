"""PJM Data Miner 2: locational marginal prices (LMPs) of a pricing node, day-ahead and real-time hourly.

Documentation: PJM, "Data Miner 2 API Guide" (https://www.pjm.com/-/media/etools/data-miner-2/data-miner-2-api-guide.ashx)
and the feed definitions (https://dataminer2.pjm.com/feed/da_hrl_lmps/definition,
https://dataminer2.pjm.com/feed/rt_hrl_lmps/definition). ``GET {base}/{feed}?startRow&rowCount&fields
&pnode_id&datetime_beginning_ept=MM/DD/YYYY HH:mmtoMM/DD/YYYY HH:mm`` with the key in the
``Ocp-Apim-Subscription-Key`` header; the answer is ``{"items": [...], "totalRows", "links": [{"rel",
"href"}]}``, paged here by ``startRow`` (``rowCount`` rows a page) until ``totalRows`` are read. Feeds used:

- ``da_hrl_lmps`` → ``lmp_da_usd_per_mwh`` (``total_lmp_da``): the day-ahead market's hourly LMP;
- ``rt_hrl_lmps`` → ``lmp_rt_usd_per_mwh`` (``total_lmp_rt``): the real-time market's hourly (integrated) LMP.

Rows carry ``datetime_beginning_utc`` (the hour's start, UTC, without an offset) and
``datetime_beginning_ept`` (Eastern Prevailing Time); values are read at the UTC time, so a 23- or 25-hour
local day needs nothing special. The range filter is in EPT and includes its end, so the range asked is the
UTC range converted to New York time, and the hour at the end is dropped (:func:`~.base.clean`). LMPs are in
US dollars per MWh already; they can be negative. Zones are pnode ids (``51217`` is the PJM RTO aggregate;
a table of a few below, others in ``zones``).

**Forecasts**: the day-ahead market clears the day before delivery (results published about 13:30 EPT), so
its LMPs for the rest of today and tomorrow are a forward price the planner can use: ``forecasts`` returns
them for the next 48 hours with the hour they were fetched as their issue time (the feed gives none).
``gridstatus`` is not used: its PJM base URL is a constant, not an option.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from gridshift.data.providers.base import Batch, RangeProvider, clean, frame
from gridshift.data.providers.electricitymaps import pieces
from gridshift.model.time import S_PER_H, as_utc_timestamp

PAGE = 50_000
MAX_RANGE = timedelta(days=365)
EPT = "America/New_York"
FEEDS = {"lmp_da_usd_per_mwh": ("da_hrl_lmps", "total_lmp_da"), "lmp_rt_usd_per_mwh": ("rt_hrl_lmps", "total_lmp_rt")}
NODES = {"PJM": "1", "PJM-RTO": "51217", "PJM-WEST-HUB": "51288", "PJM-EAST-HUB": "4669664",
         "PJM-DOMINION-HUB": "34497127", "PJM-AEP-DAYTON-HUB": "34497151"}


def ept_range(start: Any, end: Any) -> str:
    """``[start, end]`` (UTC) as Data Miner's EPT range filter ``MM/DD/YYYY HH:mmtoMM/DD/YYYY HH:mm``."""
    f = (lambda t: as_utc_timestamp(t).tz_convert(EPT).strftime("%m/%d/%Y %H:%M"))
    return f"{f(start)}to{f(end)}"


class Pjm(RangeProvider):
    name = "pjm"
    default_base_url = "https://api.pjm.com/api/v1"
    key_env = "PJM_API_KEY"
    doc_url = "https://www.pjm.com/-/media/etools/data-miner-2/data-miner-2-api-guide.ashx"
    min_interval_s = 10.0  # PJM API Portal (apiportal.pjm.com): non-members 6 data connections a minute (members 600)
    signals = {"lmp_da_usd_per_mwh": (True, True), "lmp_rt_usd_per_mwh": (True, False)}
    end_inclusive = True  # Data Miner's datetime ranges include their end

    def provider_zone(self, zone: str) -> str:
        return self.config.zones.get(zone, NODES.get(zone, zone))

    def _items(self, feed: str, field: str, zone: str, start: Any, end: Any) -> list[dict]:
        """Every item of ``feed`` for the node and ``[start, end]``, page by page."""
        items: list[dict] = []
        row = 1
        while True:
            params = {"startRow": row, "rowCount": PAGE, "pnode_id": self.provider_zone(zone),
                      "datetime_beginning_ept": ept_range(start, end),
                      "fields": f"datetime_beginning_utc,datetime_beginning_ept,pnode_id,{field}"}
            body = self.get_json(f"/{feed}", params, zone, start, end,
                                 headers={"Ocp-Apim-Subscription-Key": self.key() or ""})
            page = body.get("items") if isinstance(body, dict) else None
            if not isinstance(page, list) or not all(isinstance(r, dict) for r in page):
                raise self.shape_error(zone, start, end, "no list 'items'")
            try:
                total = int(body.get("totalRows", len(page)))
            except (TypeError, ValueError):
                raise self.shape_error(zone, start, end, f"'totalRows' is {body.get('totalRows')!r}") from None
            items += page
            row += len(page)
            if not page or row - 1 >= total:
                return items

    def _fetch(self, zone: str, start: Any, end: Any, want: list[str], issued: Any = None) -> Batch:
        records: list[dict] = []
        for lo, hi in pieces(start, end, MAX_RANGE):
            for sig in want:
                feed, field = FEEDS[sig]
                for r in self._items(feed, field, zone, lo, hi):
                    t = r.get("datetime_beginning_utc")
                    records.append({"signal": sig, "at": f"{t}Z" if isinstance(t, str) and t[-1:].isdigit() else t,
                                    "value": r.get(field), "issue_time": issued})
        return clean(Batch(self.name, zone, frame(records)), start, end, step_s=S_PER_H, forecast=issued is not None)

