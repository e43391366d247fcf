"""The planning world of one reconciler pass: the live state as the simulator's arrays. No database and no
executor here.

The planning world of one pass is the simulator's world over ``[slot start, slot start + horizon)``: the
fleet, signals and grid events are built with the same helpers :func:`gridshift.world.build.assemble` uses,
the live jobs become a :class:`~gridshift.model.workload.JobTable` as inline jobs would, and the current
slot is slot 0. A policy therefore sees exactly what the simulator would show it in its first slot.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from gridshift.catalog import load_catalog
from gridshift.errors import DataError, PlanError, ScenarioError
from gridshift.model.events import GridEvent
from gridshift.model.scenario import Scenario, TimeRange
from gridshift.model.workload import Job
from gridshift.workloads.batch import jobs_to_table
from gridshift.workloads.build import DEFAULT_REFERENCE, speed_matrix
from gridshift.world.arrays import Fleet, ServiceArrays, Signals, World
from gridshift.world.build import accelerator_types, build_fleet, build_services, lookback_slots, zone_signals
from gridshift.world.events import apply_signal_events, build_events

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
        L = lookback_slots(sc)
    except DataError:
        L = 0
    full = pd.date_range(start - L * slot, periods=L + sc.n_slots, freq=slot, tz="UTC")
    rows = {n: [] for n in (*SIGNAL_NAMES, "clean_frac")}
    for z in sc.zones:
        try:
            c, p, cl = zone_signals(sc.model_copy(update={"zones": [z]}), full[0], full, [])
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


def _type_key(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


def subtract_background(fleet: Fleet, busy: Mapping[tuple[str, str], int]) -> Fleet:
    """``fleet`` without the accelerators that jobs outside GridShift hold: ``busy[(site, type)]`` (types
    matched ignoring case and punctuation, so Slurm's GRES type ``h100`` is the fleet's ``H100``) taken out of
    that site's pools of that type, never below zero. Keys naming no pool are ignored."""
    if not busy:
        return fleet
    want: dict[tuple[str, str], int] = {}
    for (site, acc), n in busy.items():
        key = (site, _type_key(acc))
        want[key] = want.get(key, 0) + int(n)
    count = fleet.pool_count.copy()
    for p in range(fleet.n_pools):
        key = (fleet.site_names[fleet.pool_site[p]], _type_key(fleet.type_names[fleet.pool_type[p]]))
        take = min(int(count[p]), want.get(key, 0))
        if take:
            count[p] -= take
            want[key] -= take
    return replace(fleet, pool_count=count)


def build_world(fleet: Scenario, jobs: Sequence[Job], t0: datetime, slot_s: int, n_slots: int,
                events: Sequence[GridEvent] = (),
                stored: Mapping[tuple[str, str], Sequence[tuple[datetime, float]]] | None = None,
                background: Mapping[tuple[str, str], int] | None = None,
                ) -> tuple[World, Signals, Scenario]:
    """The simulator's (World, Signals) for ``jobs`` on ``fleet`` over ``n_slots`` slots from ``t0`` (a
    slot boundary), with the grid ``events`` overlapping that range and the stored signal values; the
    accelerators busy with jobs outside GridShift (``background``, see :func:`subtract_background`) are taken
    out of the pools for the whole horizon."""
    end = t0 + timedelta(seconds=n_slots * slot_s)
    sc = planning_scenario(fleet, t0, slot_s, n_slots, clip_events(events, t0, end))
    catalog = load_catalog()
    types = accelerator_types(sc, catalog)
    signals, _ = build_signals(sc, stored or {})
    slot_starts = signals.slot_starts
    f = subtract_background(build_fleet(sc, types, slot_starts, catalog), background or {})
    table = job_table(sc, jobs, f.type_names)
    services = build_services(sc, f, slot_starts, catalog) if sc.workloads.services else \
        ServiceArrays.empty(len(f.type_names), f.n_sites, n_slots)
    site_names = tuple(x.name for x in sc.sites)
    ev = build_events([e for e in sc.events if e.is_power_request], start=pd.Timestamp(t0), site_names=site_names,
                      site_zones=tuple(x.zone for x in sc.sites),
                      site_ramp_mw_per_min=tuple(x.ramp_mw_per_min for x in sc.sites),
                      margin_frac=sc.demand_response.margin_frac, response=sc.demand_response)
    return World.build(f, table, services, slot_s, slot_starts, ev), signals, sc


