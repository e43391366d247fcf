"""Every adapter through the same failure cases against a loopback server: success, 401, 429 with
Retry-After, 5xx with backoff, a timeout, a malformed body, an unknown zone, duplicated and missing hours.
Each answer is one line naming the provider, the zone and the time range; bad rows are dropped, never kept.

Success bodies are the providers' documented shapes (see tests/data/test_provider_adapters.py for the pages):
Electricity Maps v3 past-range, WattTime v3 historical, GB Carbon Intensity /intensity/{from}/{to}, ENTSO-E
GL_MarketDocument (A65), EIA v2 region-data, PJM Data Miner 2 da_hrl_lmps, CAISO OASIS PRC_LMP (a zip holding
a CSV)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd
import pytest

from gridshift.data import http
from gridshift.data.providers import ProviderConfig, ProviderError, make_provider
from loopback import Loopback, Reply

T0, T1 = datetime(2023, 6, 1, tzinfo=UTC), datetime(2023, 6, 1, 4, tzinfo=UTC)
HOURS = list(pd.date_range(T0, T1, freq="h", tz="UTC", inclusive="left"))


@dataclass
class Case:
    name: str
    path: str  # the route of the actuals request
    zone: str
    signal: str
    body: Callable[[list[tuple[pd.Timestamp, float]]], object]  # (time, value) pairs -> a documented body
    malformed: str
    unknown_zone: str
    base_suffix: str = ""


def em_body(pts):
    return {"zone": "DE", "data": [{"zone": "DE", "carbonIntensity": v, "datetime": t.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                                    "updatedAt": "2023-06-01T05:00:00.000Z", "createdAt": "2023-05-29T00:00:00.000Z",
                                    "emissionFactorType": "lifecycle", "isEstimated": False, "estimationMethod": None}
                                   for t, v in pts]}


def wt_body(pts):
    return {"data": [{"point_time": t.isoformat(), "value": v} for t, v in pts],
            "meta": {"region": "CAISO_NORTH", "signal_type": "co2_moer", "units": "g_co2_per_kwh",
                     "data_point_period_seconds": 3600, "model": {"date": "2023-03-01"}}}


def gb_body(pts):
    return {"data": [{"from": t.strftime("%Y-%m-%dT%H:%MZ"), "to": (t + pd.Timedelta("30min")).strftime("%Y-%m-%dT%H:%MZ"),
                      "intensity": {"forecast": v, "actual": v, "index": "low"}} for t, v in pts]}


def entsoe_body(pts):
    points = "".join(f"<Point><position>{int((t - T0) / pd.Timedelta('1h')) + 1}</position><quantity>{v}</quantity>"
                     "</Point>" for t, v in pts)
    return ('<GL_MarketDocument xmlns="urn:iec62325.351:tc57wg16:451-6:generationloaddocument:3:0">'
            "<createdDateTime>2023-06-01T05:00:00Z</createdDateTime><TimeSeries><curveType>A01</curveType>"
            '<outBiddingZone_Domain.mRID codingScheme="A01">10Y1001A1001A82H</outBiddingZone_Domain.mRID><Period>'
            "<timeInterval><start>2023-06-01T00:00Z</start><end>2023-06-01T04:00Z</end></timeInterval>"
            f"<resolution>PT60M</resolution>{points}</Period></TimeSeries></GL_MarketDocument>")


def eia_body(pts):
    rows = [{"period": (t + pd.Timedelta("1h")).strftime("%Y-%m-%dT%H"), "respondent": "CISO",
             "respondent-name": "California Independent System Operator", "type": "D", "type-name": "Demand",
             "value": v, "value-units": "megawatthours"} for t, v in pts]
    return {"response": {"total": len(rows), "data": rows}}


def pjm_body(pts):
    return {"items": [{"datetime_beginning_utc": t.strftime("%Y-%m-%dT%H:%M:%S"),
                       "datetime_beginning_ept": t.tz_convert("America/New_York").strftime("%Y-%m-%dT%H:%M:%S"),
                       "pnode_id": 51217, "total_lmp_da": v} for t, v in pts],
            "totalRows": len(pts), "links": []}


def caiso_body(pts):
    from test_provider_lmps import oasis_zip

    return oasis_zip(pts)


CASES = [
    Case("electricitymaps", "/carbon-intensity/past-range", "DE", "carbon_lifecycle_g_per_kwh", em_body,
         '{"zone": "DE", "data": [', "XX"),
    Case("watttime", "/v3/historical", "CAISO_NORTH", "moer_g_per_kwh", wt_body, '{"data": [{"point_time"', "XX"),
    Case("gb-carbon-intensity", "/intensity/2023-06-01T00:00Z/2023-06-01T04:00Z", "GB", "carbon_direct_g_per_kwh",
         lambda pts: gb_body([(t + pd.Timedelta(m, "min"), v) for t, v in pts for m in (0, 30)]), "{data", "GB"),
    Case("entsoe", "/api", "DE-LU", "load_mw", entsoe_body, "<GL_MarketDocument><TimeSeries>", "10YXX----------X",
         base_suffix="/api"),
    Case("eia", "/electricity/rto/region-data/data/", "CISO", "load_mw", eia_body, '{"response": {"total": 1,', "XXXX"),
    Case("pjm", "/da_hrl_lmps", "51217", "lmp_da_usd_per_mwh", pjm_body, '{"items": [', "0"),
    Case("caiso", "/SingleZip", "TH_NP15_GEN-APND", "lmp_da_usd_per_mwh", caiso_body, "PK\x03\x04 cut", "XX"),
]


@pytest.fixture(autouse=True)
def waits(monkeypatch):
    monkeypatch.setenv("WATTTIME_USER", "alice")
    w: list[float] = []
    monkeypatch.setattr(http, "_sleep", w.append)
    return w


def run(case: Case, routes: dict, zone: str | None = None, **kw):
    kw.setdefault("min_interval_s", 0.0)  # no pacing: the waits seen are the retries' alone
    with Loopback() as server:
        server.routes["/login"] = Reply({"token": "tok"})
        server.routes.update(routes)
        p = make_provider(ProviderConfig(case.name, base_url=server.url + case.base_suffix, api_key="k", **kw))
        try:
            return p.actuals(zone or case.zone, T0, T1, [case.signal]), server
        except ProviderError as e:
            return e, server


def prefix(case: Case, zone: str | None = None) -> str:
    return f"{case.name}: zone {zone or case.zone}, 2023-06-01T00:00Z .. 2023-06-01T04:00Z: "


def values(b) -> list[float]:
    return list(b.rows["value"])


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_success(case):
    b, _ = run(case, {case.path: Reply(case.body([(t, 100.0 + i) for i, t in enumerate(HOURS)]))})
    assert not isinstance(b, Exception), b
    assert b.problems == [] and set(b.rows["signal"]) == {case.signal}
    assert b.rows["value"].iloc[0] == 100.0 and str(b.rows["at"].dt.tz) == "UTC"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_401(case, waits):
    e, server = run(case, {case.path: Reply({"error": "no"}, 401)})
    assert isinstance(e, ProviderError) and str(e).startswith(prefix(case)) and "HTTP 401" in str(e)
    assert "\n" not in str(e) and waits == []


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_429_retry_after(case, waits):
    good = Reply(case.body([(t, 100.0) for t in HOURS]))
    b, server = run(case, {case.path: [Reply({"error": "slow down"}, 429, {"Retry-After": "3"}), good]})
    assert not isinstance(b, Exception), b
    assert waits == [3.0] and len(b.rows) >= 4


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_5xx_backoff_then_one_line(case, waits):
    e, server = run(case, {case.path: Reply({"error": "down"}, 502)}, retries=2, backoff_s=0.5)
    assert isinstance(e, ProviderError) and str(e).startswith(prefix(case)) and "HTTP 502" in str(e)
    assert waits == [0.5, 1.0]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_timeout(case, waits):
    e, _ = run(case, {case.path: Reply(case.body([]), delay_s=0.5)}, timeout_s=0.1, retries=0)
    assert isinstance(e, ProviderError) and str(e).startswith(prefix(case)) and "timed out" in str(e)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_malformed_body(case):
    e, _ = run(case, {case.path: Reply(case.malformed)})
    assert isinstance(e, ProviderError) and str(e).startswith(prefix(case)) and "malformed" in str(e)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_unknown_zone(case):
    if case.name == "gb-carbon-intensity":  # regions have forecasts only: a region id the API does not know
        with Loopback() as server:
            p = make_provider(ProviderConfig(case.name, base_url=server.url, zones={"GB-X": "99"}))
            with pytest.raises(ProviderError, match=r"^gb-carbon-intensity: zone GB-X, 2023-06-01T00:00Z .. …: "
                                                    r"HTTP 404.*unknown zone"):
                p.forecasts("GB-X", [case.signal], T0)
            assert server.paths() == ["/regional/intensity/2023-06-01T00:00Z/fw48h/regionid/99"]
        return
    routes = {} if case.name in ("electricitymaps", "watttime") else {case.path: Reply({"error": "bad zone"}, 400)}
    e, server = run(case, routes, zone=case.unknown_zone)
    assert isinstance(e, ProviderError) and str(e).startswith(prefix(case, case.unknown_zone))
    assert "unknown zone" in str(e) or "HTTP 400" in str(e) or "HTTP 404" in str(e)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_duplicated_and_missing_hours(case):
    pts = [(HOURS[0], 100.0), (HOURS[1], 110.0), (HOURS[1], 999.0), (HOURS[0], 100.0)]  # 02:00, 03:00 missing
    if case.name == "entsoe":  # XML positions: the same position twice
        body = entsoe_body(pts)
    else:
        body = case.body(pts)
    b, _ = run(case, {case.path: Reply(body)})
    assert not isinstance(b, Exception), b
    assert HOURS[1] not in set(b.rows["at"])  # the conflicting hour is dropped, not guessed
    assert (b.rows["at"] == HOURS[0]).sum() == 1  # the repeat of the same value kept once
    text = "\n".join(b.problems)
    assert "given twice with different values" in text and "missing" in text
    assert all(p.startswith(prefix(case)) for p in b.problems)
