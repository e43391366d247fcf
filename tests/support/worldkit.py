"""Small hand-built worlds for engine and policy tests (no data files needed)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from gridshift.model.workload import JobTable
from gridshift.plan.base import Decision, Policy
from gridshift.world.arrays import Fleet, ServiceArrays, Signals, World


def make_fleet(counts=((4,),), *, board_w=(700.0,), idle_w=(100.0,), host_w=(0.0,), pue=None, cap_mw=None,
               n_slots=24, curve=((0.5, 1.0), (0.7, 1.0))) -> Fleet:
    """``counts[s][k]`` accelerators of type k at site s (0 = no pool)."""
    S, K = len(counts), len(counts[0])
    pool_site, pool_type, pool_count = [], [], []
    for s in range(S):
        for k in range(K):
            if counts[s][k]:
                pool_site.append(s)
                pool_type.append(k)
                pool_count.append(counts[s][k])
    pue = np.ones(S) if pue is None else np.asarray(pue, float)
    cap = np.full((S, n_slots), 1e6) if cap_mw is None else np.broadcast_to(
        np.asarray(cap_mw, float).reshape(S, -1), (S, n_slots)).copy()
    xs, ys = np.asarray(curve[0]), np.asarray(curve[1])
    return Fleet(tuple(f"s{s}" for s in range(S)), np.arange(S),
                 tuple(None for _ in range(S)), pue, cap, np.array(pool_site), np.array(pool_type),
                 np.array(pool_count), tuple(f"t{k}" for k in range(K)), np.asarray(board_w, float),
                 np.asarray(idle_w, float), np.asarray(host_w, float), tuple(xs for _ in range(K)),
                 tuple(ys for _ in range(K)))


def make_jobs(n_types=1, *, arrival_s=(0.0,), work_acc_h=(1.0,), gang=(1,), gang_min=None, deadline_s=None,
              speed=None, interruptible=None, ckpt_s=0.0, restart_s=0.0, migratable=True, data_move_gb=0.0,
              priority=None) -> JobTable:
    n = len(arrival_s)
    gang = np.broadcast_to(np.asarray(gang, np.int32), (n,)).copy()
    return JobTable(
        job_id=np.array([f"j{i}" for i in range(n)], dtype=object),
        kind=np.zeros(n, np.int8), tenant=np.array(["t"] * n, dtype=object),
        priority=np.zeros(n, np.int32) if priority is None else np.asarray(priority, np.int32),
        arrival_s=np.asarray(arrival_s, float),
        deadline_s=np.full(n, np.inf) if deadline_s is None else np.asarray(deadline_s, float),
        work_acc_h=np.broadcast_to(np.asarray(work_acc_h, float), (n,)).copy(),
        gang_min=gang.copy() if gang_min is None else np.broadcast_to(np.asarray(gang_min, np.int32), (n,)).copy(),
        gang_max=gang,
        speed=np.ones((n, n_types)) if speed is None else np.asarray(speed, float).reshape(n, n_types),
        interruptible=np.ones(n, bool) if interruptible is None else np.asarray(interruptible, bool),
        checkpoint_overhead_s=np.full(n, ckpt_s), restart_overhead_s=np.full(n, restart_s),
        migratable=np.broadcast_to(np.asarray(migratable, bool), (n,)).copy(),
        data_move_gb=np.full(n, data_move_gb), type_names=tuple(f"t{k}" for k in range(n_types)))


def make_signals(carbon, price=None, *, slot_s=3600, lookback=0, start="2023-01-01") -> Signals:
    carbon = np.atleast_2d(np.asarray(carbon, float))
    Z, LT = carbon.shape
    price = np.full_like(carbon, 50.0) if price is None else np.atleast_2d(np.asarray(price, float))
    T = LT - lookback
    starts = pd.date_range(start, periods=T, freq=pd.Timedelta(seconds=slot_s), tz="UTC")
    return Signals(tuple(f"z{z}" for z in range(Z)), starts, slot_s, lookback, carbon, price,
                   np.full_like(carbon, 0.5))


def make_world(fleet: Fleet, jobs: JobTable, signals: Signals, services: ServiceArrays | None = None) -> World:
    T = signals.n_slots
    svc = services or ServiceArrays.empty(len(fleet.type_names), fleet.n_sites, T)
    return World.build(fleet, jobs, svc, signals.slot_duration_s, signals.slot_starts)


class PauseAt(Policy):
    """Runs every active job on pool 0 with ``gang`` accelerators, except in slot ``pause_slot`` (nothing runs)."""

    name = "pause-at"

    def __init__(self, pause_slot: int = 1, gang: int = 1):
        super().__init__()
        self.pause_slot, self.gang = pause_slot, gang

    def decide(self, obs):
        if obs.t == self.pause_slot:
            return Decision.idle(obs.world)
        j = obs.active
        return Decision(j, np.zeros(j.size, np.int32), np.full(j.size, self.gang, np.int32))


def random_small_world(seed: int, *, cap_lo_mw: float = 0.002, with_price: bool = False):
    """A random small world (1-2 sites, 12-29 hourly slots, 2-11 jobs, caps from ``cap_lo_mw`` to 0.01 MW,
    some jobs non-interruptible) and its signals, for checking planners against each other."""
    rng = np.random.default_rng(seed)
    T = int(rng.integers(12, 30))
    n_sites = int(rng.integers(1, 3))
    counts = tuple((int(rng.integers(2, 7)),) for _ in range(n_sites))
    n = int(rng.integers(2, 12))
    gang = rng.integers(1, 3, n)
    arrival = np.sort(rng.uniform(0, T // 2, n)) * 3600
    work = rng.uniform(0.2, 4.0, n)
    dl = arrival + work / gang * 3600 * rng.uniform(1.5, 4.0, n) + 3 * 3600
    inter = rng.random(n) < 0.5
    fleet = make_fleet(counts, board_w=(700.0,), idle_w=(70.0,), host_w=(30.0,), pue=[1.1] * n_sites,
                       cap_mw=[[float(rng.uniform(cap_lo_mw, 0.01))] * T for _ in range(n_sites)], n_slots=T)
    jobs = make_jobs(1, arrival_s=arrival, work_acc_h=work, gang=gang, deadline_s=dl, interruptible=inter)
    carbon = rng.uniform(20, 600, (n_sites, T))
    sig = make_signals(carbon, rng.uniform(-20, 120, (n_sites, T)) if with_price else None)
    return make_world(fleet, jobs, sig), sig


def external_refs(html: str) -> list[str]:
    """src/href attributes of script, link and img tags (a self-contained page has none)."""
    from html.parser import HTMLParser

    found = []

    class P(HTMLParser):
        def handle_starttag(self, tag, attrs):
            for k, v in attrs:
                if tag in ("script", "link", "img") and k in ("src", "href") and v and not v.startswith("data:"):
                    found.append(v)

    P().feed(html)
    return found
