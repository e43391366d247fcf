"""``gridshift gateway`` end to end against simulated backends (separate processes on loopback, one per site),
through the official ``openai`` client: routing by the grid, the OpenAI error shapes, quotas, failover,
backends dying or stalling mid-stream, the SLO, residency, power and grid-event filters, signals from the
store, operator routes and accounting that survives a restart."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import httpx
import openai
import pytest

from gridshift.model.events import GridEvent
from gridshift.model.time import utcnow
from gridshift.service.gateway.backends import catalog_joules_per_token

MSG = [{"role": "user", "content": "hello there"}]


def client(world: Any, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=world.gateway.base + "/v1", api_key=key or world.tenant_key, max_retries=0,
                         timeout=20)


def op(world: Any, method: str, path: str, **kw: Any) -> httpx.Response:
    return httpx.request(method, world.gateway.base + path, headers={"Authorization": f"Bearer {world.operator_key}"},
                         timeout=20, **kw)


def refresh(world: Any) -> None:
    assert op(world, "POST", "/gateway/refresh").status_code == 200


@pytest.fixture(autouse=True)
def calm(world: Any) -> None:
    """Every backend well and fast, the gateway's view fresh, before each test."""
    for p in world.backends.values():
        p.post("/sim/knobs", {"fail_status": None, "fail_count": -1, "slow_factor": 1.0, "die_after_tokens": None,
                              "stall_after_tokens": None, "unhealthy": False, "report_energy": False})
    refresh(world)


def chat(world: Any, key: str | None = None, **kw: Any) -> Any:
    return client(world, key).chat.completions.with_raw_response.create(
        model="sim-model", messages=MSG, max_tokens=kw.pop("max_tokens", 6), **kw)


def test_chat_goes_to_the_cleanest_feasible_site_and_says_why(world):
    raw = chat(world)
    out = raw.parse()
    assert raw.headers["x-gridshift-site"] == "clean"
    assert raw.headers["x-gridshift-backend"] in ("clean-1", "clean-2")
    assert out.choices[0].message.content.startswith("tok0 tok1")
    assert out.usage.completion_tokens == 6
    assert "carbon=0.000" in raw.headers["x-gridshift-score-terms"]
    assert "dirty:" in raw.headers["x-gridshift-other-sites"]
    why = op(world, "GET", "/gateway/route", params={"model": "sim-model"}).json()
    assert why["order"][0] == "clean"
    by = {s["site"]: s for s in why["sites"]}
    assert by["clean"]["score"] < by["far"]["score"] < by["dirty"]["score"]
    assert by["far"]["rtt_ms"] == 150


def test_streams_completions_embeddings_and_models_through_the_openai_client(world):
    c = client(world)
    pieces = [ch.choices[0].delta.content for ch in c.chat.completions.create(
        model="sim-model", messages=MSG, max_tokens=5, stream=True) if ch.choices and ch.choices[0].delta.content]
    assert pieces == [f"tok{i} " for i in range(5)]
    text = "".join(ch.choices[0].text for ch in c.completions.create(model="sim-model", prompt="hi", max_tokens=4,
                                                                     stream=True) if ch.choices)
    assert text == "tok0 tok1 tok2 tok3 "
    assert c.completions.create(model="sim-model", prompt="hi", max_tokens=3).choices[0].text == "tok0 tok1 tok2 "
    emb = c.embeddings.create(model="sim-model", input=["a", "bb"])
    assert len(emb.data) == 2 and len(emb.data[0].embedding) == 8
    assert [m.id for m in c.models.list()] == ["sim-model"]


def test_openai_style_errors(world):
    c = client(world)
    with pytest.raises(openai.NotFoundError) as e:
        c.chat.completions.create(model="no-such-model", messages=MSG)
    assert e.value.body["code"] == "model_not_found" and "sim-model" in e.value.body["message"]
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model="sim-model", messages=[])
    assert e.value.body["param"] == "messages"
    with pytest.raises(openai.AuthenticationError):
        client(world, "gs_nope_nope").chat.completions.create(model="sim-model", messages=MSG)
    big = httpx.post(world.gateway.base + "/v1/chat/completions", content=b"x" * (2 << 20),
                     headers={"Authorization": f"Bearer {world.tenant_key}", "Content-Type": "application/json"})
    assert big.status_code == 413 and big.json()["error"]["type"] == "invalid_request_error"
    bad = httpx.post(world.gateway.base + "/v1/chat/completions", content=b"{not json",
                     headers={"Authorization": f"Bearer {world.tenant_key}", "Content-Type": "application/json"})
    assert bad.status_code == 400 and set(bad.json()["error"]) == {"message", "type", "param", "code"}


def test_the_hot_path_answers_ordinary_requests_and_hands_the_rest_to_the_routes(world):
    def counts() -> dict[str, int]:
        return httpx.get(world.gateway.base + "/gateway/health", timeout=20).json()["requests_by_path"]

    def post(body: Any, key: str | None = None, ctype: str = "application/json") -> httpx.Response:
        return httpx.post(world.gateway.base + "/v1/chat/completions", content=json.dumps(body), timeout=20,
                          headers={"Authorization": f"Bearer {key or world.tenant_key}", "Content-Type": ctype})

    good = {"model": "sim-model", "messages": MSG, "max_tokens": 2}
    assert post(good).status_code == 200  # the token is in the cache from here on
    c0 = counts()
    r = post({**good, "service_tier": "flex"})
    assert r.status_code == 200 and r.headers["x-gridshift-slo-class"] == "offline"
    assert r.json()["usage"]["completion_tokens"] == 2
    unknown = post({**good, "model": "no-such-model"})  # valid body: the hot path answers, in the same shape
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
    c1 = counts()
    assert (c1["hot"] - c0["hot"], c1["routes"] - c0["routes"]) == (2, 0)
    bad = post({"model": "sim-model", "messages": [], "max_tokens": 2})  # does not validate: the routes answer
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "messages"
    plain = post(good, ctype="text/plain")  # FastAPI reads a JSON body only when it is labelled JSON
    assert plain.status_code == 400 and plain.json()["error"]["code"] == "invalid_value"
    assert post(good, key="gs_nope_nope").status_code == 401
    c2 = counts()
    assert (c2["hot"] - c1["hot"], c2["routes"] - c1["routes"]) == (0, 3)


def test_tenant_rate_quota_answers_429_with_retry_after(world):
    key = world.other_keys["tiny"]
    chat(world, key)
    with pytest.raises(openai.RateLimitError) as e:
        chat(world, key)
    assert int(e.value.response.headers["Retry-After"]) >= 1
    assert "tiny" in e.value.body["message"]


def test_residency_filter_and_503_naming_each_sites_filter(world):
    assert chat(world, world.other_keys["eu-only"]).headers["x-gridshift-site"] in ("clean", "dirty")
    with pytest.raises(openai.InternalServerError) as e:
        chat(world, world.other_keys["nowhere"])
    assert e.value.status_code == 503
    assert {s: v["excluded_by"] for s, v in e.value.body["sites"].items()} == {
        "dirty": "residency", "clean": "residency", "far": "residency"}
    assert "clean: residency" in e.value.body["message"]


@pytest.mark.parametrize("status", [500, 429, 503])
def test_failover_to_the_next_site_and_back_when_it_recovers(world, status):
    for name in ("clean", "clean2"):
        world.backends[name].post("/sim/knobs", {"fail_status": status})
    raw = chat(world)
    assert raw.headers["x-gridshift-site"] == "far"  # the next site by score (clean < far < dirty)
    assert raw.headers["x-gridshift-failovers"] == "1"
    for name in ("clean", "clean2"):
        world.backends[name].post("/sim/knobs", {"fail_status": None})
    time.sleep(1.2)  # cooldown_s (429: the backend's Retry-After of 1 s)
    assert chat(world).headers["x-gridshift-site"] == "clean"


def test_backend_dying_mid_stream_gives_an_error_event_not_a_hang(world):
    for name in ("clean", "clean2"):
        world.backends[name].post("/sim/knobs", {"die_after_tokens": 3})
    got = []
    t = time.monotonic()
    with pytest.raises(openai.APIError) as e:
        for ch in client(world).chat.completions.create(model="sim-model", messages=MSG, max_tokens=8, stream=True):
            if ch.choices and ch.choices[0].delta.content:
                got.append(ch.choices[0].delta.content)
    assert got == ["tok0 ", "tok1 ", "tok2 "]
    assert "mid-stream" in str(e.value) or "ended the stream early" in str(e.value)
    assert time.monotonic() - t < 5
    time.sleep(1.1)


def test_backend_stalling_mid_stream_times_out_with_an_error_event(world):
    for name in ("clean", "clean2"):
        world.backends[name].post("/sim/knobs", {"stall_after_tokens": 2})
    t = time.monotonic()
    with pytest.raises(openai.APIError):
        for _ in client(world).chat.completions.create(model="sim-model", messages=MSG, max_tokens=8, stream=True):
            pass
    assert 1.4 < time.monotonic() - t < 6  # stream_idle_timeout_s = 1.5
    time.sleep(1.1)


def _direct(world: Any, name: str, n: int = 1) -> None:
    for _ in range(n):
        httpx.post(world.backends[name].base + "/v1/chat/completions", timeout=30,
                   json={"model": "sim-model", "messages": MSG, "max_tokens": 2})


def test_slo_filter_excludes_a_site_whose_measured_ttft_is_too_slow(world):
    for name in ("clean", "clean2"):
        world.backends[name].post("/sim/knobs", {"slow_factor": 120})  # TTFT 10 ms x 120 = 1.2 s > 1 s
        _direct(world, name)
    refresh(world)
    try:
        why = op(world, "GET", "/gateway/route", params={"model": "sim-model"}).json()
        clean = next(s for s in why["sites"] if s["site"] == "clean")
        assert clean["excluded_by"] == "slo" and "TTFT" in clean["reason"]
        assert chat(world).headers["x-gridshift-site"] == "far"
        assert chat(world, extra_headers={"X-GridShift-SLO": "offline"}).headers["x-gridshift-site"] == "clean"
    finally:
        for name in ("clean", "clean2"):
            world.backends[name].post("/sim/knobs", {"slow_factor": 1.0})
            _direct(world, name, 2)
        refresh(world)
    assert chat(world).headers["x-gridshift-site"] == "clean"


def test_a_backend_timing_out_fails_over_to_the_next_site(world):
    for name in ("clean", "clean2"):
        world.backends[name].post("/sim/knobs", {"slow_factor": 400})  # TTFT 4 s > request_timeout_s 3 s
    t = time.monotonic()
    raw = chat(world)
    try:
        assert raw.headers["x-gridshift-site"] == "far" and raw.headers["x-gridshift-failovers"] == "1"
        assert 2.9 < time.monotonic() - t < 8
    finally:
        for name in ("clean", "clean2"):
            world.backends[name].post("/sim/knobs", {"slow_factor": 1.0})
        time.sleep(1.5)  # the abandoned slow request finishes (its TTFT lands in the backend's histogram)
        refresh(world)
        for name in ("clean", "clean2"):
            _direct(world, name, 2)
        refresh(world)
    assert chat(world).headers["x-gridshift-site"] == "clean"


def test_grid_event_sheds_offline_work_and_its_limit_leaves_no_power_headroom(world):
    st = world.store()
    now = utcnow()
    try:
        st.add_grid_event(GridEvent(id="gw-limit", kind="limit", sites=["clean"], start=now - timedelta(minutes=1),
                                    end=now + timedelta(hours=1), limit_mw=50.0), source="test")
        refresh(world)
        assert chat(world, extra_headers={"X-GridShift-SLO": "offline"}).headers["x-gridshift-site"] != "clean"
        assert chat(world).headers["x-gridshift-site"] == "clean"  # interactive: not shed by a limit event
        st.cancel_grid_event("gw-limit")
        st.add_grid_event(GridEvent(id="gw-tight", kind="limit", sites=["clean"], start=now - timedelta(minutes=1),
                                    end=now + timedelta(hours=1), limit_mw=0.0001), source="test")
        refresh(world)
        why = op(world, "GET", "/gateway/route", params={"model": "sim-model"}).json()
        clean = next(s for s in why["sites"] if s["site"] == "clean")
        assert clean["excluded_by"] == "power" and clean["headroom_kw"] < 0
        assert chat(world).headers["x-gridshift-site"] != "clean"
    finally:
        for ev in ("gw-limit", "gw-tight"):
            try:
                st.cancel_grid_event(ev)
            except Exception:  # noqa: BLE001 (one of them may not exist)
                pass
        st.close()
        refresh(world)
    assert chat(world).headers["x-gridshift-site"] == "clean"


def test_announced_event_ramps_offline_work_away_from_the_site(world):
    """An event starting in 450 s, announced an hour ahead: offline work is halfway down its ramp at the
    site (ramp 300 s per class, two classes: it began 600 s before the start), interactive not yet shed."""
    st = world.store()
    now = utcnow()
    try:
        st.add_grid_event(GridEvent(id="gw-ramp", kind="limit", sites=["clean"], start=now + timedelta(seconds=450),
                                    end=now + timedelta(hours=1), limit_mw=50.0), source="test")
        refresh(world)
        why = op(world, "GET", "/gateway/route", params={"model": "sim-model", "slo": "offline"}).json()
        clean = next(s for s in why["sites"] if s["site"] == "clean")
        assert clean["excluded_by"] is None and 0.45 < clean["admit_frac"] < 0.5
        sites = [chat(world, extra_headers={"X-GridShift-SLO": "offline"}).headers["x-gridshift-site"]
                 for _ in range(40)]
        assert 8 <= sites.count("clean") <= 32 and len(set(sites)) >= 2  # about half stay, the rest move
        assert {chat(world).headers["x-gridshift-site"] for _ in range(10)} == {"clean"}
    finally:
        st.cancel_grid_event("gw-ramp")
        st.close()
        refresh(world)


def test_carbon_signal_from_the_store_moves_the_route(world):
    st = world.store()
    at = utcnow().replace(microsecond=0) - timedelta(minutes=5)
    try:
        st.upsert_signals([{"zone": "SE", "signal": "carbon_g_per_kwh", "at": at, "value": 900.0, "source": "test"}])
        refresh(world)
        assert chat(world).headers["x-gridshift-site"] == "far"
    finally:
        st.upsert_signals([{"zone": "SE", "signal": "carbon_g_per_kwh", "at": at, "value": 30.0, "source": "test"}])
        st.close()
        refresh(world)
    assert chat(world).headers["x-gridshift-site"] == "clean"


def test_operator_adds_and_removes_a_backend(world):
    far = world.backends["far"].base
    r = op(world, "POST", "/gateway/backends", json={"site": "far", "backend": {
        "id": "far-2", "url": far, "accelerator": "B200"}})
    assert r.status_code == 201 and r.json()["healthy"] and r.json()["models"] == ["sim-model"]
    listed = {b["id"]: b for b in op(world, "GET", "/gateway/backends").json()["backends"]}
    assert listed["far-2"]["joules_per_token_source"] == "catalog"
    assert op(world, "POST", "/gateway/backends", json={"site": "mars", "backend": {
        "id": "x", "url": far, "accelerator": "B200"}}).status_code == 404
    with pytest.raises(openai.PermissionDeniedError):
        client(world).post("/../gateway/backends", body={}, cast_to=httpx.Response)
    assert op(world, "DELETE", "/gateway/backends/far-2").status_code == 204
    assert "far-2" not in {b["id"] for b in op(world, "GET", "/gateway/backends").json()["backends"]}


def _batch_file(c: openai.OpenAI, n: int) -> str:
    lines = [json.dumps({"custom_id": f"req-{i}", "method": "POST", "url": "/v1/chat/completions",
                         "body": {"model": "sim-model", "messages": MSG, "max_tokens": 3 + i}}) for i in range(n)]
    return c.files.create(file=("in.jsonl", ("\n".join(lines) + "\n").encode()), purpose="batch").id


def test_batch_api_runs_offline_requests_and_writes_the_output_file(world):
    c = client(world)
    batch = c.batches.create(input_file_id=_batch_file(c, 3), endpoint="/v1/chat/completions",
                             completion_window="24h")
    end = time.monotonic() + 20
    while batch.status not in ("completed", "failed", "expired") and time.monotonic() < end:
        time.sleep(0.3)
        batch = c.batches.retrieve(batch.id)
    assert batch.status == "completed" and batch.request_counts.completed == 3
    out = [json.loads(x) for x in c.files.content(batch.output_file_id).text.splitlines()]
    by = {o["custom_id"]: o["response"]["body"] for o in out}
    assert by["req-2"]["usage"]["completion_tokens"] == 5
    assert [b.id for b in c.batches.list()][0] == batch.id
    with pytest.raises(openai.BadRequestError):
        c.batches.create(input_file_id=batch.input_file_id, endpoint="/v1/chat/completions", completion_window="2d")


def test_batch_is_deferred_to_the_cleanest_hour_of_its_window(world):
    st = world.store()
    soon = utcnow().replace(minute=0, second=0, microsecond=0) + timedelta(hours=3)
    try:
        st.upsert_signals([{"zone": "PL", "signal": "carbon_g_per_kwh", "at": soon, "value": 1.0, "source": "test"}])
        c = client(world)
        batch = c.batches.create(input_file_id=_batch_file(c, 1), endpoint="/v1/chat/completions",
                                 completion_window="24h")
        raw = batch.model_extra or {}
        assert raw["gridshift_start_at"] == int(soon.timestamp()) and "1 g/kWh" in raw["gridshift_start_reason"]
        time.sleep(2.5)  # the batch clock has looked: not yet
        assert c.batches.retrieve(batch.id).status == "validating"
        assert c.batches.cancel(batch.id).status == "cancelled"
        # a window that ends before the clean hour: it starts at once
        batch = c.batches.create(input_file_id=_batch_file(c, 1), endpoint="/v1/chat/completions",
                                 completion_window="2h")
        assert (batch.model_extra or {})["gridshift_start_at"] < int(soon.timestamp())
        end = time.monotonic() + 20
        while c.batches.retrieve(batch.id).status != "completed" and time.monotonic() < end:
            time.sleep(0.3)
        assert c.batches.retrieve(batch.id).status == "completed"
    finally:
        st.upsert_signals([{"zone": "PL", "signal": "carbon_g_per_kwh", "at": soon, "value": 700.0, "source": "test"}])
        st.close()


def _usage(world: Any) -> dict[tuple[str, str], dict[str, Any]]:
    rows = op(world, "GET", "/gateway/usage", params={"by": "site"}).json()["usage"]
    return {(r["tenant"], r["site"]): r for r in rows}


def test_accounting_counts_tokens_energy_carbon_and_survives_a_restart(world):
    before = _usage(world).get(("acme", "clean"))
    n0 = before["completion_tokens"] if before else 0
    for _ in range(3):
        chat(world, max_tokens=10)
    time.sleep(0.7)  # the writer's flush interval
    after = _usage(world)[("acme", "clean")]
    assert after["completion_tokens"] - n0 == 30
    j = catalog_joules_per_token("H100")
    assert after["energy_j"] == pytest.approx((after["completion_tokens"] + 0.1 * after["prompt_tokens"]) * j,
                                              rel=1e-6)
    assert after["carbon_g"] == pytest.approx(after["energy_j"] / 3.6e6 * 30.0, rel=1e-6)
    world.restart()
    assert _usage(world)[("acme", "clean")] == after
    metrics = op(world, "GET", "/metrics").text
    line = next(ln for ln in metrics.splitlines() if ln.startswith("gridshift_gateway_tokens_total{")
                and 'tenant="acme"' in ln and 'direction="out"' in ln)
    total_out = sum(r["completion_tokens"] for (t, _), r in _usage(world).items() if t == "acme")
    assert float(line.rsplit(" ", 1)[1]) == total_out


def test_energy_a_backend_reports_per_request_is_what_is_accounted(world):
    key = world.other_keys["eu-only"]  # its own tenant: the catalog-based totals of the test above stay apart
    for p in world.backends.values():
        p.post("/sim/knobs", {"report_energy": True})
    try:
        before = _usage(world).get(("eu-only", "clean"), {}).get("energy_j", 0.0)
        r = httpx.post(world.gateway.base + "/v1/chat/completions", timeout=20,
                       headers={"Authorization": f"Bearer {key}"},
                       json={"model": "sim-model", "messages": MSG, "max_tokens": 4})
        e1 = r.json()["usage"]["energy_joules"]
        e2 = None
        with httpx.stream("POST", world.gateway.base + "/v1/chat/completions", timeout=20,
                          headers={"Authorization": f"Bearer {key}"},
                          json={"model": "sim-model", "messages": MSG, "max_tokens": 4, "stream": True,
                                "stream_options": {"include_usage": True}}) as s:
            for line in s.iter_lines():
                if line.startswith("data: {") and '"usage"' in line:
                    e2 = json.loads(line[6:])["usage"]["energy_joules"]
        assert r.headers["x-gridshift-site"] == "clean" and e1 > 0 and e2 is not None and e2 > 0
        time.sleep(0.7)  # the writer's flush interval
        after = _usage(world)[("eu-only", "clean")]
        assert after["energy_j"] - before == pytest.approx(e1 + e2, rel=1e-6)
        u = r.json()["usage"]  # what the catalog would have given instead:
        estimate = (u["completion_tokens"] + 0.1 * u["prompt_tokens"]) * catalog_joules_per_token("H100")
        assert abs(e1 - estimate) > 1e-3 * estimate
    finally:
        for p in world.backends.values():
            p.post("/sim/knobs", {"report_energy": False})
