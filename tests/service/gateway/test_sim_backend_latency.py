"""The simulated backend reports the latency its own load model gives, not how long a busy host took."""

from __future__ import annotations

import argparse
import asyncio

import httpx
import pytest

from gridshift.testing import sim_backend


def _sim(capacity: int = 4) -> sim_backend.Sim:
    return sim_backend.Sim(argparse.Namespace(model=["m"], ttft_ms=20.0, itl_ms=1.0, capacity=capacity,
                                              idle_w=100.0, full_w=700.0))


@pytest.mark.parametrize("stream", [True, False])
def test_ttft_histogram_is_the_modelled_latency_on_a_busy_host(monkeypatch: pytest.MonkeyPatch, stream: bool) -> None:
    real_sleep = asyncio.sleep

    async def late_sleep(delay: float, *a: object) -> None:  # a busy host wakes every sleeper 60 ms late
        await real_sleep(delay + (0.06 if delay > 0 else 0.0), *a)

    monkeypatch.setattr(sim_backend.asyncio, "sleep", late_sleep)
    sim = _sim()

    async def go() -> None:
        transport = httpx.ASGITransport(app=sim_backend.make_app(sim))
        async with httpx.AsyncClient(transport=transport, base_url="http://sim") as c:
            r = await c.post("/v1/chat/completions", json={"model": "m", "max_tokens": 2, "stream": stream,
                                                           "messages": [{"role": "user", "content": "hi"}]})
            assert r.status_code == 200

    asyncio.run(go())
    assert sim.ttft.count == 1
    # one request running of 4: 20 ms x (1 + 1/4); the host's 60 ms lateness is not the backend's latency
    assert sim.ttft.sum == pytest.approx(0.025)
    assert sim.itl.sum == pytest.approx(0.00125)
