"""ISO LMPs: the PJM Data Miner 2 and CAISO OASIS adapters against a loopback server serving their documented
shapes — PJM, "Data Miner 2 API Guide" (https://www.pjm.com/-/media/etools/data-miner-2/data-miner-2-api-guide.ashx)
and the da_hrl_lmps / rt_hrl_lmps feed definitions (https://dataminer2.pjm.com/feed/da_hrl_lmps/definition):
{"items": [{datetime_beginning_utc, datetime_beginning_ept, pnode_id, total_lmp_da …}], "totalRows", "links"};
CAISO, "Interface Specification for OASIS" (https://www.caiso.com/library/oasis): SingleZip answers a zip
holding one CSV (INTERVALSTARTTIME_GMT, INTERVALENDTIME_GMT, OPR_DT, OPR_HR, OPR_INTERVAL, NODE_ID_XML, NODE_ID,
NODE, MARKET_RUN_ID, LMP_TYPE, XML_DATA_ITEM, PNODE_RESMRID, GRP_TYPE, POS, MW | VALUE, GROUP) or an XML file
with ERR_CODE and ERR_DESC. Prices in USD/MWh at UTC times, paging, daylight-saving days, "no data" answers,
forecasts from the day-ahead market with their issue time. The failure matrix (401, 429, 5xx, timeouts,
malformed bodies, duplicated and missing hours) is in tests/data/test_provider_matrix.py."""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import UTC, datetime

import pandas as pd
import pytest

from gridshift.data import http
from gridshift.data.providers import ProviderConfig, ProviderError, make_provider
from gridshift.service.provider_pull import parse_planning, planning_target
from loopback import Loopback, Reply

OASIS_COLUMNS = ["INTERVALSTARTTIME_GMT", "INTERVALENDTIME_GMT", "OPR_DT", "OPR_HR", "OPR_INTERVAL", "NODE_ID_XML",
                 "NODE_ID", "NODE", "MARKET_RUN_ID", "LMP_TYPE", "XML_DATA_ITEM", "PNODE_RESMRID", "GRP_TYPE", "POS",
                 "MW", "GROUP"]


def oasis_zip(pts, node: str = "TH_NP15_GEN-APND", market: str = "DAM", price_column: str = "MW",
              step: str = "1h") -> bytes:
    """A SingleZip answer: one CSV with the LMP and its energy part for each (UTC time, value)."""
    out = io.StringIO()
    cols = [price_column if c == "MW" else c for c in OASIS_COLUMNS]
    w = csv.DictWriter(out, cols)
    w.writeheader()
    for t, v in pts:
        local = t.tz_convert("America/Los_Angeles")
        for kind, value in (("LMP", v), ("MCE", v - 2.0)):
            w.writerow({"INTERVALSTARTTIME_GMT": t.strftime("%Y-%m-%dT%H:%M:%S-00:00"),
                        "INTERVALENDTIME_GMT": (t + pd.Timedelta(step)).strftime("%Y-%m-%dT%H:%M:%S-00:00"),
                        "OPR_DT": local.strftime("%Y-%m-%d"), "OPR_HR": local.hour + 1, "OPR_INTERVAL": 0,
                        "NODE_ID_XML": node, "NODE_ID": node, "NODE": node, "MARKET_RUN_ID": market,
                        "LMP_TYPE": kind, "XML_DATA_ITEM": f"LMP_{'PRC' if kind == 'LMP' else kind}_PRC",
                        "PNODE_RESMRID": node, "GRP_TYPE": "ALL_APNODES", "POS": 0, price_column: value, "GROUP": 1})
    return _zip("20230601_20230602_PRC_LMP_DAM_20230602_01_01_v12.csv", out.getvalue())


def oasis_error(code: str, desc: str) -> bytes:
    xml = ('<?xml version="1.0" encoding="UTF-8"?><m:OASISReport xmlns:m="http://www.caiso.com/soa/OASISReport_v1.xsd">'
           "<m:MessagePayload><m:RTO><m:ERROR><m:ERR_CODE>" + code + "</m:ERR_CODE><m:ERR_DESC>" + desc +
           "</m:ERR_DESC></m:ERROR></m:RTO></m:MessagePayload></m:OASISReport>")
    return _zip("INVALID_REQUEST.xml", xml)


def _zip(name: str, text: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(name, text)
    return buf.getvalue()


@pytest.fixture(autouse=True)
def waits(monkeypatch):
    w: list[float] = []
    monkeypatch.setattr(http, "_sleep", w.append)
    return w


@pytest.fixture
def server():
    with Loopback() as s:
        yield s


def provider(server, name, **kw):
    return make_provider(ProviderConfig(name, base_url=server.url, api_key="k", min_interval_s=0.0, **kw))


def pjm_items(times, field="total_lmp_da", start=30.0):
    return [{"datetime_beginning_utc": t.strftime("%Y-%m-%dT%H:%M:%S"),
             "datetime_beginning_ept": t.tz_convert("America/New_York").strftime("%Y-%m-%dT%H:%M:%S"),
             "pnode_id": 51217, field: start + i} for i, t in enumerate(times)]


def test_pjm_pages_by_start_row_and_reads_utc_hours_in_usd_per_mwh(server, monkeypatch):
    from gridshift.data.providers import pjm

    monkeypatch.setattr(pjm, "PAGE", 3)
    times = pd.date_range("2023-06-01T04:00Z", periods=5, freq="h")
    items = pjm_items(times)
    items[2]["total_lmp_da"] = -12.5  # LMPs can be negative

    def route(seen):
        first = int(seen.param("startRow")) - 1
        return Reply({"items": items[first:first + 3], "totalRows": len(items), "links": []})

    server.routes["/da_hrl_lmps"] = route
    p = provider(server, "pjm", zones={"PJM-RTO": "51217"})
    b = p.actuals("PJM-RTO", datetime(2023, 6, 1, 4, tzinfo=UTC), datetime(2023, 6, 1, 9, tzinfo=UTC),
                  ["lmp_da_usd_per_mwh"])
    assert list(b.rows["at"]) == list(times) and list(b.rows["value"]) == [30.0, 31.0, -12.5, 33.0, 34.0]
    assert [s.param("startRow") for s in server.seen] == ["1", "4"]
    first = server.seen[0]
    assert first.param("pnode_id") == "51217" and first.headers.get("Ocp-Apim-Subscription-Key") == "k"
    assert first.param("datetime_beginning_ept") == "06/01/2023 00:00to06/01/2023 05:00"  # EDT = UTC - 4
    assert b.problems == []


def test_pjm_a_25_hour_local_day_is_read_at_its_utc_hours(server):
    times = pd.date_range("2023-11-05T04:00Z", periods=25, freq="h")  # EPT 00:00 .. 23:00, 01:00 twice
    server.routes["/rt_hrl_lmps"] = Reply({"items": pjm_items(times, "total_lmp_rt"), "totalRows": 25, "links": []})
    b = provider(server, "pjm").actuals("51217", times[0].to_pydatetime(), (times[-1] + pd.Timedelta("1h")).to_pydatetime(),
                                        ["lmp_rt_usd_per_mwh"])
    assert len(b.rows) == 25 and b.rows["at"].is_unique and b.problems == []
    assert server.seen[0].param("datetime_beginning_ept") == "11/05/2023 00:00to11/06/2023 00:00"


def test_pjm_day_ahead_lmps_are_a_forecast_with_an_issue_time(server, monkeypatch):

    monkeypatch.setattr("gridshift.data.providers.base.utcnow", lambda: datetime(2023, 6, 1, 18, 20, tzinfo=UTC))
    times = pd.date_range("2023-06-01T18:00Z", periods=49, freq="h")  # the end hour comes too (inclusive)
    server.routes["/da_hrl_lmps"] = Reply({"items": pjm_items(times), "totalRows": 49, "links": []})
    b = provider(server, "pjm").forecasts("51217", ["lmp_da_usd_per_mwh"])
    assert len(b.rows) == 48 and (b.rows["issue_time"] == pd.Timestamp("2023-06-01T18:00Z")).all()
    n = len(server.seen)
    assert provider(server, "pjm").forecasts("51217", ["lmp_rt_usd_per_mwh"]).rows.empty  # real time: no forecast
    assert len(server.seen) == n


def test_caiso_reads_the_lmp_rows_of_the_zip_in_utc(server):
    times = pd.date_range("2023-06-01T07:00Z", periods=4, freq="h")
    server.routes["/SingleZip"] = Reply(oasis_zip([(t, 40.0 + i) for i, t in enumerate(times)]))
    b = provider(server, "caiso").actuals("CAISO-NP15", times[0].to_pydatetime(),
                                          (times[-1] + pd.Timedelta("1h")).to_pydatetime(), ["lmp_da_usd_per_mwh"])
    assert list(b.rows["value"]) == [40.0, 41.0, 42.0, 43.0] and list(b.rows["at"]) == list(times)  # MCE rows skipped
    q = server.seen[0]
    assert (q.param("queryname"), q.param("market_run_id"), q.param("version")) == ("PRC_LMP", "DAM", "12")
    assert q.param("node") == "TH_NP15_GEN-APND" and q.param("startdatetime") == "20230601T07:00-0000"
    assert "api_key" not in {k for k, _ in q.query}


def test_caiso_real_time_five_minute_and_a_23_hour_day_in_31_day_pieces(server):
    spring = pd.date_range("2023-03-12T08:00Z", periods=12, freq="5min")  # the day Pacific time skips 02:00
    server.routes["/SingleZip"] = Reply(oasis_zip([(t, 20.0) for t in spring], market="RTM", price_column="VALUE",
                                                  step="5min"))
    b = provider(server, "caiso").actuals("TH_NP15_GEN-APND", spring[0].to_pydatetime(),
                                          (spring[-1] + pd.Timedelta("5min")).to_pydatetime(), ["lmp_rt_usd_per_mwh"])
    assert len(b.rows) == 12 and b.problems == []
    assert server.seen[0].param("queryname") == "PRC_INTVL_LMP"
    server.seen.clear()
    provider(server, "caiso").actuals("TH_NP15_GEN-APND", datetime(2023, 1, 1, tzinfo=UTC),
                                      datetime(2023, 3, 1, tzinfo=UTC), ["lmp_da_usd_per_mwh"])
    assert [s.param("startdatetime") for s in server.seen] == ["20230101T00:00-0000", "20230201T00:00-0000"]


def test_caiso_no_data_is_empty_and_other_oasis_errors_are_one_line(server):
    server.routes["/SingleZip"] = Reply(oasis_error("1000", "No data returned for the specified selection"))
    t0, t1 = datetime(2023, 6, 1, tzinfo=UTC), datetime(2023, 6, 1, 4, tzinfo=UTC)
    assert provider(server, "caiso").actuals("CAISO-SP15", t0, t1, ["lmp_da_usd_per_mwh"]).rows.empty
    server.routes["/SingleZip"] = Reply(oasis_error("1015", "The requested time range exceeds the limit"))
    with pytest.raises(ProviderError) as e:
        provider(server, "caiso").actuals("CAISO-SP15", t0, t1, ["lmp_da_usd_per_mwh"])
    assert str(e.value) == ("caiso: zone CAISO-SP15, 2023-06-01T00:00Z .. 2023-06-01T04:00Z: OASIS error 1015: "
                            "The requested time range exceeds the limit")
    server.routes["/SingleZip"] = Reply(_zip("x.csv", "A,B\n1,2\n"))
    with pytest.raises(ProviderError, match="unexpected answer: CSV without INTERVALSTARTTIME_GMT"):
        provider(server, "caiso").actuals("CAISO-SP15", t0, t1, ["lmp_da_usd_per_mwh"])


def test_an_lmp_can_drive_the_planners_price():
    assert planning_target("lmp_da_usd_per_mwh") == planning_target("lmp_rt_usd_per_mwh") == "price_usd_per_mwh"
    assert parse_planning({"planning": {"PJM-RTO": "pjm/lmp_da_usd_per_mwh"}}, "f.yaml") == {
        "PJM-RTO": ("pjm", "lmp_da_usd_per_mwh")}


def test_a_pulled_day_ahead_lmp_drives_the_planners_price_and_its_forecast(tmp_path):
    """Through the provider clock's pull: the LMP is stored as itself and as the planner's price, the day-ahead
    hours ahead are kept as an issued forecast, and the live planner's forecast choice takes them for price."""
    from gridshift.service.db import upgrade
    from gridshift.service.provider_forecasts import ProviderForecasts
    from gridshift.service.provider_pull import ProviderPuller
    from gridshift.service.store import Store

    now = pd.Timestamp.now(tz="UTC").floor("h").to_pydatetime()

    def route(seen):
        lo, hi = (pd.Timestamp(x, tz="America/New_York").tz_convert("UTC")
                  for x in seen.param("datetime_beginning_ept").split("to"))
        times = pd.date_range(lo, hi, freq="h")  # the end is included, as Data Miner does
        return Reply({"items": pjm_items(times, start=20.0), "totalRows": len(times), "links": []})

    url = f"sqlite:///{tmp_path / 's.db'}"
    upgrade(url)
    with Loopback() as server, Store(url) as store:
        server.routes["/da_hrl_lmps"] = route
        cfg = ProviderConfig("pjm", base_url=server.url, api_key="k", zones={"PJM-RTO": "51217"},
                             signals=("lmp_da_usd_per_mwh",), min_interval_s=0.0)
        p = ProviderPuller([cfg], {"PJM-RTO": ("pjm", "lmp_da_usd_per_mwh")}, tmp_path / "fc")
        p.pull(store, "pjm", now)
        price = store.signals_between("PJM-RTO", "price_usd_per_mwh", now - pd.Timedelta(hours=7), now)
        choice = ProviderForecasts(p, "fresh").choose(now)["PJM-RTO"]
    assert len(price) == 6 and {x.source for x in price} == {"pjm/lmp_da_usd_per_mwh"}
    assert choice.signal == "price_usd_per_mwh" and choice.source == "provider" and len(choice.table) == 48
