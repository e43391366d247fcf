"""Contract tests of the Carbon Aware SDK–compatible read API: answers validated against the shapes of the
Green Software Foundation's Carbon Aware SDK Web API, written here as JSON Schemas from its model classes
(github.com/Green-Software-Foundation/carbon-aware-sdk, src/CarbonAware.WebApi/src/Models/EmissionsDataDTO.cs,
EmissionsForecastDTO.cs, CarbonIntensityDTO.cs; src/GSF.CarbonAware/src/Models/EmissionsData.cs, serialised
by System.Text.Json with camel-case names, a TimeSpan as "hh:mm:ss"; 400 answers are ASP.NET Core's
ValidationProblemDetails) and the values computed as its EmissionsDataExtensions (RollingAverage,
AverageOverPeriod) and handlers define them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jsonschema
import pytest
from fastapi.testclient import TestClient

from gridshift.data.issued_forecasts import forecasts_csv
from gridshift.data.providers import ProviderConfig
from gridshift.service.app import ApiSettings, create_app
from gridshift.service.carbon_aware import Point, average_over, rolling
from gridshift.service.db import upgrade
from gridshift.service.provider_pull import ProviderPuller
from gridshift.service.store import Store

TIME = {"type": "string", "format": "date-time", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$"}
EMISSIONS_DATA = {"type": "object", "required": ["location", "time", "rating", "duration"],
                  "additionalProperties": False,
                  "properties": {"location": {"type": "string"}, "time": TIME, "rating": {"type": "number"},
                                 "duration": {"type": "string", "pattern": r"^(\d+\.)?\d\d:\d\d:\d\d$"}}}
DATA_DTO = {"type": "object", "required": ["location", "timestamp", "duration", "value"], "additionalProperties": False,
            "properties": {"location": {"type": "string"}, "timestamp": TIME, "duration": {"type": "integer"},
                           "value": {"type": "number"}}}
FORECAST_DTO = {"type": "object", "additionalProperties": False,
                "required": ["generatedAt", "requestedAt", "location", "dataStartAt", "dataEndAt", "windowSize",
                             "optimalDataPoints", "forecastData"],
                "properties": {"generatedAt": TIME, "requestedAt": TIME, "location": {"type": "string"},
                               "dataStartAt": TIME, "dataEndAt": TIME, "windowSize": {"type": "integer"},
                               "optimalDataPoints": {"type": "array", "items": DATA_DTO},
                               "forecastData": {"type": "array", "items": DATA_DTO}}}
INTENSITY_DTO = {"type": "object", "additionalProperties": False,
                 "required": ["location", "startTime", "endTime", "carbonIntensity"],
                 "properties": {"location": {"type": "string"}, "startTime": TIME, "endTime": TIME,
                                "carbonIntensity": {"type": "number"}}}
PROBLEM = {"type": "object", "required": ["type", "title", "status", "errors"],
           "properties": {"status": {"const": 400}, "errors": {"type": "object", "additionalProperties": {
               "type": "array", "items": {"type": "string"}}}}}

T0 = datetime(2023, 3, 1, tzinfo=UTC)


@pytest.fixture
def store(tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    upgrade(url)
    with Store(url) as s:
        rows = [{"zone": z, "signal": "carbon_g_per_kwh", "at": T0 + timedelta(hours=h), "value": v + 10 * h,
                 "source": "test"} for z, v in (("DE-LU", 300.0), ("FR", 50.0)) for h in range(6)]
        s.upsert_signals(rows)
        yield s


@pytest.fixture
def client(store, tmp_path):
    fc = tmp_path / "fc"
    p = ProviderPuller([ProviderConfig("electricitymaps", zones={"DE-LU": "DE"})],
                       {"DE-LU": ("electricitymaps", "carbon_lifecycle_g_per_kwh")}, fc)
    path = fc / "electricitymaps" / "DE-LU" / "carbon_lifecycle_g_per_kwh.csv"
    path.parent.mkdir(parents=True)
    import pandas as pd

    issue = pd.Timestamp("2030-01-01T00:00Z")
    old = pd.DataFrame({"issue_time": issue - pd.Timedelta("1h"), "target_time": pd.date_range(issue, periods=4, freq="h"),
                        "value": [999.0] * 4})
    new = pd.DataFrame({"issue_time": issue, "target_time": pd.date_range(issue, periods=4, freq="h"),
                        "value": [400.0, 200.0, 100.0, 300.0]})
    path.write_text(forecasts_csv(pd.concat([old, new])))
    token = store.create_token("reader", "tenant", "alice")[1]
    with TestClient(create_app(store, providers=p)) as c:
        c.headers["Authorization"] = f"Bearer {token}"
        yield c


def test_bylocations_and_best(client):
    r = client.get("/emissions/bylocations", params=[("location", "DE-LU"), ("location", "FR"),
                                                     ("time", "2023-03-01T01:30:00Z"), ("toTime", "2023-03-01T03:00:00Z")])
    assert r.status_code == 200
    body = r.json()
    jsonschema.validate(body, {"type": "array", "items": EMISSIONS_DATA})
    assert [(d["location"], d["rating"]) for d in body] == [("DE-LU", 310.0), ("DE-LU", 320.0), ("FR", 60.0), ("FR", 70.0)]
    assert body[0] == {"location": "DE-LU", "time": "2023-03-01T01:00:00Z", "rating": 310.0, "duration": "01:00:00"}
    best = client.get("/emissions/bylocations/best", params=[("location", "DE-LU"), ("location", "FR"),
                                                             ("time", "2023-03-01T01:30:00Z"), ("toTime", "2023-03-01T03:00:00Z")])
    assert [(d["location"], d["rating"]) for d in best.json()] == [("FR", 60.0)]
    none = client.get("/emissions/bylocations", params={"location": "DE-LU", "time": "2024-01-01T00:00:00Z"})
    assert none.status_code == 204 and none.content == b""


def test_average_carbon_intensity_is_time_weighted(client):
    r = client.get("/emissions/average-carbon-intensity",
                   params={"location": "DE-LU", "startTime": "2023-03-01T00:30:00Z", "endTime": "2023-03-01T02:00:00Z"})
    assert r.status_code == 200
    jsonschema.validate(r.json(), INTENSITY_DTO)
    assert r.json()["carbonIntensity"] == pytest.approx((300 * 0.5 + 310 * 1.0) / 1.5)
    out = client.get("/emissions/average-carbon-intensity",
                     params={"location": "DE-LU", "startTime": "2023-03-01T05:00:00Z", "endTime": "2023-03-01T07:00:00Z"})
    assert out.status_code == 400 and "Period out of range" in out.json()["errors"]["location"][0]
    jsonschema.validate(out.json(), PROBLEM)


def test_forecasts_current_uses_the_newest_issued_forecast_and_finds_the_optimal_window(client):
    r = client.get("/emissions/forecasts/current", params={"location": "DE-LU", "windowSize": "120"})
    assert r.status_code == 200
    body = r.json()
    jsonschema.validate(body, {"type": "array", "items": FORECAST_DTO})
    f = body[0]
    assert f["generatedAt"] == "2030-01-01T00:00:00Z" and f["windowSize"] == 120
    assert [d["value"] for d in f["forecastData"]] == [300.0, 150.0, 200.0]  # 2-hour means, moving by an hour
    assert f["optimalDataPoints"] == [{"location": "DE-LU", "timestamp": "2030-01-01T01:00:00Z", "duration": 120,
                                       "value": 150.0}]
    scoped = client.get("/emissions/forecasts/current", params={"location": "DE-LU", "dataStartAt": "2030-01-01T02:00:00Z",
                                                                "dataEndAt": "2030-01-01T04:00:00Z"}).json()[0]
    assert [d["value"] for d in scoped["forecastData"]] == [100.0, 300.0] and scoped["windowSize"] == 0


def test_bad_parameters_answer_validation_problem_details(client):
    for params, field in (({}, "location"), ({"location": "DE-LU", "time": "yesterday-ish"}, "time"),
                          ({"location": "DE-LU", "toTime": "2023-03-01T00:00:00Z"}, "time"),
                          ({"location": "DE LU"}, "location")):
        r = client.get("/emissions/bylocations", params=params)
        assert r.status_code == 400, (params, r.text)
        jsonschema.validate(r.json(), PROBLEM)
        assert field in r.json()["errors"]
    r = client.get("/emissions/forecasts/current", params={"location": "DE-LU", "windowSize": "-5"})
    assert r.status_code == 400 and "windowSize" in r.json()["errors"]
    r = client.get("/emissions/forecasts/current", params={"location": "FR"})
    assert r.status_code == 400 and "no forecast for zone FR" in r.json()["errors"]["location"][0]


def test_a_token_is_needed_unless_public(store):
    with TestClient(create_app(store)) as c:
        assert c.get("/emissions/bylocations", params={"location": "FR", "time": "2023-03-01T00:00:00Z"}).status_code == 401
    with TestClient(create_app(store, settings=ApiSettings(public_carbon_aware=True))) as c:
        assert c.get("/emissions/bylocations", params={"location": "FR", "time": "2023-03-01T00:00:00Z"}).status_code == 200


def test_rolling_and_average_match_the_sdk_definitions():
    h = timedelta(hours=1)
    pts = [Point("z", T0 + i * h, h, v) for i, v in enumerate([10.0, 20.0, 30.0])]
    assert average_over(pts, T0 + 0.5 * h, T0 + 2 * h) == pytest.approx((10 * 0.5 + 20) / 1.5)
    with pytest.raises(ValueError, match="did not cover"):
        average_over(pts, T0, T0 + 4 * h)
    wins = rolling(pts, timedelta(minutes=90), None, None)
    assert [(w.time, w.rating) for w in wins] == [(T0, pytest.approx(40 / 3)), (T0 + h, pytest.approx(70 / 3))]
    assert rolling(pts, timedelta(minutes=90), None, T0 + 2 * h) == wins[:1]


def test_bylocation_and_the_batches(client):
    one = client.get("/emissions/bylocation", params={"location": "FR", "time": "2023-03-01T02:00:00Z"})
    assert one.status_code == 200 and [d["rating"] for d in one.json()] == [70.0]
    # the forecast current at each requestedAt: the kept one issued by then
    r = client.post("/emissions/forecasts/batch", json=[
        {"location": "DE-LU", "requestedAt": "2029-12-31T23:30:00Z", "windowSize": 60},
        {"location": "DE-LU", "requestedAt": "2030-01-01T00:10:00Z", "dataStartAt": "2030-01-01T01:00:00Z",
         "dataEndAt": "2030-01-01T03:00:00Z"}])
    assert r.status_code == 200, r.text
    jsonschema.validate(r.json(), {"type": "array", "items": FORECAST_DTO})
    older, newer = r.json()
    assert older["generatedAt"] == "2029-12-31T23:00:00Z" and {d["value"] for d in older["forecastData"]} == {999.0}
    assert older["requestedAt"] == "2029-12-31T23:30:00Z"
    assert newer["generatedAt"] == "2030-01-01T00:00:00Z" and [d["value"] for d in newer["forecastData"]] == [200.0, 100.0]
    assert [d["value"] for d in newer["optimalDataPoints"]] == [100.0]
    early = client.post("/emissions/forecasts/batch", json=[{"location": "DE-LU", "requestedAt": "2029-01-01T00:00:00Z"}])
    assert early.status_code == 400 and "issued by 2029-01-01T00:00:00Z" in early.json()["errors"]["location"][0]
    for bad in ({"location": "DE-LU"}, [], [1], [{"requestedAt": "2030-01-01T00:00:00Z"}]):
        resp = client.post("/emissions/forecasts/batch", json=bad)
        assert resp.status_code == 400, (bad, resp.text)
        jsonschema.validate(resp.json(), PROBLEM)
    avg = client.post("/emissions/average-carbon-intensity/batch", json=[
        {"location": "DE-LU", "startTime": "2023-03-01T00:00:00Z", "endTime": "2023-03-01T02:00:00Z"},
        {"location": "FR", "startTime": "2023-03-01T00:00:00Z", "endTime": "2023-03-01T01:00:00Z"}])
    assert avg.status_code == 200
    jsonschema.validate(avg.json(), {"type": "array", "items": INTENSITY_DTO})
    assert [a["carbonIntensity"] for a in avg.json()] == [305.0, 50.0]
