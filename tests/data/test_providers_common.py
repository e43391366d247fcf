"""What every provider adapter shares, tested against a loopback server through the Electricity Maps
adapter: retries with backoff and Retry-After, 401, 5xx, timeouts, malformed JSON, keys never in messages,
bad rows dropped with one line naming provider, zone, range and what was wrong; the configuration file.

Bodies follow Electricity Maps' documented v3 shapes:
https://static.electricitymaps.com/api/docs/index.html (carbon-intensity/past-range: ``zone``, ``data`` of
``zone``, ``carbonIntensity``, ``datetime``, ``updatedAt``, ``createdAt``, ``emissionFactorType``,
``isEstimated``, ``estimationMethod``).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pandas as pd
import pytest

from gridshift.data import http
from gridshift.data.providers import ProviderConfig, ProviderError, load_configs, make_provider
from gridshift.data.providers.base import Batch, clean, frame, redact
from gridshift.errors import DataError
from loopback import Loopback, Reply

T0 = datetime(2023, 6, 1, tzinfo=UTC)
T1 = datetime(2023, 6, 1, 4, tzinfo=UTC)
KEY = "em-secret-key-123"


def em_row(t: str, v: float | None) -> dict:
    return {"zone": "DE", "carbonIntensity": v, "datetime": t, "updatedAt": "2023-06-01T05:02:11.000Z",
            "createdAt": "2023-05-29T00:10:00.000Z", "emissionFactorType": "lifecycle", "isEstimated": False,
            "estimationMethod": None}


def past_range(values: dict[str, float | None]) -> dict:
    return {"zone": "DE", "data": [em_row(t, v) for t, v in values.items()]}


GOOD = past_range({"2023-06-01T00:00:00.000Z": 310, "2023-06-01T01:00:00.000Z": 300,
                   "2023-06-01T02:00:00.000Z": 290, "2023-06-01T03:00:00.000Z": 305})


@pytest.fixture
def waits(monkeypatch):
    w: list[float] = []
    monkeypatch.setattr(http, "_sleep", w.append)
    return w


@pytest.fixture
def server():
    with Loopback() as s:
        yield s


def em(server, **kw):
    return make_provider(ProviderConfig("electricitymaps", base_url=server.url, api_key=KEY, zones={"DE-LU": "DE"},
                                        **kw))


def test_success_sends_the_key_in_its_header_and_normalises(server, waits):
    server.routes["/carbon-intensity/past-range"] = Reply(GOOD)
    b = em(server).actuals("DE-LU", T0, T1, ["carbon_lifecycle_g_per_kwh"])
    assert b.problems == []
    assert list(b.rows["value"]) == [310, 300, 290, 305]
    assert str(b.rows["at"].dt.tz) == "UTC" and b.rows["at"].iloc[0] == pd.Timestamp(T0)
    s = server.seen[0]
    assert s.headers.get("auth-token") == KEY and s.param("zone") == "DE"
    assert s.param("emissionFactorType") == "lifecycle"
    assert s.param("start") == "2023-06-01T00:00:00Z" and s.param("end") == "2023-06-01T04:00:00Z"


def test_429_waits_retry_after_then_succeeds(server, waits):
    server.routes["/carbon-intensity/past-range"] = [Reply({"error": "rate"}, 429, {"Retry-After": "7"}), Reply(GOOD)]
    b = em(server, backoff_s=0.25).actuals("DE-LU", T0, T1, ["carbon_lifecycle_g_per_kwh"])
    assert len(b.rows) == 4 and waits == [7.0] and len(server.seen) == 2


def test_5xx_backs_off_exponentially_then_fails_with_one_line(server, waits):
    server.routes["/carbon-intensity/past-range"] = Reply({"error": "down"}, 503)
    with pytest.raises(ProviderError) as e:
        em(server, retries=2, backoff_s=0.5).actuals("DE-LU", T0, T1, ["carbon_lifecycle_g_per_kwh"])
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("electricitymaps: zone DE-LU, 2023-06-01T00:00Z .. 2023-06-01T04:00Z")
    assert "HTTP 503" in msg and waits == [0.5, 1.0] and len(server.seen) == 3


def test_401_is_not_retried_and_says_the_key_was_refused(server, waits):
    server.routes["/carbon-intensity/past-range"] = Reply({"message": "unauthorized"}, 401)
    with pytest.raises(ProviderError, match="HTTP 401.*API key was refused"):
        em(server).actuals("DE-LU", T0, T1, ["carbon_lifecycle_g_per_kwh"])
    assert len(server.seen) == 1 and waits == []


def test_unknown_zone_names_the_zone(server, waits):
    server.routes["/carbon-intensity/past-range"] = Reply({"error": "Zone 'XX' does not exist."}, 404)
    with pytest.raises(ProviderError, match=r"zone XX, .*HTTP 404.*unknown zone"):
        em(server).actuals("XX", T0, T1, ["carbon_lifecycle_g_per_kwh"])


def test_timeout_is_retried_then_reported(server, waits):
    server.routes["/carbon-intensity/past-range"] = Reply(GOOD, delay_s=0.6)
    with pytest.raises(ProviderError, match="timed out"):
        em(server, timeout_s=0.1, retries=1).actuals("DE-LU", T0, T1, ["carbon_lifecycle_g_per_kwh"])
    assert len(waits) == 1


def test_malformed_json_and_wrong_shape(server, waits):
    server.routes["/carbon-intensity/past-range"] = Reply('{"zone": "DE", "data": [')
    with pytest.raises(ProviderError, match="zone DE-LU, .*malformed JSON"):
        em(server).actuals("DE-LU", T0, T1, ["carbon_lifecycle_g_per_kwh"])
    server.routes["/carbon-intensity/past-range"] = Reply({"zone": "DE", "history": []})
    with pytest.raises(ProviderError, match="unexpected answer: no list 'data'"):
        em(server).actuals("DE-LU", T0, T1, ["carbon_lifecycle_g_per_kwh"])


def test_the_key_never_appears_in_errors_logs_or_repr(server, waits, caplog):
    cfg = ProviderConfig("eia", base_url=server.url, api_key=KEY)
    server.routes["/electricity/rto/region-data/data/"] = Reply({"error": "bad"}, 403)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ProviderError) as e:
        make_provider(cfg).actuals("CISO", T0, T1, ["load_mw"])
    assert server.seen[0].param("api_key") == KEY  # sent as the provider asks …
    assert KEY not in str(e.value) and "api_key=***" in str(e.value)  # … and never shown
    assert KEY not in repr(cfg) and KEY not in caplog.text
    assert redact("http://h/x?a=1&securityToken=s3&api_key=k") == "http://h/x?a=1&securityToken=***&api_key=***"


def test_missing_key_is_one_line_naming_the_variable(server, monkeypatch):
    monkeypatch.delenv("ELECTRICITYMAPS_API_KEY", raising=False)
    p = make_provider(ProviderConfig("electricitymaps", base_url=server.url))
    with pytest.raises(ProviderError, match=r"no API key \(set \$ELECTRICITYMAPS_API_KEY"):
        p.actuals("DE", T0, T1)
    monkeypatch.setenv("ELECTRICITYMAPS_API_KEY", "from-env")
    server.routes["/carbon-intensity/past-range"] = Reply(GOOD)
    p.actuals("DE", T0, T1, ["carbon_lifecycle_g_per_kwh"])
    assert server.seen[-1].headers["auth-token"] == "from-env"


def test_bad_rows_dropped_with_one_line_each_and_gaps_reported(server, waits):
    body = past_range({"2023-06-01T00:00:00.000Z": 310, "2023-06-01T01:00:00.000Z": None,  # null value
                       "2023-06-01T02:00:00.000Z": -5,  # a negative intensity
                       "not-a-time": 300})
    body["data"] += [em_row("2023-06-01T03:00:00.000Z", 280), em_row("2023-06-01T03:00:00.000Z", 281),  # conflict
                     em_row("2023-06-01T00:00:00.000Z", 310)]  # a repeat of the same value
    server.routes["/carbon-intensity/past-range"] = Reply(body)
    b = em(server).actuals("DE-LU", T0, T1, ["carbon_lifecycle_g_per_kwh"])
    assert list(b.rows["value"]) == [310]
    text = "\n".join(b.problems)
    for what in ("time missing or not ISO 8601", "value missing or not a finite number",
                 "negative value", "given twice with different values", "repeated row(s) with the same value",
                 "3 of 4 slot(s) missing (first 2023-06-01T01:00Z); not filled"):
        assert what in text
    assert all(p.startswith("electricitymaps: zone DE-LU, 2023-06-01T00:00Z .. 2023-06-01T04:00Z: ")
               for p in b.problems)


def test_rows_outside_the_range_or_off_grid_are_dropped():
    raw = frame([{"signal": "load_mw", "at": "2023-06-01T00:00Z", "value": 1.0},
                 {"signal": "load_mw", "at": "2023-06-01T00:20Z", "value": 2.0},
                 {"signal": "load_mw", "at": "2023-06-02T00:00Z", "value": 3.0},
                 {"signal": "price_eur_per_mwh", "at": "2023-06-01T00:00Z", "value": -20.0}])
    b = clean(Batch("x", "Z", raw), "2023-06-01", "2023-06-01T01:00Z", step_s=3600)
    assert sorted(b.rows["value"]) == [-20.0, 1.0]  # a negative price is a price
    assert any("outside the requested range" in p for p in b.problems)
    assert any("not on the 3600 s grid" in p for p in b.problems)
    edge = frame([{"signal": "load_mw", "at": "2023-06-01T00:00Z", "value": 1.0},
                  {"signal": "load_mw", "at": "2023-06-01T01:00Z", "value": 2.0}])  # an inclusive end's extra slot
    b = clean(Batch("x", "Z", edge), "2023-06-01", "2023-06-01T01:00Z", step_s=3600)
    assert list(b.rows["value"]) == [1.0] and b.problems == []


def test_long_ranges_are_asked_in_pieces(server, waits):
    server.routes["/carbon-intensity/past-range"] = Reply({"zone": "DE", "data": []})
    em(server).actuals("DE-LU", datetime(2023, 1, 1, tzinfo=UTC), datetime(2023, 1, 25, tzinfo=UTC),
                       ["carbon_lifecycle_g_per_kwh"])
    assert [(s.param("start"), s.param("end")) for s in server.seen] == [
        ("2023-01-01T00:00:00Z", "2023-01-11T00:00:00Z"), ("2023-01-11T00:00:00Z", "2023-01-21T00:00:00Z"),
        ("2023-01-21T00:00:00Z", "2023-01-25T00:00:00Z")]


def test_adapters_pace_by_their_published_limit_unless_configured(server, waits, monkeypatch):
    from gridshift.data.providers.watttime import WattTime

    assert WattTime.min_interval_s == 0.1  # 3,000 requests per 5 minutes (docs.watttime.org)
    monkeypatch.setenv("WATTTIME_USER", "alice")
    monkeypatch.setattr(WattTime, "min_interval_s", 5.0)  # the adapter's own pause, made long enough to see
    server.routes["/login"] = Reply({"token": "t"})
    server.routes["/v3/signal-index"] = Reply({"data": [], "meta": {"units": "percentile"}})
    p = make_provider(ProviderConfig("watttime", base_url=server.url, api_key="pw"))
    p.actuals("CAISO_NORTH", T0, T1, ["moer_index_pct"])  # two requests: login, then the index
    assert len(waits) == 1 and 4.0 < waits[0] <= 5.0
    waits.clear()
    p = make_provider(ProviderConfig("watttime", base_url=server.url, api_key="pw", min_interval_s=0.0))
    p.actuals("CAISO_NORTH", T0, T1, ["moer_index_pct"])  # the configured pause wins
    assert waits == []


def test_pacing_keeps_the_minimum_interval(server, waits):
    server.routes["/carbon-intensity/past-range"] = Reply({"zone": "DE", "data": []})
    em(server, min_interval_s=5.0).actuals("DE-LU", datetime(2023, 1, 1, tzinfo=UTC),
                                            datetime(2023, 1, 25, tzinfo=UTC), ["carbon_lifecycle_g_per_kwh"])
    assert len(waits) == 2 and all(4.0 < w <= 5.0 for w in waits)


def test_config_file(tmp_path):
    f = tmp_path / "providers.yaml"
    f.write_text("providers:\n  - name: electricitymaps\n    zones: {DE-LU: DE}\n    signals: [carbon_direct_g_per_kwh]\n"
                 "    interval_s: 600\n  - name: gb-carbon-intensity\n")
    cfgs = load_configs(f)
    assert [c.name for c in cfgs] == ["electricitymaps", "gb-carbon-intensity"]
    assert cfgs[0].zones == {"DE-LU": "DE"} and cfgs[0].signals == ("carbon_direct_g_per_kwh",)
    f.write_text("providers:\n  - name: electricitymaps\n    api_key: abc\n")
    with pytest.raises(DataError, match="unknown field.*api_key.*never the file") as e:
        load_configs(f)
    assert "abc" not in str(e.value)
    f.write_text("providers:\n  - name: nope\n")
    with pytest.raises(DataError, match="unknown provider 'nope'"):
        load_configs(f)
    f.write_text("providers:\n  - name: watttime\n    signals: [carbon_g]\n")
    with pytest.raises(DataError, match="unknown signal.*carbon_g"):
        load_configs(f)


def test_key_file(tmp_path, server, waits):
    k = tmp_path / "key"
    k.write_text("file-key\n")
    server.routes["/carbon-intensity/past-range"] = Reply(GOOD)
    make_provider(ProviderConfig("electricitymaps", base_url=server.url, api_key_file=str(k))).actuals(
        "DE", T0, T1, ["carbon_lifecycle_g_per_kwh"])
    assert server.seen[0].headers["auth-token"] == "file-key"
