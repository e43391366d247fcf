"""The reconciler's pure core: the live state as the simulator's arrays, a policy's decision as executor
actions, and the numbers a plan and the metrics report. No database and no executor here.

The planning world of one pass is the simulator's world over ``[slot start, slot start + horizon)``: the
fleet, signals and grid events are built with the same helpers :func:`gridshift.world.build.assemble` uses,
the live jobs become a :class:`~gridshift.model.workload.JobTable` as inline jobs would, and the current
slot is slot 0. A policy therefore sees exactly what the simulator would show it in its first slot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from gridshift.world.build import (
    accelerator_types as _types,
    build_fleet as _fleet,
    build_services as _services,
    lookback_slots as _lookback,
    zone_signals as _zone_signals,
)
from gridshift.catalog import load_catalog
from gridshift.errors import DataError, PlanError, ScenarioError
from gridshift.model.events import GridEvent
from gridshift.model.scenario import Scenario, TimeRange
from gridshift.model.workload import Job
from gridshift.plan.base import Decision, Observation
from gridshift.plan.placement import base_site_mw, batch_increment_mw
from gridshift.world import accounting as acc
from gridshift.sim.engine import check_decision
from gridshift.world.events import apply_signal_events, build_events
from gridshift.world.arrays import ServiceArrays, Signals, World
from gridshift.workloads.batch import jobs_to_table
from gridshift.workloads.build import DEFAULT_REFERENCE, speed_matrix

SIGNAL_NAMES = ("carbon_g_per_kwh", "price_usd_per_mwh")
SIGNAL_HOLD_S = 3600.0  # a stored signal value stands for at most this long after its time
RUNNING, PAUSED = "running", "paused"
WAITING = ("queued", "planned")


# ------------------------------------------------------------------------------------------ inputs

@dataclass(frozen=True)
class LiveJob:
    """One non-final job as the reconciler sees it: the planner's :class:`Job` (arrival no later than now),
    its status, its placement (site, accelerator type, gang, power-cap fraction) while running or paused,
    the executor's progress (0 … 1) and whether it may start now (not waiting for a retry)."""

    job: Job
    status: str
    site: str | None = None
    accelerator: str | None = None
    gang: int | None = None
    power_cap_frac: float | None = None
    progress_frac: float | None = None
    ready: bool = True


@dataclass(frozen=True)
class Action:
    """One executor action for one job; start and resume carry the placement."""

    job_id: str
    kind: str  # start | resume | pause | set_power_cap
    site: str | None = None
    accelerator: str | None = None
    gang: int | None = None
    power_cap_frac: float | None = None


def as_utc(t: datetime) -> datetime:
    """``t`` as timezone-aware UTC (naive times are taken as UTC)."""
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)


def floor_time(t: datetime, slot_s: int) -> datetime:
    """``t`` (UTC) rounded down to a whole slot since the epoch."""
    sec = as_utc(t).timestamp()
    return datetime.fromtimestamp(sec - sec % slot_s, timezone.utc)


def planning_scenario(fleet: Scenario, t0: datetime, slot_s: int, n_slots: int,
                      events: Sequence[GridEvent] = ()) -> Scenario:
    """``fleet`` over ``[t0, t0 + n_slots × slot_s)`` with ``events``; of its workloads only the inference
    services are kept (batch jobs come from the live state)."""
    tr = TimeRange(start=t0, end=t0 + timedelta(seconds=n_slots * slot_s))
    wl = fleet.workloads.model_copy(update={"jobs": [], "generate": None, "recurring": [], "workday": []})
    return fleet.model_copy(update={"time_range": tr, "slot_duration_s": int(slot_s), "events": list(events),
                                    "workloads": wl})


def clip_events(events: Sequence[GridEvent], start: datetime, end: datetime) -> list[GridEvent]:
    """Events overlapping ``[start, end)``, cut to it. A cut start keeps the time the event was issued
    (its notice grows by the part cut off)."""
    out = []
    for e in events:
        if e.end <= start or e.start >= end:
            continue
        s, t = max(e.start, start), min(e.end, end)
        out.append(e.model_copy(update={"start": s, "end": t,
                                        "notice_s": e.notice_s + (s - e.start).total_seconds()}))
    return out


def overlay_points(values: np.ndarray, slot_starts: pd.DatetimeIndex, slot_s: int,
                   points: Sequence[tuple[datetime, float]], hold_s: float = SIGNAL_HOLD_S) -> np.ndarray:
    """``values`` per slot with stored points laid over: each slot takes the newest point before the slot
    ends, if that point is less than ``hold_s`` old at the slot's start."""
    if not points:
        return values
    at = pd.DatetimeIndex([pd.Timestamp(p[0]) for p in points]).tz_convert("UTC")
    order = np.argsort(at.asi8, kind="stable")
    at_ns, v = at.asi8[order], np.array([float(p[1]) for p in points])[order]
    start_ns = slot_starts.asi8
    idx = np.searchsorted(at_ns, start_ns + int(slot_s * 1e9), side="left") - 1
    ok = idx >= 0
    ok[ok] = start_ns[ok] < at_ns[idx[ok]] + int(hold_s * 1e9)
    out = values.copy()
    out[ok] = v[idx[ok]]
    return out


def _fill(row: np.ndarray, what: str) -> np.ndarray:
    """Hold the last known value forward (and the first one backward); PlanError if nothing is known."""
    ok = np.isfinite(row)
    if not ok.any():
        raise PlanError(f"no {what}: store signals for it or set a constant in the fleet scenario")
    idx = np.where(ok, np.arange(row.size), 0)
    np.maximum.accumulate(idx, out=idx)
    out = row[idx]
    first = int(np.argmax(ok))
    out[:first] = row[first]
    return out


def build_signals(sc: Scenario, stored: Mapping[tuple[str, str], Sequence[tuple[datetime, float]]],
                  hold_s: float = SIGNAL_HOLD_S) -> tuple[Signals, int]:
    """Signals for the planning scenario ``sc`` and its lookback (slots): the data registry (or the zone's
    constant) as assemble loads it, stored values ``stored[(zone, signal)] = [(at, value), …]`` laid over
    it, gaps held from the nearest known value, then price and carbon events applied."""
    start, slot = pd.Timestamp(sc.time_range.start), pd.Timedelta(seconds=sc.slot_duration_s)
    try:
        L = _lookback(sc)
    except DataError:
        L = 0
    full = pd.date_range(start - L * slot, periods=L + sc.n_slots, freq=slot, tz="UTC")
    rows = {n: [] for n in (*SIGNAL_NAMES, "clean_frac")}
    for z in sc.zones:
        try:
            c, p, cl = _zone_signals(sc.model_copy(update={"zones": [z]}), full[0], full, [])
            got = {"carbon_g_per_kwh": c[0], "price_usd_per_mwh": p[0], "clean_frac": cl[0]}
        except (ScenarioError, DataError):
            nan = np.full(len(full), np.nan)
            got = {"carbon_g_per_kwh": nan if z.carbon_g_per_kwh is None else np.full(len(full), z.carbon_g_per_kwh),
                   "price_usd_per_mwh": nan if z.price_usd_per_mwh is None else np.full(len(full), z.price_usd_per_mwh),
                   "clean_frac": nan}
        for name in SIGNAL_NAMES:
            row = overlay_points(np.asarray(got[name], float), full, sc.slot_duration_s,
                                 stored.get((z.id, name), ()), hold_s)
            rows[name].append(_fill(row, f"{name} for zone '{z.id}'"))
        rows["clean_frac"].append(np.asarray(got["clean_frac"], float))
    carbon, price, clean = (np.array(rows[n]) for n in (*SIGNAL_NAMES, "clean_frac"))
    site_names = tuple(x.name for x in sc.sites)
    site_zones = tuple(x.zone for x in sc.sites)
    sig_events = clip_events([e for e in sc.events if e.kind in ("price", "carbon")], full[0].to_pydatetime(),
                             (full[-1] + slot).to_pydatetime())
    apply_signal_events(sig_events, start=start - L * slot, slot_s=sc.slot_duration_s, lookback=0,
                        zone_ids=tuple(z.id for z in sc.zones), site_names=site_names, site_zones=site_zones,
                        carbon=carbon, price=price)
    slot_starts = full[L:]
    return Signals(tuple(z.id for z in sc.zones), slot_starts, sc.slot_duration_s, L, carbon, price, clean), L


def job_table(sc: Scenario, jobs: Sequence[Job], type_names: tuple[str, ...]):
    """The jobs as the simulator's table, times in seconds since the planning start (earlier arrivals and
    missed deadlines are negative), speeds as :func:`gridshift.workloads.build_jobs` sets them for inline
    jobs. Keeps the order of ``jobs``."""
    catalog = load_catalog()
    gen = sc.workloads.generate
    ref, field = (gen.reference_accelerator, "workloads.generate.reference_accelerator") if gen is not None \
        else (DEFAULT_REFERENCE, "workloads.jobs")
    speed = speed_matrix(type_names, catalog, ref, field)
    t0 = sc.time_range.start
    origin = min([t0, *(j.arrival for j in jobs)])
    try:
        table = jobs_to_table(list(jobs), start=origin, type_names=type_names, default_speed_by_kind=speed)
    except ValueError as e:
        raise ScenarioError(str(e), field="jobs") from e
    shift = (t0 - origin).total_seconds()
    table.arrival_s = table.arrival_s - shift
    table.deadline_s = table.deadline_s - shift
    return table


def build_world(fleet: Scenario, jobs: Sequence[Job], t0: datetime, slot_s: int, n_slots: int,
                events: Sequence[GridEvent] = (),
                stored: Mapping[tuple[str, str], Sequence[tuple[datetime, float]]] | None = None,
                ) -> tuple[World, Signals, Scenario]:
    """The simulator's (World, Signals) for ``jobs`` on ``fleet`` over ``n_slots`` slots from ``t0`` (a
    slot boundary), with the grid ``events`` overlapping that range and the stored signal values."""
    end = t0 + timedelta(seconds=n_slots * slot_s)
    sc = planning_scenario(fleet, t0, slot_s, n_slots, clip_events(events, t0, end))
    catalog = load_catalog()
    types = _types(sc, catalog)
    signals, _ = build_signals(sc, stored or {})
    slot_starts = signals.slot_starts
    f = _fleet(sc, types, slot_starts, catalog)
    table = job_table(sc, jobs, f.type_names)
    services = _services(sc, f, slot_starts, catalog) if sc.workloads.services else \
        ServiceArrays.empty(len(f.type_names), f.n_sites, n_slots)
    site_names = tuple(x.name for x in sc.sites)
    ev = build_events([e for e in sc.events if e.is_power_request], start=pd.Timestamp(t0), site_names=site_names,
                      site_zones=tuple(x.zone for x in sc.sites),
                      site_ramp_mw_per_min=tuple(x.ramp_mw_per_min for x in sc.sites),
                      margin_frac=sc.demand_response.margin_frac)
    return World.build(f, table, services, slot_s, slot_starts, ev), signals, sc


# ------------------------------------------------------------------------------------- observation

def pool_index(world: World, site: str | None, accelerator: str | None) -> int:
    """The first pool of accelerator type ``accelerator`` at ``site``, or -1."""
    f = world.fleet
    if site not in f.site_names or accelerator not in f.type_names:
        return -1
    s, k = f.site_names.index(site), f.type_names.index(accelerator)
    hit = np.flatnonzero((f.pool_site == s) & (f.pool_type == k))
    return int(hit[0]) if hit.size else -1


def build_observation(world: World, signals: Signals, live: Sequence[LiveJob], t: int = 0) -> Observation:
    """The observation at slot ``t`` (0: the slot the world starts with) of the live jobs (``live[i]`` is
    row i of ``world.jobs``): active = running, paused and ready waiting jobs; work left from the
    executor's progress; running and paused jobs hold their current pool."""
    n = len(live)
    remaining = world.jobs.work_acc_h.astype(float).copy()
    running_pool = np.full(n, -1, np.int32)
    running_gang = np.zeros(n, np.int32)
    last_pool = np.full(n, -1, np.int32)
    has_started = np.zeros(n, bool)
    active = []
    for i, lj in enumerate(live):
        on = lj.status in (RUNNING, PAUSED)
        if on or (lj.status in WAITING and lj.ready):
            active.append(i)
        if on:
            has_started[i] = True
            if lj.progress_frac is not None:
                remaining[i] = max(remaining[i] * (1.0 - float(lj.progress_frac)), 1e-9)
            p = pool_index(world, lj.site, lj.accelerator)
            last_pool[i] = p
            if lj.status == RUNNING and p >= 0:
                running_pool[i] = p
                running_gang[i] = int(lj.gang or 0)
    demand = world.services.demand_rps[:, :, t] if world.n_slots else np.zeros((world.services.n, 0))
    return Observation(t, world, signals, np.array(active, np.int64), remaining, running_pool, running_gang,
                       has_started, last_pool, demand)


def checked_caps(world: World, obs: Observation, d: Decision, policy: str) -> np.ndarray:
    """The simulator's checks of a decision (PlanError if impossible); returns the pool power caps."""
    active_mask = np.zeros(len(world.jobs), bool)
    active_mask[obs.active] = True
    return check_decision(world, d, active_mask, SimpleNamespace(running_pool=obs.running_pool), policy)


# ------------------------------------------------------------------------------------------- diffing

def placements(world: World, d: Decision, cap: np.ndarray) -> dict[int, tuple[str, str, int, float]]:
    """Job row -> (site, accelerator, gang, power-cap fraction) for every job the decision runs."""
    f = world.fleet
    out = {}
    for j, p, g in zip(d.job_idx.tolist(), d.job_pool.tolist(), d.job_gang.tolist()):
        out[int(j)] = (f.site_names[f.pool_site[p]], f.type_names[f.pool_type[p]], int(g), float(cap[p]))
    return out


def diff_actions(world: World, live: Sequence[LiveJob], placed: Mapping[int, tuple[str, str, int, float]],
                 cap_tol: float = 1e-6) -> list[Action]:
    """Executor actions that turn the current state into the decision: pauses first (they free
    accelerators and power), then resumes, starts and power-cap changes, each in job order. A running job
    the decision moves or resizes is paused and resumed at its new placement."""
    pauses, resumes, starts, caps = [], [], [], []
    for i, lj in enumerate(live):
        jid = lj.job.job_id
        want = placed.get(i)
        if want is None:
            if lj.status == RUNNING:
                pauses.append(Action(jid, "pause"))
            continue
        site, accel, gang, cap = want
        to = Action(jid, "start", site, accel, gang, cap)
        if lj.status in WAITING:
            starts.append(to)
        elif lj.status == PAUSED:
            resumes.append(Action(jid, "resume", site, accel, gang, cap))
        elif lj.status == RUNNING:
            here = pool_index(world, lj.site, lj.accelerator) == pool_index(world, site, accel)
            if here and int(lj.gang or 0) == gang:
                if abs((lj.power_cap_frac if lj.power_cap_frac is not None else 1.0) - cap) > cap_tol:
                    caps.append(Action(jid, "set_power_cap", power_cap_frac=cap))
            else:
                pauses.append(Action(jid, "pause"))
                resumes.append(Action(jid, "resume", site, accel, gang, cap))
    return pauses + resumes + starts + caps


# --------------------------------------------------------------------------------- power and reasons

def job_rate(world: World, i: int, site: str | None, accelerator: str | None, gang: int | None,
             cap: float | None) -> float:
    """Work per hour (reference accelerator-hours) of job row ``i`` at that placement, as the simulator
    counts it: gang × the job's speed on the type × the throughput kept at the power cap (no overheads)."""
    p = pool_index(world, site, accelerator)
    if p < 0 or not gang:
        return 0.0
    f = world.fleet
    k = int(f.pool_type[p])
    xs, ys = f.cap_curve_power_frac[k], f.cap_curve_throughput_frac[k]
    tp = float(np.interp(min(max(1.0 if cap is None else float(cap), xs[0]), 1.0), xs, ys))
    return float(gang) * float(world.jobs.speed[i, k]) * tp


def site_power_mw(world: World, running: Sequence[tuple[str | None, str | None, int, float | None]]
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(IT MW, facility MW) per site with ``running`` = [(site, accelerator, gang, cap), …] busy for the
    whole slot and every other accelerator idle: the simulator's accounting."""
    f = world.fleet
    busy = np.zeros(f.n_pools)
    capw = np.zeros(f.n_pools)
    for site, accel, gang, cap in running:
        p = pool_index(world, site, accel)
        if p >= 0:
            busy[p] += gang
            capw[p] += gang * (1.0 if cap is None else cap)
    cap_frac = np.divide(capw, busy, out=np.ones(f.n_pools), where=busy > 0)
    k = f.pool_type
    pool_w = acc.pool_it_power_w(f.pool_count, np.minimum(busy, f.pool_count), np.zeros(f.n_pools),
                                 np.zeros(f.n_pools), cap_frac, f.board_power_w[k], f.idle_power_w[k],
                                 f.host_power_w[k])
    return acc.site_power_mw(pool_w, f.pool_site, f.n_sites, f.pue)


def explain(world: World, signals: Signals, obs: Observation, d: Decision, cap: np.ndarray,
            live: Sequence[LiveJob], placed: Mapping[int, tuple[str, str, int, float]], policy: str,
            t: int = 0) -> list[dict[str, Any]]:
    """Plan items (``gridshift.service.store.PlanItem`` fields) for the active jobs: where each runs in this
    slot and why — its pool's carbon intensity, price and PUE, and which limit binds (``pool_full``: no
    accelerator left; ``site_power_cap``: the site cannot power one more), or, for a job left waiting,
    ``accelerators``, ``site_power_cap`` or ``policy`` (the policy chose to wait)."""
    f, jt = world.fleet, world.jobs
    used = np.bincount(d.job_pool.astype(np.int64), weights=d.job_gang, minlength=f.n_pools)
    if d.replicas is not None and d.replicas.size:
        used = used + d.replicas.sum(axis=(0, 1))
    free = f.pool_count - used
    inc = batch_increment_mw(world, cap)
    site_mw = base_site_mw(world) + np.bincount(f.pool_site, weights=used * inc, minlength=f.n_sites)
    headroom = world.site_cap_mw(t, t, 1)[:, 0] - site_mw
    ci, pr = signals.at("carbon_g_per_kwh", t), signals.at("price_usd_per_mwh", t)
    slot_start = world.slot_starts[t].to_pydatetime()
    items = []
    for i in obs.active.tolist():
        lj = live[i]
        if i in placed:
            site, accel, gang, c = placed[i]
            p = pool_index(world, site, accel)
            s = int(f.pool_site[p])
            z = int(f.site_zone[s])
            bound = [b for b, hit in (("pool_full", free[p] < 1), ("site_power_cap", headroom[s] < inc[p]))
                     if hit]
            action = "keep" if lj.status == RUNNING and obs.running_pool[i] == p else \
                ("resume" if lj.status in (RUNNING, PAUSED) else "start")
            why = {"policy": policy, "action": action, "site": site, "accelerator": accel, "gang": gang,
                   "power_cap_frac": round(c, 4), "carbon_g_per_kwh": round(float(ci[z]), 3),
                   "price_usd_per_mwh": round(float(pr[z]), 3), "pue": float(f.pue[s]),
                   "site_headroom_mw": round(float(headroom[s]), 6), "bound": bound}
            items.append({"job_id": lj.job.job_id, "site": site, "accelerator": accel, "gang": gang,
                          "start_at": slot_start, "power_cap_frac": c, "why": why})
        else:
            can = jt.speed[i, f.pool_type] > 0
            if obs.last_pool[i] >= 0 and not jt.migratable[i]:
                can &= f.pool_site == f.pool_site[obs.last_pool[i]]
            fits = can & (free >= jt.gang_min[i])
            if not fits.any():
                bound = "accelerators"
            elif not (headroom[f.pool_site[fits]] >= jt.gang_min[i] * inc[fits] - 1e-12).any():
                bound = "site_power_cap"
            else:
                bound = "policy"
            why = {"policy": policy, "action": "pause" if lj.status == RUNNING else "wait", "bound": bound}
            items.append({"job_id": lj.job.job_id, "why": why})
    return items
