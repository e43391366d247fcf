"""Ramped shedding in a grid event: a site's share of an SLO class's requests falls along a ramp (not a
cliff) that ends at the event's start, offline work first, then interactive; an emergency's response time
shortens the ramp; a request in flight is never cut."""

from __future__ import annotations

import random

import pytest

from gridshift.service.gateway.backends import Registry
from gridshift.service.gateway.config import parse_gateway_config
from gridshift.service.gateway.routing import GridView, admit_frac, event_admit_frac, plan_route

START = 1_800_000_000.0  # the event's start, UTC epoch s
RAMP = 300.0


def setup():
    sites = [{"name": "a", "zone": "ZA", "carbon_g_per_kwh": 50, "shed_ramp_s": RAMP,
              "backends": [{"id": "a1", "url": "http://x:1", "accelerator": "H100", "models": ["m"]}]},
             {"name": "b", "zone": "ZB", "carbon_g_per_kwh": 600,
              "backends": [{"id": "b1", "url": "http://x:2", "accelerator": "H100", "models": ["m"]}]}]
    c = parse_gateway_config({"sites": sites})
    reg = Registry(c)
    for b in reg.backends():
        b.healthy = True
    grid = GridView(announced={"a": [("storm", "emergency", None)]},
                    event_timing={"storm": (START - 3600, START, None)}, shed_stages=2)
    return c, reg, grid


def share_at(c, reg, grid, slo_class: str, wall: float, n: int = 2000, seed: int = 1) -> float:
    rng = random.Random(seed)
    hits = sum(plan_route(reg, grid, "m", slo_class, c.slo[slo_class], region=None, residency=None, now=0,
                          wall=wall, rng=rng).order[:1] == ["a"] for _ in range(n))
    return hits / n


def test_admitted_share_ramps_offline_first_then_interactive():
    c, reg, grid = setup()
    # offline ramps over [start - 600, start - 300], interactive over [start - 300, start]
    times = [START - 2 * RAMP + k * RAMP / 5 for k in range(11)]
    off = [share_at(c, reg, grid, "offline", t) for t in times]
    inter = [share_at(c, reg, grid, "interactive", t) for t in times]
    expect_off = [admit_frac(t - (START - 2 * RAMP), RAMP, 0) for t in times]
    expect_int = [admit_frac(t - (START - 2 * RAMP), RAMP, 1) for t in times]
    assert expect_off[:6] == pytest.approx([1.0, 0.8, 0.6, 0.4, 0.2, 0.0])
    for got, want in zip(off + inter, expect_off + expect_int):
        assert got == pytest.approx(want, abs=0.04)  # 2,000 draws: a few points of sampling noise at most
    assert sum(0.1 < s < 0.9 for s in off) >= 3  # a ramp, not a cliff
    assert all(s == 1.0 for s in inter[:6]) and inter[-1] == 0.0  # interactive goes only after offline
    # requests the site turns away go to the next site by score, with the reason
    plan = plan_route(reg, grid, "m", "offline", c.slo["offline"], region=None, residency=None, now=0,
                      wall=START - 1.5 * RAMP, rng=random.Random(3))
    tries = [plan_route(reg, grid, "m", "offline", c.slo["offline"], region=None, residency=None, now=0,
                        wall=START - 1.5 * RAMP, rng=random.Random(s)) for s in range(20)]
    away = next(p for p in tries if p.order == ["b"])
    a = next(s for s in away.sites if s.site == "a")
    assert a.excluded_by == "grid_event" and "50% of requests still admitted" in a.reason and a.admit_frac == 0.5
    assert plan.order[-1] == "b"
    # the explaining route (no draw) shows the share without excluding the site
    why = plan_route(reg, grid, "m", "offline", c.slo["offline"], region=None, residency=None, now=0,
                     wall=START - 1.5 * RAMP)
    assert why.order == ["a", "b"] and why.sites[0].admit_frac == 0.5


def test_short_notice_and_emergency_response_time_shape_the_ramp():
    # 60 s notice: the ramp starts when the event is known and runs past its start
    assert event_admit_frac((START - 60, START, None), RAMP, 2, 0, START - 60) == 1.0
    assert event_admit_frac((START - 60, START, None), RAMP, 2, 0, START + 90) == pytest.approx(0.5)
    assert event_admit_frac((START - 60, START, None), RAMP, 2, 1, START + 90) == 1.0
    # an emergency to be met 120 s after its start, no notice: both stages fit into those 120 s
    emerg = (START, START, 120.0)
    assert event_admit_frac(emerg, RAMP, 2, 0, START + 30) == pytest.approx(0.5)
    assert event_admit_frac(emerg, RAMP, 2, 1, START + 90) == pytest.approx(0.5)
    assert event_admit_frac(emerg, RAMP, 2, 1, START + 120) == 0.0
    # a site with no ramp (0 s) sheds at once; an event without timing sheds at once
    assert event_admit_frac((START - 3600, START, None), 0.0, 2, 0, START) == 0.0
    assert event_admit_frac(None, RAMP, 2, 0, START) == 0.0
    with pytest.raises(Exception, match="shed_ramp_s"):
        parse_gateway_config({"sites": [{"name": "a", "zone": "Z", "shed_ramp_s": -1}]})
