"""The gateway's parts without processes: the backends file, routing (filters, scores, power of two choices),
vLLM metrics, the SSE token counter, quotas, the command line's bad input, and schemathesis over its OpenAPI
document (in process, as a tenant: never a 500, every error in OpenAI's shape)."""

from __future__ import annotations

import random

import pytest
from fastapi.testclient import TestClient

from gridshift.errors import GridShiftError
from gridshift.service.gateway.accounting import usage_of
from gridshift.service.gateway.backends import (
    Registry,
    accelerator_power_w,
    catalog_joules_per_token,
    parse_prometheus,
)
from gridshift.service.gateway.config import load_gateway_config, parse_gateway_config
from gridshift.service.gateway.errors import GatewayError
from gridshift.service.gateway.proxy import SseCounter
from gridshift.service.gateway.quotas import Quotas
from gridshift.service.gateway.routing import GridView, pick_backend, plan_route


def cfg(**extra):
    sites = [
        {"name": "a", "zone": "ZA", "region": "r1", "residency": "eu", "carbon_g_per_kwh": 500, "price_usd_per_mwh": 50,
         "backends": [{"id": "a1", "url": "http://x:1", "accelerator": "H100", "models": ["m"]}]},
        {"name": "b", "zone": "ZB", "region": "r2", "residency": "eu", "carbon_g_per_kwh": 100, "price_usd_per_mwh": 90,
         "power_cap_kw": 10, "backends": [{"id": "b1", "url": "http://x:2", "accelerator": "H100", "models": ["m"]},
                                          {"id": "b2", "url": "http://x:3", "accelerator": "H100", "models": ["m"]}]},
    ]
    return parse_gateway_config({"sites": sites, **extra})


def healthy(reg: Registry) -> Registry:
    for b in reg.backends():
        b.healthy = True
    return reg


def test_backends_file_errors_name_the_field(tmp_path):
    with pytest.raises(GridShiftError) as e:
        parse_gateway_config({"sites": [{"name": "a", "zone": "Z", "backends": [{"id": "x", "url": "ftp://h",
                                                                                "accelerator": "H100"}]}]})
    assert e.value.field == "sites.0.backends.0.url"
    with pytest.raises(GridShiftError, match="appears twice"):
        parse_gateway_config({"sites": [{"name": "a", "zone": "Z"}, {"name": "a", "zone": "Y"}]})
    with pytest.raises(GridShiftError, match="unknown weight 'speed'"):
        parse_gateway_config({"slo": {"interactive": {"weights": {"speed": 1}}}})
    p = tmp_path / "b.yaml"
    p.write_text("sites: [")
    with pytest.raises(GridShiftError) as e:
        load_gateway_config(p)
    assert e.value.file == str(p)
    c = parse_gateway_config({"slo": {"offline": {"weights": {"carbon": 1}}}})
    assert c.slo["offline"].weights == {"carbon": 1, "price": 0, "headroom": 0, "queue": 0, "latency": 0}
    assert c.slo["interactive"].ttft_ms == 2000


def test_scores_prefer_low_carbon_and_filters_say_why():
    c = cfg()
    reg = healthy(Registry(c))
    grid = GridView(rtt_ms={("r1", "r1"): 5, ("r1", "r2"): 40})
    plan = plan_route(reg, grid, "m", "interactive", c.slo["interactive"], region="r1", residency=None, now=0)
    assert plan.order == ["b", "a"]
    by = {s.site: s for s in plan.sites}
    assert by["b"].terms["carbon"] == 0 and by["a"].terms["carbon"] == pytest.approx((500 - 100) / 500)
    idle_w = accelerator_power_w("H100")[0]
    assert by["b"].rtt_ms == 40 and by["b"].headroom_kw == pytest.approx(10 - 2 * idle_w / 1000)  # two idle H100s
    # carbon only vs latency only: the weights decide
    lat = parse_gateway_config({**c.model_dump(exclude={"slo"}), "slo": {"interactive": {"weights": {"latency": 1}}}})
    plan = plan_route(healthy(Registry(lat)), grid, "m", "interactive", lat.slo["interactive"], region="r1",
                      residency=None, now=0)
    assert plan.order == ["a", "b"]
    # the SLO filter: measured TTFT plus the network round trip
    reg.find("b1").ttft_ms = reg.find("b2").ttft_ms = 1980.0
    plan = plan_route(reg, grid, "m", "interactive", c.slo["interactive"], region="r1", residency=None, now=0)
    assert plan.order == ["a"] and {s.site: s.excluded_by for s in plan.sites}["b"] == "slo"
    # residency, grid events, power, unknown model
    plan = plan_route(reg, grid, "m", "offline", c.slo["offline"], region="r1", residency=["us"], now=0)
    assert {s.excluded_by for s in plan.sites} == {"residency"} and "a: residency" in plan.exclusions()
    grid.events = {"a": [("ev1", "limit", None)], "b": [("ev2", "limit", 0.0001)]}
    plan = plan_route(reg, grid, "m", "offline", c.slo["offline"], region="r1", residency=None, now=0)
    assert {s.site: s.excluded_by for s in plan.sites} == {"a": "grid_event", "b": "grid_event"}
    plan = plan_route(reg, grid, "m", "interactive", c.slo["interactive"], region="r1", residency=None, now=0)
    assert {s.site: s.excluded_by for s in plan.sites} == {"a": None, "b": "power"}
    plan = plan_route(reg, GridView(), "other", "interactive", c.slo["interactive"], region=None, residency=None,
                      now=0)
    assert plan.order == [] and "no backend serves it" in plan.exclusions()


def test_a_route_is_reused_briefly_and_never_across_a_change_or_a_grid_event():
    from gridshift.service.gateway.backends import BackendSpec
    from gridshift.service.gateway.proxy import PLAN_TTL_S, Call, Forwarder

    c = cfg()
    fwd = Forwarder(healthy(Registry(c)), None, c, None, None)  # type: ignore[arg-type]
    call = Call("t", "m", "chat", "interactive", "r1", None, {})
    first = fwd.plan(call)
    assert first.order == ["b", "a"] and fwd.plan(call) is first  # within PLAN_TTL_S: the same route
    assert fwd.plan(Call("t", "m", "chat", "offline", "r1", None, {})) is not first  # another class
    fwd.grid = GridView(carbon_g_per_kwh={"ZB": 900.0})  # a fresh grid view: routed afresh
    assert fwd.plan(call).order == ["a", "b"]
    again = fwd.plan(call)
    fwd.registry.add_backend("a", BackendSpec(id="a2", url="http://x:4", accelerator="H100", models=["m"]))
    assert fwd.plan(call) is not again
    fwd.grid.events = {"a": [("ev1", "limit", None)]}  # a grid event: every request routed (and drawn) anew
    assert fwd.plan(call) is not fwd.plan(call)
    fwd.grid.events = {}
    cached = fwd.plan(call)
    fwd._plans = {k: (p, 0.0) for k, (p, _) in fwd._plans.items()}  # as if PLAN_TTL_S had passed
    assert fwd.plan(call) is not cached and PLAN_TTL_S <= 0.5


def test_power_of_two_choices_picks_the_less_loaded_backend():
    reg = healthy(Registry(cfg()))
    b1, b2 = reg.find("b1"), reg.find("b2")
    b1.inflight, b2.inflight = 30, 2
    rng = random.Random(1)
    assert {pick_backend(reg.sites["b"], "m", 0, set(), rng).id for _ in range(20)} == {"b2"}
    assert pick_backend(reg.sites["b"], "m", 0, {"b2"}, rng).id == "b1"
    b1.cooldown_until = 10.0
    assert pick_backend(reg.sites["b"], "m", 5.0, {"b2"}, rng) is None


def test_vllm_metrics_give_load_and_latency():
    reg = Registry(cfg())
    b = reg.find("a1")
    text = """# HELP vllm:num_requests_running x
vllm:num_requests_running{model_name="m"} 3.0
vllm:num_requests_waiting{model_name="m"} 2.0
vllm:kv_cache_usage_perc{model_name="m"} 0.25
vllm:time_to_first_token_seconds_sum{model_name="m"} 1.0
vllm:time_to_first_token_seconds_count{model_name="m"} 10.0
vllm:inter_token_latency_seconds_sum{model_name="m"} 0.5
vllm:inter_token_latency_seconds_count{model_name="m"} 100.0
"""
    b.read_metrics(parse_prometheus(text))
    assert (b.running, b.waiting, b.kv_usage, b.load()) == (3, 2, 0.25, 5)
    assert b.ttft_ms == pytest.approx(100.0) and b.itl_ms == pytest.approx(5.0)
    b.read_metrics(parse_prometheus(text.replace("_sum{model_name=\"m\"} 1.0", "_sum{model_name=\"m\"} 4.0")
                                    .replace("seconds_count{model_name=\"m\"} 10.0", "seconds_count{model_name=\"m\"} 20.0")))
    assert b.ttft_ms == pytest.approx(300.0)  # the mean of the last interval: 3 s over 10 requests
    assert b.estimated_power_w() > 0


def test_the_gateways_own_ttft_counts_and_old_latencies_are_forgotten():
    import time

    from gridshift.service.gateway.backends import STALE_S

    reg = Registry(cfg())
    b = reg.find("a1")
    b.read_metrics(parse_prometheus('vllm:time_to_first_token_seconds_sum 0.0\n'
                                    'vllm:time_to_first_token_seconds_count 0.0\n'))
    b.read_metrics(parse_prometheus('vllm:time_to_first_token_seconds_sum 1.0\n'
                                    'vllm:time_to_first_token_seconds_count 10.0\n'))
    now = time.monotonic()
    assert b.expected_ttft_ms(now) == pytest.approx(100.0)
    b.observe(ttft_ms=400.0)  # the way through the gateway took longer than the backend's own figure
    assert b.ttft_ms == pytest.approx(100.0) and b.expected_ttft_ms(now) == pytest.approx(400.0)
    assert b.expected_ttft_ms(now + STALE_S + 1) is None


def test_catalog_energy_per_token_and_usage():
    j = catalog_joules_per_token("H100")
    assert j == pytest.approx(700.0 / 9805.59, rel=1e-3)
    assert catalog_joules_per_token("no-such-chip") is None
    e, c, cost = usage_of(100, 50, j, 400.0, 100.0)
    assert e == pytest.approx(60 * j)
    assert c == pytest.approx(e / 3.6e6 * 400.0) and cost == pytest.approx(e / 3.6e6 / 1000 * 100.0)


def test_sse_counter_reads_usage_or_counts_chunks_across_splits():
    stream = (b'data: {"choices":[{"delta":{"role":"assistant"}}]}\n\n'
              b'data: {"choices":[{"delta":{"content":"a"}}]}\n\ndata: {"choices":[{"delta":{"content":"b"}}]}\n\n'
              b'data: [DONE]\n\n')
    c = SseCounter()
    for i in range(0, len(stream), 7):
        c.feed(stream[i:i + 7])
    assert c.completion_tokens == 2 and c.done
    c = SseCounter()
    c.feed(b'data: {"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":4}}\n\n')
    assert (c.prompt_tokens, c.completion_tokens, c.done) == (9, 4, False)


def test_quotas_rate_and_tokens_per_minute():
    q = Quotas(parse_gateway_config({"tenants": {"t": {"rate_per_s": 1, "burst": 2, "tokens_per_min": 600}}}),
               100.0, 100, None)
    q.admit("t", now=0.0)
    q.admit("t", now=0.0)
    with pytest.raises(GatewayError) as e:
        q.admit("t", now=0.0)
    assert e.value.status == 429 and e.value.headers["Retry-After"] == "1"
    q.charge("t", 1200, now=1.0)  # 600 over budget: 60 s at 10 tokens/s
    with pytest.raises(GatewayError) as e:
        q.admit("t", now=2.0)
    assert e.value.code == "insufficient_quota" and int(e.value.headers["Retry-After"]) in (58, 59, 60)
    q.admit("t", now=70.0)
    q.admit("other", now=0.0)  # defaults: no token budget


def test_sites_take_zone_region_and_power_cap_from_the_fleet_scenario():
    from pathlib import Path

    from gridshift.data.scenario import load_scenario
    from gridshift.service.gateway.config import check_zones, with_fleet

    scenario = load_scenario(Path(__file__).resolve().parents[2] / "scenarios" / "small.yaml")
    c = parse_gateway_config({"sites": [{"name": "frankfurt", "backends": []},
                                        {"name": "own", "zone": "SE", "backends": []}]})
    c = with_fleet(c, scenario.sites, "b.yaml")
    f = c.sites[0]
    assert (f.zone, f.region, f.power_cap_kw) == ("DE-LU", "europe-west3", 200.0)
    with pytest.raises(GridShiftError) as e:
        check_zones(parse_gateway_config({"sites": [{"name": "x"}]}), "b.yaml")
    assert e.value.field == "sites.0.zone" and "no zone" in str(e.value)


def test_gateway_command_bad_backends_file_is_one_line_exit_2(tmp_path):
    from typer.testing import CliRunner

    from gridshift.cli import app

    p = tmp_path / "b.yaml"
    p.write_text("sites:\n  - name: a\n    zone: Z\n    backends:\n      - {id: x, url: 'nope', accelerator: H100}\n")
    res = CliRunner().invoke(app, ["gateway", "--backends", str(p), "--db", f"sqlite:///{tmp_path / 'db'}"])
    assert res.exit_code == 2 and "sites.0.backends.0.url" in res.output
    assert len(res.output.strip().splitlines()) == 1


# ---------------------------------------------------------------------------------------- schemathesis

import schemathesis  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402


def openai_errors(ctx, response, case):  # noqa: ARG001 (the check's signature)
    """No 500; every error answer is an OpenAI error object."""
    assert response.status_code != 500, response.text[:300]
    if response.status_code >= 400:
        body = response.json()
        assert set(body["error"]) >= {"message", "type", "param", "code"}, body


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_openapi_fuzz_no_500_and_openai_error_shapes(tmp_path, mode):
    from gridshift.service.db import upgrade
    from gridshift.service.gateway.app import GatewaySettings, create_gateway_app
    from gridshift.service.store import Store

    url = f"sqlite:///{tmp_path / 'gs.db'}"
    upgrade(url)
    with Store(url) as store:
        _, key = store.create_token("app", "tenant", "acme")
        app = create_gateway_app(store, cfg(), GatewaySettings(rate_per_s=1e6, burst=10**6), latency={})
        with TestClient(app):
            schema = schemathesis.openapi.from_asgi("/openapi.json", app)
            failures = []
            for result in schema.get_all_operations():
                op = result.ok()

                @given(case=op.as_strategy(generation_mode=mode))
                @settings(max_examples=15, deadline=None, derandomize=True, database=None,
                          suppress_health_check=list(HealthCheck))
                def run(case) -> None:
                    case.call_and_validate(headers={"Authorization": f"Bearer {key}"}, checks=[openai_errors])

                try:
                    run()
                except Unsatisfiable:
                    continue
                except Exception as exc:  # noqa: BLE001 (collect every operation's failure)
                    failures.append(f"{op.label}: {exc}")
            assert not failures, "\n\n".join(failures)


def test_accounting_keeps_negative_price_rows_and_totals(tmp_path):
    from datetime import UTC, datetime

    from prometheus_client import CollectorRegistry

    from gridshift.service.db import make_engine, upgrade
    from gridshift.service.gateway.accounting import Accounting, UsageRecord

    upgrade(f"sqlite:///{tmp_path / 'u.db'}")  # the tables come from migration 0005
    engine = make_engine(f"sqlite:///{tmp_path / 'u.db'}")
    acc = Accounting(engine, CollectorRegistry())
    e, c, cost = usage_of(10, 100, 0.07, 300.0, -20.0)  # day-ahead prices go negative
    for _ in range(2):
        acc.record(UsageRecord(datetime(2026, 1, 1, tzinfo=UTC), "t", "m", "s", "b", "H100", "interactive", "chat",
                               "ok", 10, 100, e, c, cost, 12.0, 0))
    rows = acc.totals()
    assert rows[0]["requests"] == 2 and rows[0]["cost_usd"] == pytest.approx(2 * cost) and cost < 0
    assert acc.cost.labels("t", "m")._value.get() == pytest.approx(2 * cost)
    again = Accounting(engine, CollectorRegistry())  # a restart: the totals come back from the rows
    assert again.tokens.labels("t", "m", "out")._value.get() == 200


def test_the_shedding_ramp_follows_the_fleet_sites_ramp_limit():
    """A fleet site limited to 0.5 MW/min with 200 kW for inference sheds over 24 s (200 kW at 0.5 MW/min);
    a ramp the backends file gives wins; without a ramp limit the default stays."""
    from types import SimpleNamespace

    from gridshift.service.gateway.config import with_fleet

    fleet = [SimpleNamespace(name="a", zone="DE-LU", region=None, power_cap_mw=0.2, ramp_mw_per_min=0.5),
             SimpleNamespace(name="b", zone="DE-LU", region=None, power_cap_mw=0.2, ramp_mw_per_min=0.5),
             SimpleNamespace(name="c", zone="DE-LU", region=None, power_cap_mw=0.2, ramp_mw_per_min=None)]
    c = parse_gateway_config({"sites": [{"name": "a"}, {"name": "b", "shed_ramp_s": 90}, {"name": "c"}]})
    a, b, cc = with_fleet(c, fleet, "b.yaml").sites
    assert a.shed_ramp_s == pytest.approx(24.0)
    assert b.shed_ramp_s == 90 and cc.shed_ramp_s == 300.0
