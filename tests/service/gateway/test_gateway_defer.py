"""Single deferrable requests: an offline request with ``X-GridShift-Deadline-S`` is held until the grid's
cleanest moment within its deadline, then answered (the official ``openai`` client, ``service_tier="flex"``);
the choice of that moment; bad deadlines; a caller hanging up while held."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import httpx
import openai
import pytest

from gridshift.model.time import utcnow
from gridshift.service.gateway.defer import (
    Gone,
    Holder,
    latest_release,
    parse_deadline,
    release_time,
)
from gridshift.service.gateway.errors import GatewayError
from gridshift.service.gateway.routing import value_at

MSG = [{"role": "user", "content": "summarise this later"}]


def test_release_is_the_earliest_moment_whose_cleanest_zone_is_cleanest():
    a = [(0.0, 300.0), (100.0, 200.0), (200.0, 50.0)]
    b = [(0.0, 250.0), (150.0, 50.0), (400.0, 10.0)]
    assert value_at(a, 99.9) == 300.0 and value_at(a, 100.0) == 200.0 and value_at(a, -1.0) is None
    assert release_time([a, b], now=10.0, latest=300.0) == (150.0, 50.0)  # b reaches 50 first; a's 50 is no better
    assert release_time([a, b], now=10.0, latest=120.0) == (100.0, 200.0)
    assert release_time([a, b], now=10.0, latest=500.0) == (400.0, 10.0)
    assert release_time([a, b], now=160.0, latest=300.0) == (160.0, 50.0)  # already at the best: now
    assert release_time([], now=5.0, latest=50.0) == (5.0, None)
    assert latest_release(1000.0, 100.0) == 1075.0  # a quarter of the window is kept to run the request
    assert latest_release(1000.0, 2.0) == 1001.0  # at least a second


def test_deadline_header_is_checked():
    assert parse_deadline(None, "interactive") is None
    assert parse_deadline("90", "offline") == 90.0
    for bad in ("0", "-5", "soon", "nan", "1e9"):
        with pytest.raises(GatewayError) as e:
            parse_deadline(bad, "offline")
        assert e.value.status == 400 and e.value.param == "X-GridShift-Deadline-S"
    with pytest.raises(GatewayError) as e:
        parse_deadline("60", "interactive")
    assert "offline" in e.value.message


def fake_forwarder(points: dict[str, list[tuple[float, float]]]) -> Any:
    site = SimpleNamespace(spec=SimpleNamespace(zone="Z1", carbon_g_per_kwh=400.0),
                           backends=[SimpleNamespace(models={"m"})])
    other = SimpleNamespace(spec=SimpleNamespace(zone="Z2", carbon_g_per_kwh=100.0),
                            backends=[SimpleNamespace(models={"other-model"})])
    return SimpleNamespace(registry=SimpleNamespace(sites={"a": site, "b": other}),
                           grid=SimpleNamespace(carbon_ahead=points))


def test_holder_waits_for_the_clean_moment_and_drops_a_caller_that_left():
    t0 = time.time()
    fwd = fake_forwarder({"Z1": [(t0 - 10, 400.0), (t0 + 0.3, 40.0)]})  # Z2's site does not serve the model
    h = Holder()
    held = asyncio.run(h.hold(fwd, "m", t0, 10.0))
    assert 0.25 <= held.seconds < 2.0 and "40 g/kWh" in held.reason
    assert (h.held, h.released) == (0, 1)

    async def gone() -> bool:
        return True

    t1 = time.time()
    fwd.grid.carbon_ahead = {"Z1": [(t1 - 10, 400.0), (t1 + 5, 40.0)]}
    with pytest.raises(Gone):
        asyncio.run(h.hold(fwd, "m", t1, 30.0, gone))
    assert time.time() - t1 < 2.0 and (h.held, h.dropped) == (0, 1)
    fwd.grid.carbon_ahead = {}  # no signals: the site's configured value, flat: at once
    assert asyncio.run(h.hold(fwd, "m", time.time(), 30.0)).seconds < 0.5


def _refresh(world: Any) -> None:
    r = httpx.post(world.gateway.base + "/gateway/refresh", timeout=20,
                   headers={"Authorization": f"Bearer {world.operator_key}"})
    assert r.status_code == 200


def test_a_flex_request_with_a_deadline_is_held_until_the_cleanest_moment(world):
    st = world.store()
    now = utcnow()
    try:  # the clean site's zone is dirty now and clean in 3 s; the others stay at their configured values
        st.upsert_signals([
            {"zone": "SE", "signal": "carbon_g_per_kwh", "at": now - timedelta(seconds=2), "value": 650.0,
             "source": "test"},
            {"zone": "SE", "signal": "carbon_g_per_kwh", "at": now + timedelta(seconds=3), "value": 30.0,
             "source": "test"}])
        _refresh(world)
        c = openai.OpenAI(base_url=world.gateway.base + "/v1", api_key=world.tenant_key, max_retries=0, timeout=60)
        t = time.monotonic()
        raw = c.chat.completions.with_raw_response.create(
            model="sim-model", messages=MSG, max_tokens=3, service_tier="flex",
            extra_headers={"X-GridShift-Deadline-S": "12"})
        waited = time.monotonic() - t
        out = raw.parse()
        assert out.usage.completion_tokens == 3 and out.choices[0].message.content.startswith("tok0")
        held = float(raw.headers["x-gridshift-held-s"])
        assert 1.5 <= held <= 9.0 and waited >= held - 0.1, (held, waited)
        assert "30 g/kWh" in raw.headers["x-gridshift-held-reason"]
        assert raw.headers["x-gridshift-site"] == "clean" and raw.headers["x-gridshift-slo-class"] == "offline"
        # the same request without a deadline is not held; an interactive one with a deadline is refused
        quick = c.chat.completions.with_raw_response.create(model="sim-model", messages=MSG, max_tokens=3,
                                                            service_tier="flex")
        assert "x-gridshift-held-s" not in quick.headers
        with pytest.raises(openai.BadRequestError) as e:
            c.chat.completions.create(model="sim-model", messages=MSG, max_tokens=3,
                                      extra_headers={"X-GridShift-Deadline-S": "12"})
        assert e.value.body["param"] == "X-GridShift-Deadline-S"
        health = httpx.get(world.gateway.base + "/gateway/health", timeout=20).json()
        assert health["deferred"]["released"] >= 1 and health["deferred"]["held"] == 0
    finally:
        st.close()


def test_a_deferred_request_whose_moment_is_now_goes_at_once(world):
    _refresh(world)  # whatever the store holds now, nothing ahead is cleaner than the clean site at 30 g/kWh
    c = openai.OpenAI(base_url=world.gateway.base + "/v1", api_key=world.tenant_key, max_retries=0, timeout=60)
    raw = c.completions.with_raw_response.create(model="sim-model", prompt="later", max_tokens=2,
                                                 extra_headers={"X-GridShift-Deadline-S": "600",
                                                                "X-GridShift-SLO": "offline"})
    assert raw.parse().usage.completion_tokens == 2
    assert float(raw.headers["x-gridshift-held-s"]) < 1.0
