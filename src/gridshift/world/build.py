"""Turn a validated :class:`Scenario` into the arrays a simulation runs on (the I/O edge between the
scenario file, the data registry, the catalog and the core).

Signals are hourly in the data; for shorter slots each slot takes the value of the hour it starts in.
Up to ``LOOKBACK_H`` hours of history before the scenario start are attached when the data has them.
Grid data exists per year (2021–2023): the builder reads the years the time range and its history span, so
a scenario may lie anywhere in them, across New Year too; a range outside them is a one-line error naming
the span the data covers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gridshift.catalog import get_accelerator, load_catalog
from gridshift.data import load_carbon, load_latency_matrix, load_price
from gridshift.data.grid import available_price_zones, available_zones, carbon_years, price_years
from gridshift.data.signal_file import apply_gap_policy, read_signal_file, to_slots
from gridshift.data.validate import fill_gaps
from gridshift.errors import CatalogError, DataError, ScenarioError
from gridshift.model.accelerator import AcceleratorType
from gridshift.model.fleet import Site
from gridshift.model.scenario import Scenario
from gridshift.model.time import S_PER_H
from gridshift.model.workload import JobTable
from gridshift.workloads import build_demands, build_jobs
from gridshift.world.arrays import Fleet, ServiceArrays, Signals, World
from gridshift.world.assembled import Assembled
from gridshift.world.events import apply_signal_events, build_events

LOOKBACK_H = 168


def accelerator_types(scenario: Scenario, catalog: dict[str, AcceleratorType]) -> dict[str, AcceleratorType]:
    out: dict[str, AcceleratorType] = {}
    for i, site in enumerate(scenario.sites):
        for j, pool in enumerate(site.pools):
            try:
                acc = get_accelerator(pool.accelerator, catalog)
            except CatalogError as e:
                raise ScenarioError(e.message, field=f"sites[{i}].pools[{j}].accelerator") from e
            out.setdefault(acc.name, acc)
    return out


def _hourly_to_slots(series: pd.Series, index: pd.DatetimeIndex) -> np.ndarray:
    hours = index.floor("h")
    return series.reindex(hours).to_numpy(dtype=float)


def _years(have: list[int], first: pd.Timestamp, last: pd.Timestamp) -> list[int] | None:
    """The years of data ``first``..``last`` needs; every year there is when the range reaches outside them
    (so the range check names the whole span the data covers)."""
    if not have:
        return None
    need = list(range(first.year, last.year + 1))
    return need if set(need) <= set(have) else have


def _history_years(have: list[int], earliest: pd.Timestamp, start: pd.Timestamp) -> list[int] | None:
    """The years that may hold the history ``earliest``..``start`` (clipped to those there are)."""
    inside = [y for y in have if earliest.year <= y <= start.year]
    return inside or (have or None)


def zone_signals(scenario: Scenario, first: pd.Timestamp, index: pd.DatetimeIndex, notes: list[str]):
    carbon, price, clean = [], [], []
    last = index[-1].floor("h")
    zones_ok, price_ok = set(available_zones()), set(available_price_zones())
    allow = scenario.fill_gaps_max_h > 0
    slot_s = scenario.slot_duration_s
    gap_s = scenario.fill_gaps_max_h * S_PER_H  # the gap policy of the zones' own files (data/signal_file.py)
    for i, z in enumerate(scenario.zones):
        field = f"zones[{i}]"
        sf = read_signal_file(z.signals_file, max_gap_s=gap_s) if z.signals_file else None
        own = set(sf.values) if sf is not None else set()
        if z.carbon_g_per_kwh is not None:
            c = np.full(len(index), z.carbon_g_per_kwh)
            cl = np.full(len(index), np.nan)
        elif z.carbon_file is not None:
            c, cl = _file_carbon(z.carbon_file, z.carbon_basis, first, index, field, scenario, notes, z.id)
        elif "carbon_g_per_kwh" in own:
            c = to_slots(sf, "carbon_g_per_kwh", index, slot_s, field=f"{field}.signals_file")
            cl = to_slots(sf, "clean_frac", index, slot_s, field=f"{field}.signals_file") if "clean_frac" in own \
                else np.full(len(index), np.nan)
        else:
            if z.id not in zones_ok:
                raise ScenarioError(f"unknown zone '{z.id}' (zones with data: {', '.join(sorted(zones_ok))})",
                                    field=f"{field}.id")
            df = load_carbon(z.id, basis=z.carbon_basis, allow_gaps=allow,
                             years=_years(carbon_years(z.id), first, last))
            if allow:
                df, rep = fill_gaps(df, scenario.fill_gaps_max_h)
                if rep.filled_slots:
                    notes.append(f"carbon {z.id}: filled {rep.filled_slots} missing hour(s)")
            _check_range(df.index, first, index, f"{field}.id", f"carbon data for zone '{z.id}'")
            c = _hourly_to_slots(df["carbon_g_per_kwh"], index)
            cl = _hourly_to_slots(df["clean_frac"], index)
        if z.price_usd_per_mwh is not None:
            pr = np.full(len(index), z.price_usd_per_mwh)
        elif "price_usd_per_mwh" in own:
            pr = to_slots(sf, "price_usd_per_mwh", index, slot_s, field=f"{field}.signals_file")
        else:
            if z.id not in price_ok:
                raise ScenarioError(f"zone '{z.id}' has no price data; set a constant price_usd_per_mwh",
                                    field=f"{field}.price_usd_per_mwh")
            dfp = load_price(z.id, allow_gaps=allow, years=_years(price_years(z.id), first, last))
            if allow:
                dfp, rep = fill_gaps(dfp, scenario.fill_gaps_max_h, flag_column=None)
                if rep.filled_slots:
                    notes.append(f"price {z.id}: filled {rep.filled_slots} missing hour(s)")
            _check_range(dfp.index, first, index, f"{field}.id", f"price data for zone '{z.id}'")
            pr = _hourly_to_slots(dfp["price_usd_per_mwh"], index)
        for name, arr in (("carbon", c), ("price", pr)):
            if np.isnan(arr).any():
                bad = index[np.isnan(arr)][0]
                raise ScenarioError(f"{name} data for zone '{z.id}' has no value for {bad.isoformat()} "
                                    f"(set fill_gaps_max_h to fill short gaps)", field=f"{field}.id")
        carbon.append(c), price.append(pr), clean.append(cl)
    return np.array(carbon), np.array(price), np.array(clean)


def _file_carbon(path: str, basis: str, first: pd.Timestamp, index: pd.DatetimeIndex, field: str,
                 scenario: Scenario, notes: list[str], zone: str) -> tuple[np.ndarray, np.ndarray]:
    """A zone's carbon intensity from its ``carbon_file`` (a signals file for carbon alone, read by the rules of
    :mod:`gridshift.data.signal_file`): the range it covers is checked first, then its gaps under the scenario's
    policy, then its values become slots at the file's native resolution."""
    where = f"{field}.carbon_file"
    try:
        sf = read_signal_file(path, carbon_only=True, max_gap_s=None)
        _check_range(sf.times, first, index, where, f"carbon file of zone '{zone}'")
        sf = apply_gap_policy(sf, scenario.fill_gaps_max_h * S_PER_H)
        c = to_slots(sf, "carbon_g_per_kwh", index, scenario.slot_duration_s, field=where)
    except DataError as e:
        raise ScenarioError(str(e), field=where) from None
    if sf.filled_rows:
        notes.append(f"carbon {zone}: filled {sf.filled_rows} missing row(s) of {path}")
    notes.append(f"carbon {zone}: {basis} signal '{sf.columns['carbon_g_per_kwh']}' from {path}")
    return c, np.full(len(index), np.nan)


def _check_range(have: pd.DatetimeIndex, first: pd.Timestamp, index: pd.DatetimeIndex, field: str, what: str):
    if not len(have) or index[-1].floor("h") > have[-1] or first.floor("h") < have[0]:
        span = f"{have[0].isoformat()} – {have[-1].isoformat()}" if len(have) else "nothing"
        raise ScenarioError(f"time_range is outside the {what} (it covers {span})", field=field)


def lookback_slots(scenario: Scenario) -> int:
    """Slots of history to attach: as much of LOOKBACK_H as every zone's data holds before the start."""
    start = pd.Timestamp(scenario.time_range.start)
    earliest = start - pd.Timedelta(hours=LOOKBACK_H)
    for z in scenario.zones:
        sf = read_signal_file(z.signals_file, max_gap_s=scenario.fill_gaps_max_h * S_PER_H) if z.signals_file \
            else None
        own = set(sf.values) if sf is not None else set()
        if own:  # the file's history before the start, at most LOOKBACK_H
            earliest = max(earliest, min(sf.times[0].ceil(f"{scenario.slot_duration_s}s"), start))
        if z.carbon_file is not None:
            try:
                idx = read_signal_file(z.carbon_file, carbon_only=True, max_gap_s=None).times
            except DataError:
                idx = pd.DatetimeIndex([])  # zone_signals reports it with the zone's field
            if len(idx):
                earliest = max(earliest, min(idx[0], start))
        elif z.carbon_g_per_kwh is None and "carbon_g_per_kwh" not in own and z.id in set(available_zones()):
            idx = load_carbon(z.id, basis=z.carbon_basis, allow_gaps=scenario.fill_gaps_max_h > 0,
                              years=_history_years(carbon_years(z.id), earliest, start)).index
            if len(idx):
                earliest = max(earliest, min(idx[0], start))
        if z.price_usd_per_mwh is None and "price_usd_per_mwh" not in own and z.id in set(available_price_zones()):
            idx = load_price(z.id, allow_gaps=scenario.fill_gaps_max_h > 0,
                             years=_history_years(price_years(z.id), earliest, start)).index
            if len(idx):
                earliest = max(earliest, min(idx[0], start))
    return int((start - earliest).total_seconds() // scenario.slot_duration_s)


def _power_caps(site: Site, slot_starts: pd.DatetimeIndex, i: int) -> np.ndarray:
    if isinstance(site.power_cap_mw, float | int):
        return np.full(len(slot_starts), float(site.power_cap_mw))
    starts = pd.DatetimeIndex([s.start for s in site.power_cap_mw])
    if starts[0] > slot_starts[0]:
        raise ScenarioError("power_cap_mw series must start at or before time_range.start",
                            field=f"sites[{i}].power_cap_mw")
    pos = starts.searchsorted(slot_starts, side="right") - 1
    return np.array([s.power_cap_mw for s in site.power_cap_mw])[pos]


def build_fleet(scenario: Scenario, types: dict[str, AcceleratorType], slot_starts: pd.DatetimeIndex,
           catalog: dict[str, AcceleratorType]) -> Fleet:
    names = tuple(types)
    zone_ids = [z.id for z in scenario.zones]
    ps, pt, pc = [], [], []
    for s, site in enumerate(scenario.sites):
        for pool in site.pools:
            ps.append(s), pt.append(names.index(get_accelerator(pool.accelerator, catalog).name)), pc.append(pool.count)
    acc = [types[n] for n in names]
    return Fleet(
        site_names=tuple(x.name for x in scenario.sites),
        site_zone=np.array([zone_ids.index(x.zone) for x in scenario.sites]),
        site_region=tuple(x.region for x in scenario.sites),
        pue=np.array([x.pue for x in scenario.sites]),
        power_cap_mw=np.array([_power_caps(x, slot_starts, i) for i, x in enumerate(scenario.sites)]),
        pool_site=np.array(ps), pool_type=np.array(pt), pool_count=np.array(pc, dtype=np.int64),
        type_names=names,
        board_power_w=np.array([a.board_power_w for a in acc]),
        idle_power_w=np.array([a.idle_power_w for a in acc]),
        host_power_w=np.array([a.host_power_w for a in acc]),
        cap_curve_power_frac=tuple(np.array(a.power_cap_curve.power_frac) for a in acc),
        cap_curve_throughput_frac=tuple(np.array(a.power_cap_curve.throughput_frac) for a in acc),
    )


def build_services(scenario: Scenario, fleet: Fleet, slot_starts: pd.DatetimeIndex,
              catalog: dict[str, AcceleratorType]) -> ServiceArrays:
    svcs = scenario.workloads.services
    T, S, K = len(slot_starts), fleet.n_sites, len(fleet.type_names)
    if not svcs:
        return ServiceArrays.empty(K, S, T)
    demands = build_demands(scenario, slot_starts)
    R = max(len(d.regions) for d in demands)
    demand = np.zeros((len(svcs), R, T))
    cap, power = np.zeros((len(svcs), K)), np.zeros((len(svcs), K))
    allowed = np.zeros((len(svcs), R, S), bool)
    rtt = np.full((len(svcs), R, S), np.inf)
    need_latency = any(s.allowed_sites is None for s in svcs)
    lat = load_latency_matrix() if need_latency else None
    for n, (svc, dem) in enumerate(zip(svcs, demands)):
        field = f"workloads.services[{n}]"
        demand[n, : len(dem.regions)] = dem.requests_per_s
        for key, prof in svc.profiles.items():
            try:
                name = get_accelerator(key, catalog).name
            except CatalogError as e:
                raise ScenarioError(e.message, field=f"{field}.profiles.{key}") from e
            if name in fleet.type_names:
                k = fleet.type_names.index(name)
                cap[n, k], power[n, k] = prof.requests_per_s_per_accelerator, prof.power_w_per_accelerator
        for r, region in enumerate(dem.regions):
            for s, site in enumerate(scenario.sites):
                if lat is not None and site.region is not None:
                    if region not in lat.index or site.region not in lat.columns:
                        bad = region if region not in lat.index else site.region
                        raise ScenarioError(f"region '{bad}' is not in the latency matrix",
                                            field=f"{field}.demand.peak_requests_per_s")
                    rtt[n, r, s] = float(lat.loc[region, site.region])
                if svc.allowed_sites is not None:
                    unknown = set(svc.allowed_sites) - {x.name for x in scenario.sites}
                    if unknown:
                        raise ScenarioError(f"unknown site(s) {sorted(unknown)}", field=f"{field}.allowed_sites")
                    allowed[n, r, s] = site.name in svc.allowed_sites
                else:
                    if site.region is None:
                        raise ScenarioError(f"site '{site.name}' has no region, so latency to users is unknown; "
                                            f"set sites[{s}].region or {field}.allowed_sites", field=f"{field}")
                    allowed[n, r, s] = rtt[n, r, s] <= svc.latency_slo_ms
            if not allowed[n, r].any():
                raise ScenarioError(f"no site can serve region '{region}' within {svc.latency_slo_ms} ms",
                                    field=f"{field}.latency_slo_ms")
        if not (cap[n] > 0).any():
            raise ScenarioError("no accelerator type of the fleet has a profile for this service",
                                field=f"{field}.profiles")
    return ServiceArrays(tuple(s.name for s in svcs), tuple(d.regions for d in demands), demand, cap, power,
                         allowed, rtt, np.array([s.headroom_frac for s in svcs]), np.array([s.tier for s in svcs]))


def gang_warnings(jobs: JobTable, fleet: Fleet) -> list[str]:
    """A warning (for the run's notes) when some jobs' smallest gang is larger than every pool they can run on:
    a gang runs inside one pool, so they never start (written jobs and templates are refused when read)."""
    if not len(jobs):
        return []
    runs_on = jobs.speed[:, fleet.pool_type] > 0  # [jobs, pools]
    largest = np.where(runs_on, fleet.pool_count[None, :], 0).max(axis=1)
    never = jobs.gang_min > largest
    if not never.any():
        return []
    return [f"warning: {int(never.sum())} job(s) need a gang larger than any pool they can run on and will never "
            f"run (largest such gang_min {int(jobs.gang_min[never].max())}, largest pool "
            f"{int(fleet.pool_count.max())})"]


def assemble(scenario: Scenario) -> Assembled:
    """Load signals, build fleet, jobs and services. Raises ScenarioError/DataError with a location."""
    catalog = load_catalog()
    types = accelerator_types(scenario, catalog)
    start = pd.Timestamp(scenario.time_range.start)
    slot = pd.Timedelta(seconds=scenario.slot_duration_s)
    slot_starts = pd.date_range(start, periods=scenario.n_slots, freq=slot, tz="UTC")
    notes: list[str] = []
    try:
        L = lookback_slots(scenario)
    except DataError:
        L = 0
    full = pd.date_range(start - L * slot, periods=L + scenario.n_slots, freq=slot, tz="UTC")
    carbon, price, clean = zone_signals(scenario, full[0], full, notes)
    site_names = tuple(x.name for x in scenario.sites)
    site_zones = tuple(x.zone for x in scenario.sites)
    apply_signal_events(scenario.events, start=start, slot_s=scenario.slot_duration_s, lookback=L,
                        zone_ids=tuple(z.id for z in scenario.zones), site_names=site_names, site_zones=site_zones,
                        carbon=carbon, price=price)
    signals = Signals(tuple(z.id for z in scenario.zones), slot_starts, scenario.slot_duration_s, L, carbon,
                      price, clean)
    fleet = build_fleet(scenario, types, slot_starts, catalog)
    jobs = build_jobs(scenario, fleet.type_names, catalog)
    jobs.validate()
    notes.extend(gang_warnings(jobs, fleet))
    services = build_services(scenario, fleet, slot_starts, catalog)
    events = build_events(scenario.events, start=start, site_names=site_names, site_zones=site_zones,
                          site_ramp_mw_per_min=tuple(x.ramp_mw_per_min for x in scenario.sites),
                          margin_frac=scenario.demand_response.margin_frac,
                          response=scenario.demand_response)
    world = World.build(fleet, jobs, services, scenario.slot_duration_s, slot_starts, events)
    used = {z.id: "constant" if z.carbon_g_per_kwh is not None else z.carbon_basis for z in scenario.zones}
    return Assembled(scenario, world, signals, types, notes, used,
                     carbon_bases(scenario, slot_starts, carbon[:, L:], used))


def carbon_bases(scenario: Scenario, slot_starts: pd.DatetimeIndex, used_carbon: np.ndarray,
                 used: dict[str, str]) -> dict[str, np.ndarray]:
    """The carbon intensity [Z, slots] the run plans and accounts on (``as_planned``: each zone's own signal,
    events applied), and under every basis all zones have: ``lca`` / ``direct`` from the registry (or the
    zone's own), ``marginal`` from the zones' files; a constant zone counts with its constant under each."""
    zones_ok = set(available_zones())
    out: dict[str, np.ndarray] = {"as_planned": used_carbon}
    for basis in ("lca", "direct", "marginal"):
        rows = []
        for i, z in enumerate(scenario.zones):
            if used[z.id] in (basis, "constant"):
                rows.append(used_carbon[i])
            elif basis != "marginal" and z.id in zones_ok:
                try:
                    df = load_carbon(z.id, basis=basis, start=slot_starts[0].floor("h"), end=slot_starts[-1])
                except DataError:
                    break
                rows.append(_hourly_to_slots(df["carbon_g_per_kwh"], slot_starts))
            else:
                break
        if len(rows) == len(scenario.zones) and all(np.isfinite(r).all() for r in rows):
            out[basis] = np.array(rows)
    return out
