"""Tier rules ahead of a known grid event: work of the tiers an event may not pause, started in the slot before
the event, is pinned during it; the planners start it only within what the event's limit leaves after the
tier-0 work still waiting, so that tier-0 work is not kept from starting by work that agreed to pay."""

import numpy as np
import pandas as pd
import pytest

from gridshift.model.events import GridEvent
from gridshift.plan.asap import Asap
from gridshift.plan.threshold import Threshold
from gridshift.sim.engine import simulate
from gridshift.world.arrays import ServiceArrays, World
from gridshift.world.events import build_events
from worldkit import make_fleet, make_jobs, make_signals

H = 3600.0


def _world(with_event: bool) -> tuple[World, object]:
    T = 8
    fleet = make_fleet(((16,),), n_slots=T)
    sig = make_signals(np.full(T, 300.0))
    # B: tier 3, 12 accelerators from the start; A: tier 0, 8 accelerators, arrives at 02:10 (does not fit
    # before B's accelerators are free); C: tier 1, 4 accelerators, arrives at 02:20 (fits at once)
    jobs = make_jobs(arrival_s=[0.0, 2 * H + 600, 2 * H + 1200], work_acc_h=[12 * 7.0, 8 * 3.0, 4 * 3.0],
                     gang=[12, 8, 4])
    jobs.tier = np.array([3, 0, 1], np.int8)
    # room for A's 8 busy accelerators (8 × 600 W over 16 × 100 W idle, with the 2 % margin), not for C too
    return _with_event(fleet, jobs, sig, 3, 6, 0.0066 if with_event else None)


def _with_event(fleet, jobs, sig, start_h: float, end_h: float, limit_mw: float | None) -> tuple[World, object]:
    """The world of ``jobs`` on ``fleet``, with a limit event at site s0 known a day ahead (None: no event)."""
    events = None
    if limit_mw is not None:
        start = sig.slot_starts[0]
        ev = GridEvent(id="e", kind="limit", sites=["s0"], start=start + pd.Timedelta(hours=start_h),
                       end=start + pd.Timedelta(hours=end_h), notice_s=86400, limit_mw=limit_mw)
        events = build_events([ev], start=start, site_names=("s0",), site_zones=("z0",),
                              site_ramp_mw_per_min=(None,), margin_frac=0.02)
    svc = ServiceArrays.empty(1, 1, sig.n_slots)
    return World.build(fleet, jobs, svc, sig.slot_duration_s, sig.slot_starts, events), sig


def _first_start_h(run, w) -> np.ndarray:
    return ((run.jobs["first_start"] - w.slot_starts[0]).dt.total_seconds() / H).to_numpy()


@pytest.mark.parametrize("policy", [Asap, Threshold])
def test_tier_one_work_waits_for_tier_zero_ahead_of_an_event(policy):
    w0, sig = _world(False)
    free = _first_start_h(simulate(w0, sig, policy()), w0)
    assert free[2] == pytest.approx(2 + 1 / 3)  # without the event C starts at its arrival, A when B is done
    w, sig = _world(True)
    run = simulate(w, sig, policy())
    starts = _first_start_h(run, w)
    assert starts[1] == pytest.approx(3.0)  # A starts when the event does (B paused, nothing pinned in its way)
    assert starts[2] >= 3.0  # C did not start in the hour before the event
    (e,) = run.metrics["events"]
    assert e["compliance_frac"] >= 0.99


def _notice_world(with_event: bool) -> tuple[World, object]:
    T = 14
    fleet = make_fleet(((16,),), n_slots=T)
    sig = make_signals(np.full(T, 300.0))
    # four long tier-1 jobs (4 accelerators, 8 h each) arriving at 01:00 and 02:00, hours before an event from
    # 06:00 to 09:00 known from the start; a short one (1 h) at 03:00 that ends before the event
    jobs = make_jobs(arrival_s=[H, H, 2 * H, 2 * H, 3 * H], work_acc_h=[32.0] * 4 + [4.0], gang=4)
    jobs.tier = np.ones(5, np.int8)
    # 16 × 100 W idle; a tier-1 accelerator capped as far as its tier allows (10 % of its throughput) draws
    # ~483 W over idle: with the 2 % margin, room for two of the long jobs, not three
    return _with_event(fleet, jobs, sig, 6, 9, 0.0058 if with_event else None)


@pytest.mark.parametrize("policy", [Asap, Threshold])
def test_long_pinned_work_is_held_over_the_whole_notice(policy):
    w0, sig = _notice_world(False)
    free = _first_start_h(simulate(w0, sig, policy()), w0)
    assert free[:4] == pytest.approx([1.0, 1.0, 2.0, 2.0])  # without the event all four start at arrival
    w, sig = _notice_world(True)
    run = simulate(w, sig, policy())
    starts = _first_start_h(run, w)
    assert starts[:2] == pytest.approx([1.0, 1.0])  # within the event's budget
    assert np.all(starts[2:4] >= 6.0)  # would still run at the event beyond its budget: held, hours ahead
    assert starts[4] == pytest.approx(3.0)  # ends before the event: starts at once
    (e,) = run.metrics["events"]
    assert e["compliance_frac"] >= 0.99
