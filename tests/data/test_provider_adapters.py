"""Each provider adapter against a loopback server serving bodies in the provider's documented shapes
(the documentation page is cited beside each fixture): success, pagination, forecasts with issue times,
unit conversion, unknown zones, daylight-saving days, provider-specific empty answers."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from em_breakdown import breakdown
from gridshift.data import http
from gridshift.data.providers import ProviderConfig, ProviderError, make_provider
from gridshift.data.providers.watttime import LB_PER_MWH_TO_G_PER_KWH
from loopback import Loopback, Reply


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
    kw.setdefault("base_url", server.url)
    kw.setdefault("min_interval_s", 0.0)
    return make_provider(ProviderConfig(name, api_key=kw.pop("api_key", "k"), **kw))


def hours(start: str, n: int, step: str = "1h") -> list[pd.Timestamp]:
    return list(pd.date_range(start, periods=n, freq=step, tz="UTC"))


# ---------------------------------------------------------------- Electricity Maps
# https://static.electricitymaps.com/api/docs/index.html — carbon-intensity/forecast: zone, forecast
# [{carbonIntensity, datetime}], updatedAt; power-breakdown/past-range: zone, data [power-breakdown objects
# (tests/support/em_breakdown.py); per-fuel signals: tests/data/test_provider_breakdown.py]


def test_electricitymaps_forecast_carries_its_issue_time(server):
    server.routes["/carbon-intensity/forecast"] = Reply({
        "zone": "DE", "updatedAt": "2023-06-01T10:05:00.000Z",
        "forecast": [{"carbonIntensity": 250, "datetime": f"2023-06-01T{h:02d}:00:00.000Z"} for h in range(11, 15)]})
    b = provider(server, "electricitymaps", zones={"DE-LU": "DE"}).forecasts("DE-LU", ["carbon_direct_g_per_kwh"])
    assert len(b.rows) == 4 and set(b.rows["signal"]) == {"carbon_direct_g_per_kwh"}
    assert (b.rows["issue_time"] == pd.Timestamp("2023-06-01T10:05Z")).all()
    assert server.seen[0].param("emissionFactorType") == "direct"


def test_electricitymaps_power_breakdown_shares_as_fractions(server):
    row = breakdown("2023-06-01T00:00:00.000Z")  # the documented object, with the per-fuel breakdowns
    assert (row["fossilFreePercentage"], row["renewablePercentage"], row["powerConsumptionTotal"]) == (64, 55, 51234)
    server.routes["/power-breakdown/past-range"] = Reply({"zone": "DE", "data": [row]})
    b = provider(server, "electricitymaps").actuals("DE", datetime(2023, 6, 1, tzinfo=UTC),
                                                    datetime(2023, 6, 1, 1, tzinfo=UTC),
                                                    ["renewable_frac", "clean_frac", "load_mw"])
    got = dict(zip(b.rows["signal"], b.rows["value"]))
    assert got == pytest.approx({"renewable_frac": 0.55, "clean_frac": 0.64, "load_mw": 51234})
    assert server.paths() == ["/power-breakdown/past-range"]  # one request for the three signals


# ---------------------------------------------------------------- WattTime
# https://docs.watttime.org (openapi.json): /login → {"token"}; /v3/historical and /v3/forecast →
# {"data": [{"point_time", "value"}], "meta": {"region", "signal_type", "units", "data_point_period_seconds",
# "model": {"date"}, "generated_at" (forecast)}}; /v3/signal-index → data [{point_time, value}], units percentile


def wt_meta(signal_type="co2_moer", units="lbs_co2_per_mwh", **extra):
    return {"region": "CAISO_NORTH", "signal_type": signal_type, "units": units, "data_point_period_seconds": 300,
            "model": {"date": "2023-03-01"}, **extra}


def test_watttime_logs_in_converts_lbs_per_mwh_and_relogs_after_401(server, monkeypatch):
    monkeypatch.setenv("WATTTIME_USER", "alice")
    server.routes["/login"] = Reply({"token": "tok-1"})
    data = [{"point_time": t.isoformat(), "value": 1000.0} for t in hours("2023-06-01", 3, "5min")]
    server.routes["/v3/historical"] = [Reply({"error": "expired"}, 401), Reply({"data": data, "meta": wt_meta()})]
    p = provider(server, "watttime", api_key="pw")
    b = p.actuals("CAISO_NORTH", datetime(2023, 6, 1, tzinfo=UTC), datetime(2023, 6, 1, 0, 15, tzinfo=UTC),
                  ["moer_g_per_kwh"])
    assert list(b.rows["value"]) == pytest.approx([1000 * LB_PER_MWH_TO_G_PER_KWH] * 3) and b.problems == []
    assert server.paths() == ["/login", "/v3/historical", "/login", "/v3/historical"]
    assert server.seen[0].headers["Authorization"].startswith("Basic ")
    assert server.seen[-1].headers["Authorization"] == "Bearer tok-1"
    assert server.seen[-1].param("signal_type") == "co2_moer"


def test_watttime_forecast_and_health_damage(server, monkeypatch):
    monkeypatch.setenv("WATTTIME_USER", "alice")
    server.routes["/login"] = Reply({"token": "t"})
    data = [{"point_time": t.isoformat(), "value": 12.5} for t in hours("2023-06-01T12:00", 4, "5min")]
    server.routes["/v3/forecast"] = Reply({"data": data, "meta": wt_meta("health_damage", "$_per_mwh",
                                                                         generated_at="2023-06-01T11:58:00+00:00")})
    b = provider(server, "watttime").forecasts("CAISO_NORTH", ["health_damage_usd_per_mwh"])
    assert list(b.rows["value"]) == [12.5] * 4
    assert (b.rows["issue_time"] == pd.Timestamp("2023-06-01T11:58Z")).all()


def test_watttime_unknown_units_are_dropped_with_a_line(server, monkeypatch):
    monkeypatch.setenv("WATTTIME_USER", "alice")
    server.routes["/login"] = Reply({"token": "t"})
    server.routes["/v3/historical"] = Reply({"data": [{"point_time": "2023-06-01T00:00:00+00:00", "value": 3}],
                                             "meta": wt_meta(units="furlongs")})
    b = provider(server, "watttime").actuals("CAISO_NORTH", datetime(2023, 6, 1, tzinfo=UTC),
                                             datetime(2023, 6, 1, 1, tzinfo=UTC), ["moer_g_per_kwh"])
    assert b.rows.empty and "unknown units 'furlongs' for co2_moer" in b.problems[0]
    assert b.problems[0].startswith("watttime: zone CAISO_NORTH, 2023-06-01T00:00Z .. 2023-06-01T01:00Z")


def test_watttime_signal_index(server, monkeypatch):
    monkeypatch.setenv("WATTTIME_USER", "alice")
    server.routes["/login"] = Reply({"token": "t"})
    server.routes["/v3/signal-index"] = Reply({"data": [{"point_time": "2023-06-01T00:05:00+00:00", "value": 37}],
                                               "meta": wt_meta(units="percentile")})
    b = provider(server, "watttime").actuals("CAISO_NORTH", datetime(2023, 6, 1, tzinfo=UTC),
                                             datetime(2023, 6, 1, 1, tzinfo=UTC), ["moer_index_pct"])
    assert list(b.rows["value"]) == [37]


# ---------------------------------------------------------------- GB Carbon Intensity
# https://carbon-intensity.github.io/api-definitions/ — /intensity/{from}/{to} and /intensity/{from}/fw48h:
# {"data": [{"from", "to", "intensity": {"forecast", "actual", "index"}}]};
# /regional/intensity/{from}/fw48h/regionid/{id}: {"data": {"regionid", "dnoregion", "shortname",
# "data": [{"from", "to", "intensity": {"forecast", "index"}, "generationmix": [{"fuel", "perc"}]}]}}


def gb_rows(start: str, n: int, actual=True):
    out = []
    for i, t in enumerate(hours(start, n, "30min")):
        out.append({"from": t.strftime("%Y-%m-%dT%H:%MZ"), "to": (t + pd.Timedelta("30min")).strftime("%Y-%m-%dT%H:%MZ"),
                    "intensity": {"forecast": 200 + i, "actual": 190 + i if actual else None, "index": "moderate"}})
    return out


def test_gb_national_actuals_across_the_spring_dst_day(server):
    # the UK local day of 2023-03-26 has 23 hours: 00:00 GMT to 00:00 BST is 46 half hours in UTC
    server.routes["/intensity/2023-03-26T00:00Z/2023-03-26T23:00Z"] = Reply({"data": gb_rows("2023-03-26", 46)})
    b = provider(server, "gb-carbon-intensity", zones={"GB": "national"}).actuals(
        "GB", datetime(2023, 3, 26, tzinfo=UTC), datetime(2023, 3, 26, 23, tzinfo=UTC),
        ["carbon_direct_g_per_kwh", "carbon_index"])
    assert b.problems == []
    ci = b.rows[b.rows["signal"] == "carbon_direct_g_per_kwh"]
    assert len(ci) == 46 and ci["value"].iloc[0] == 190
    assert set(b.rows.loc[b.rows["signal"] == "carbon_index", "value"]) == {2}


def test_gb_null_actuals_are_dropped_and_reported(server):
    rows = gb_rows("2023-06-01", 4)
    rows[2]["intensity"]["actual"] = None
    server.routes["/intensity/2023-06-01T00:00Z/2023-06-01T02:00Z"] = Reply({"data": rows})
    b = provider(server, "gb-carbon-intensity").actuals("GB", datetime(2023, 6, 1, tzinfo=UTC),
                                                        datetime(2023, 6, 1, 2, tzinfo=UTC), ["carbon_direct_g_per_kwh"])
    assert len(b.rows) == 3 and any("not a finite number" in p for p in b.problems)
    assert any("1 of 4 slot(s) missing (first 2023-06-01T01:00Z)" in p for p in b.problems)


def test_gb_regional_forecast(server):
    body = {"data": {"regionid": 13, "dnoregion": "UKPN London", "shortname": "London",
                     "data": [{**r, "generationmix": [{"fuel": "wind", "perc": 40.1}]} for r in gb_rows("2023-06-01T12:00", 96, actual=False)]}}
    server.routes["/regional/intensity/2023-06-01T12:00Z/fw48h/regionid/13"] = Reply(body)
    b = provider(server, "gb-carbon-intensity", zones={"GB-LONDON": "13"}).forecasts(
        "GB-LONDON", ["carbon_direct_g_per_kwh"], datetime(2023, 6, 1, 12, tzinfo=UTC))
    assert len(b.rows) == 96 and b.rows["value"].iloc[0] == 200 and b.rows["issue_time"].notna().all()


# ---------------------------------------------------------------- ENTSO-E
# https://transparency.entsoe.eu/content/static_content/Static%20content/web%20api/Guide.html —
# GL_MarketDocument / Publication_MarketDocument: TimeSeries (MktPSRType/psrType, curveType,
# quantity_Measure_Unit.name) / Period (timeInterval start end, resolution, Point position quantity |
# price.amount); Acknowledgement_MarketDocument with Reason code 999 when nothing matches.

NS_GL = "urn:iec62325.351:tc57wg16:451-6:generationloaddocument:3:0"
NS_PUB = "urn:iec62325.351:tc57wg16:451-3:publicationdocument:7:3"


def gl_doc(series: list[str], created="2023-03-25T10:00:00Z") -> str:
    return (f'<?xml version="1.0" encoding="UTF-8"?><GL_MarketDocument xmlns="{NS_GL}"><mRID>x</mRID>'
            f"<revisionNumber>1</revisionNumber><type>A65</type><createdDateTime>{created}</createdDateTime>"
            + "".join(series) + "</GL_MarketDocument>")


def series(start, end, values, res="PT60M", psr=None, curve="A01", domain="outBiddingZone_Domain.mRID",
           tag="quantity", positions=None):
    psr_el = f"<MktPSRType><psrType>{psr}</psrType></MktPSRType>" if psr else ""
    pos = positions or range(1, len(values) + 1)
    pts = "".join(f"<Point><position>{p}</position><{tag}>{v}</{tag}></Point>" for p, v in zip(pos, values))
    return (f'<TimeSeries><mRID>1</mRID><businessType>A04</businessType><{domain} codingScheme="A01">'
            f"10Y1001A1001A82H</{domain}><quantity_Measure_Unit.name>MAW</quantity_Measure_Unit.name>"
            f"<curveType>{curve}</curveType>{psr_el}<Period><timeInterval><start>{start}</start><end>{end}</end>"
            f"</timeInterval><resolution>{res}</resolution>{pts}</Period></TimeSeries>")


@pytest.mark.parametrize(("day_start", "day_end", "n"), [("2023-03-25T23:00Z", "2023-03-26T22:00Z", 23),
                                                         ("2023-10-28T22:00Z", "2023-10-29T23:00Z", 25)])
def test_entsoe_load_on_dst_days_has_23_and_25_hours(server, day_start, day_end, n):
    """The local (CET/CEST) day of a DST change is 23 or 25 hours long; every hour arrives, once."""
    server.routes["/api"] = Reply(gl_doc([series(day_start, day_end, [40000 + i for i in range(4 * n)], "PT15M")]))
    p = provider(server, "entsoe", base_url=server.url + "/api")
    b = p.actuals("DE-LU", pd.Timestamp(day_start), pd.Timestamp(day_end), ["load_mw"])
    assert b.problems == [] and len(b.rows) == n
    assert b.rows["value"].iloc[0] == pytest.approx(40001.5)  # the four quarter hours' mean
    s = server.seen[0]
    assert s.param("documentType") == "A65" and s.param("processType") == "A16"
    assert s.param("outBiddingZone_Domain") == "10Y1001A1001A82H"
    assert s.param("periodStart") == pd.Timestamp(day_start).strftime("%Y%m%d%H%M")


def test_entsoe_a03_curve_repeats_left_out_positions(server):
    xml = gl_doc([series("2023-06-01T00:00Z", "2023-06-01T04:00Z", [10, 20], curve="A03", positions=[1, 3])])
    server.routes["/api"] = Reply(xml)
    b = provider(server, "entsoe", base_url=server.url + "/api").actuals(
        "DE-LU", datetime(2023, 6, 1, tzinfo=UTC), datetime(2023, 6, 1, 4, tzinfo=UTC), ["load_mw"])
    assert list(b.rows["value"]) == [10, 10, 20, 20] and b.problems == []


def test_entsoe_wind_solar_forecast_sums_offshore_and_onshore(server):
    xml = gl_doc([series("2023-06-01T00:00Z", "2023-06-01T02:00Z", [100, 110], psr="B18", domain="inBiddingZone_Domain.mRID"),
                  series("2023-06-01T00:00Z", "2023-06-01T02:00Z", [1000, 1100], psr="B19", domain="inBiddingZone_Domain.mRID"),
                  series("2023-06-01T00:00Z", "2023-06-01T02:00Z", [5, 7], psr="B16", domain="inBiddingZone_Domain.mRID")],
                 created="2023-05-31T17:45:00Z")
    server.routes["/api"] = Reply(xml)
    b = provider(server, "entsoe", base_url=server.url + "/api").forecasts(
        "DE-LU", ["wind_forecast_mw", "solar_forecast_mw"], datetime(2023, 6, 1, tzinfo=UTC), datetime(2023, 6, 1, 2, tzinfo=UTC))
    wind = b.rows[b.rows["signal"] == "wind_forecast_mw"]
    assert list(wind["value"]) == [1100, 1210]
    assert list(b.rows.loc[b.rows["signal"] == "solar_forecast_mw", "value"]) == [5, 7]
    assert (b.rows["issue_time"] == pd.Timestamp("2023-05-31T17:45Z")).all()


def test_entsoe_prices_and_generation_by_type(server):
    prices = (f'<Publication_MarketDocument xmlns="{NS_PUB}"><type>A44</type>'
              + series("2023-06-01T00:00Z", "2023-06-01T02:00Z", [-5.2, 80.1], tag="price.amount",
                       domain="in_Domain.mRID") + "</Publication_MarketDocument>")
    gen = gl_doc([series("2023-06-01T00:00Z", "2023-06-01T02:00Z", [300, 310], psr="B14", domain="inBiddingZone_Domain.mRID"),
                  series("2023-06-01T00:00Z", "2023-06-01T02:00Z", [50, 60], psr="B10", domain="inBiddingZone_Domain.mRID"),
                  series("2023-06-01T00:00Z", "2023-06-01T02:00Z", [70, 80], psr="B10", domain="outBiddingZone_Domain.mRID")])
    server.routes["/api"] = lambda seen: Reply(prices if seen.param("documentType") == "A44" else gen)
    b = provider(server, "entsoe", base_url=server.url + "/api").actuals(
        "DE-LU", datetime(2023, 6, 1, tzinfo=UTC), datetime(2023, 6, 1, 2, tzinfo=UTC),
        ["price_eur_per_mwh", "generation_nuclear_mw", "generation_hydro_pumped_mw"])
    got = b.rows.groupby("signal")["value"].apply(list).to_dict()
    assert got == {"price_eur_per_mwh": [-5.2, 80.1], "generation_nuclear_mw": [300, 310],
                   "generation_hydro_pumped_mw": [50, 60]}  # pumping (out of the zone) is not generation


def test_entsoe_no_matching_data_is_empty_and_other_reasons_fail(server):
    ack = ('<Acknowledgement_MarketDocument xmlns="urn:iec62325.351:tc57wg16:451-1:acknowledgementdocument:7:0">'
           "<Reason><code>{code}</code><text>{text}</text></Reason></Acknowledgement_MarketDocument>")
    server.routes["/api"] = Reply(ack.format(code="999", text="No matching data found"))
    p = provider(server, "entsoe", base_url=server.url + "/api")
    t0, t1 = datetime(2023, 6, 1, tzinfo=UTC), datetime(2023, 6, 2, tzinfo=UTC)
    b = p.actuals("DE-LU", t0, t1, ["load_mw"])
    assert b.rows.empty and "no matching data (A65)" in b.problems[0]
    server.routes["/api"] = Reply(ack.format(code="B11", text="Too many documents"))
    with pytest.raises(ProviderError, match="zone DE-LU, .*reason B11: Too many documents"):
        p.actuals("DE-LU", t0, t1, ["load_mw"])
    server.routes["/api"] = Reply("<GL_MarketDocument><unclosed>")
    with pytest.raises(ProviderError, match="malformed XML"):
        p.actuals("DE-LU", t0, t1, ["load_mw"])


def test_entsoe_unknown_zone_before_any_request(server):
    with pytest.raises(ProviderError, match="zone Atlantis: unknown zone"):
        provider(server, "entsoe").actuals("Atlantis", datetime(2023, 6, 1, tzinfo=UTC),
                                           datetime(2023, 6, 2, tzinfo=UTC), ["load_mw"])
    assert server.seen == []


# ---------------------------------------------------------------- EIA
# https://www.eia.gov/opendata/documentation.php — API v2 answers {"response": {"total", "dateFormat",
# "frequency", "data": [{"period", "respondent", "respondent-name", "type", "type-name", "value",
# "value-units"}]}}; at most 5,000 rows per answer, paged with offset and length.


def eia_rows(start: str, n: int, type_="D"):
    return [{"period": t.strftime("%Y-%m-%dT%H"), "respondent": "CISO", "respondent-name": "California Independent "
             "System Operator", "type": type_, "type-name": "Demand", "value": 20000 + i, "value-units": "megawatthours"}
            for i, t in enumerate(hours(start, n))]


def test_eia_pages_through_offsets_and_stores_hour_starts(server, monkeypatch):
    monkeypatch.setattr("gridshift.data.providers.eia.PAGE", 3)
    rows = eia_rows("2023-06-01T01", 7)  # hours ending 01:00 … 07:00

    def page(seen):
        off = int(seen.param("offset"))
        return Reply({"response": {"total": "7", "dateFormat": "YYYY-MM-DD\"T\"HH24", "frequency": "hourly",
                                   "data": rows[off:off + 3]}})
    server.routes["/electricity/rto/region-data/data/"] = page
    b = provider(server, "eia").actuals("CISO", datetime(2023, 6, 1, tzinfo=UTC), datetime(2023, 6, 1, 7, tzinfo=UTC),
                                        ["load_mw"])
    assert [s.param("offset") for s in server.seen] == ["0", "3", "6"]
    assert b.problems == [] and len(b.rows) == 7
    assert b.rows["at"].iloc[0] == pd.Timestamp("2023-06-01T00:00Z") and b.rows["value"].iloc[0] == 20000
    s = server.seen[0]
    assert s.param("facets[respondent][]") == "CISO" and s.param("facets[type][]") == "D"
    assert s.param("start") == "2023-06-01T01" and s.param("end") == "2023-06-01T07"


def test_eia_duplicated_and_missing_hours(server):
    rows = eia_rows("2023-06-01T01", 4)
    rows.append(dict(rows[1], value=1.0))  # the same hour twice, different values
    del rows[3]
    server.routes["/electricity/rto/region-data/data/"] = Reply({"response": {"total": len(rows), "data": rows}})
    b = provider(server, "eia").actuals("CISO", datetime(2023, 6, 1, tzinfo=UTC), datetime(2023, 6, 1, 4, tzinfo=UTC),
                                        ["load_mw"])
    assert list(b.rows["value"]) == [20000, 20002]
    assert any("given twice with different values" in p for p in b.problems)
    assert any("2 of 4 slot(s) missing" in p for p in b.problems)


def test_eia_fuel_mix_and_demand_forecast(server):
    fuel = [{"period": "2023-06-01T01", "respondent": "CISO", "respondent-name": "x", "fueltype": f,
             "type-name": n, "value": v, "value-units": "megawatthours"} for f, n, v in
            (("SUN", "Solar", 9000), ("WND", "Wind", 3000), ("NG", "Natural Gas", 8000))]
    server.routes["/electricity/rto/fuel-type-data/data/"] = Reply({"response": {"total": 3, "data": fuel}})
    b = provider(server, "eia").actuals("CISO", datetime(2023, 6, 1, tzinfo=UTC), datetime(2023, 6, 1, 1, tzinfo=UTC),
                                        ["generation_solar_mw", "generation_wind_mw"])
    assert dict(zip(b.rows["signal"], b.rows["value"])) == {"generation_solar_mw": 9000, "generation_wind_mw": 3000}
    server.routes["/electricity/rto/region-data/data/"] = Reply({"response": {"total": 2, "data": eia_rows("2023-06-02T01", 2, "DF")}})
    f = provider(server, "eia").forecasts("CISO", ["load_forecast_mw"], datetime(2023, 6, 2, tzinfo=UTC),
                                          datetime(2023, 6, 2, 2, tzinfo=UTC))
    assert len(f.rows) == 2 and f.rows["issue_time"].notna().all()
    assert server.seen[-1].param("facets[type][]") == "DF"


def test_eia_malformed_total(server):
    server.routes["/electricity/rto/region-data/data/"] = Reply({"response": {"total": "many", "data": []}})
    with pytest.raises(ProviderError, match="'response.total' is 'many'"):
        provider(server, "eia").actuals("CISO", datetime(2023, 6, 1, tzinfo=UTC), datetime(2023, 6, 1, 4, tzinfo=UTC),
                                        ["load_mw"])


def test_watttime_past_forecasts_keep_each_issue_time(server, monkeypatch):
    # https://docs.watttime.org — /v3/forecast/historical: {"data": [{"generated_at", "forecast": [{"point_time",
    # "value"}]}], "meta": {...}}
    monkeypatch.setenv("WATTTIME_USER", "alice")
    server.routes["/login"] = Reply({"token": "t"})

    def day(seen):
        lo = pd.Timestamp(seen.param("start"))
        issued = [lo + pd.Timedelta(hours=h) for h in (0, 12)]
        return Reply({"data": [{"generated_at": g.isoformat(), "forecast": [
            {"point_time": (g + pd.Timedelta(minutes=5 * i)).isoformat(), "value": 900.0 + i} for i in range(3)]}
            for g in issued] + [{"generated_at": lo.isoformat()}],  # a broken entry
            "meta": wt_meta(data_point_period_seconds=300)})
    server.routes["/v3/forecast/historical"] = day
    b = provider(server, "watttime").past_forecasts("CAISO_NORTH", datetime(2023, 6, 1, tzinfo=UTC),
                                                    datetime(2023, 6, 3, tzinfo=UTC), ["moer_g_per_kwh"])
    assert [s.param("start") for s in server.seen if s.path.endswith("historical")] == [
        "2023-06-01T00:00:00Z", "2023-06-02T00:00:00Z"]  # a day at a time
    assert b.rows["issue_time"].nunique() == 4 and len(b.rows) == 12
    assert b.rows["value"].iloc[0] == pytest.approx(900 * LB_PER_MWH_TO_G_PER_KWH)
    assert sum("without a 'forecast' list" in p for p in b.problems) == 2


def test_a_provider_without_past_forecasts_says_so(server):
    with pytest.raises(ProviderError, match="electricitymaps: zone DE, .*offers no past forecasts"):
        provider(server, "electricitymaps").past_forecasts("DE", datetime(2023, 6, 1, tzinfo=UTC),
                                                           datetime(2023, 6, 2, tzinfo=UTC))


def test_electricitymaps_latest(server):
    # https://static.electricitymaps.com/api/docs/index.html — carbon-intensity/latest and power-breakdown/latest
    server.routes["/carbon-intensity/latest"] = Reply({
        "zone": "DE", "carbonIntensity": 302, "datetime": "2023-06-01T10:00:00.000Z",
        "updatedAt": "2023-06-01T10:45:00.000Z", "createdAt": "2023-06-01T07:00:00.000Z",
        "emissionFactorType": "lifecycle", "isEstimated": True, "estimationMethod": "TIME_SLICER_AVERAGE"})
    server.routes["/power-breakdown/latest"] = Reply({
        "zone": "DE", "datetime": "2023-06-01T10:00:00.000Z", "updatedAt": "2023-06-01T10:45:00.000Z",
        "createdAt": "2023-06-01T07:00:00.000Z", "fossilFreePercentage": 70, "renewablePercentage": 61,
        "powerConsumptionTotal": 60000, "isEstimated": True, "estimationMethod": "TIME_SLICER_AVERAGE"})
    b = provider(server, "electricitymaps").latest("DE", ["carbon_lifecycle_g_per_kwh", "renewable_frac"])
    assert dict(zip(b.rows["signal"], b.rows["value"])) == pytest.approx(
        {"carbon_lifecycle_g_per_kwh": 302, "renewable_frac": 0.61})
    assert (b.rows["at"] == pd.Timestamp("2023-06-01T10:00Z")).all()


def test_default_latest_is_the_last_actual(server):
    now = pd.Timestamp.now(tz="UTC").floor("h")
    rows = [{"from": (now - pd.Timedelta(minutes=30 * k)).strftime("%Y-%m-%dT%H:%MZ"),
             "to": (now - pd.Timedelta(minutes=30 * (k - 1))).strftime("%Y-%m-%dT%H:%MZ"),
             "intensity": {"forecast": 100 + k, "actual": 100 + k, "index": "low"}} for k in (3, 2, 1)]
    server.routes = type("R", (dict,), {"get": lambda self, p, d=None: Reply({"data": rows})
                                        if p.startswith("/intensity/") else d})()
    b = provider(server, "gb-carbon-intensity").latest("GB", ["carbon_direct_g_per_kwh"])
    assert list(b.rows["value"]) == [101] and b.rows["at"].iloc[0] == now - pd.Timedelta(minutes=30)


def test_entsoe_series_in_other_units_are_dropped_with_a_line(server):
    xml = gl_doc([series("2023-06-01T00:00Z", "2023-06-01T02:00Z", [1, 2]).replace("<quantity_Measure_Unit.name>MAW",
                                                                                    "<quantity_Measure_Unit.name>MWH"),
                  series("2023-06-01T00:00Z", "2023-06-01T02:00Z", [3, 4], res="PT7M")])
    server.routes["/api"] = Reply(xml)
    b = provider(server, "entsoe", base_url=server.url + "/api").actuals(
        "DE-LU", datetime(2023, 6, 1, tzinfo=UTC), datetime(2023, 6, 1, 2, tzinfo=UTC), ["load_mw"])
    assert b.rows.empty
    text = "\n".join(b.problems)
    assert "1 dropped: a series in MWH (expected MAW)" in text and "resolution 'PT7M' not understood" in text
    prices = (f'<Publication_MarketDocument xmlns="{NS_PUB}"><type>A44</type>'
              + series("2023-06-01T00:00Z", "2023-06-01T02:00Z", [5, 6], tag="price.amount", domain="in_Domain.mRID")
              .replace("<curveType>", "<currency_Unit.name>PLN</currency_Unit.name><price_Measure_Unit.name>MWH"
                                      "</price_Measure_Unit.name><curveType>") + "</Publication_MarketDocument>")
    server.routes["/api"] = Reply(prices)
    b = provider(server, "entsoe", base_url=server.url + "/api").actuals(
        "DE-LU", datetime(2023, 6, 1, tzinfo=UTC), datetime(2023, 6, 1, 2, tzinfo=UTC), ["price_eur_per_mwh"])
    assert b.rows.empty and "a series in PLN (expected EUR per MWH)" in b.problems[0]
