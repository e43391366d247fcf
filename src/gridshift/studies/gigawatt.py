"""The gigawatt fleet: a year (2023, hourly slots) of a 1 GW facility-power fleet, at any scale.

The fleet: 24 sites across the 16 grid zones of the shared data, 7 accelerator types (H100, H200, B200,
MI300X, Trainium2, TPU v5p, Ascend 910B). The accelerator count comes from the catalog's power figures: the
facility power of one accelerator at full load is ``(board_power_w + host_power_w) × PUE`` of its site, and
the fleet holds as many as ``facility_mw × scale`` buys at the type shares of ``TYPE_SHARE`` (about 780,000
at scale 1). Each site holds two types (a fixed rotation, so every type sits on 6–7 sites in several zones);
a site's share of a type follows the site's weight (the second site of a zone is smaller). Site power caps
are ``CAP_FRAC`` of the site's full-load facility power (cycling 0.85–1.0), so some sites cannot run every
accelerator flat out at once.

The work: ``1,000,000 × scale`` batch jobs drawn from the Alibaba PAI trace (via GAIA, through the data
registry) over the year — at every scale a random ``scale`` share of the 1,000,000 jobs of scale 1 (thinning:
the same arrival pattern and job population at any scale, so totals scale linearly) — with their work
scaled (``load_scale``) so the fleet's design utilisation — the jobs' work in accelerator-hours on their
mean speed, over the fleet's accelerator-hours — is
``target_util`` (0.72 by default: under ``asap`` at scale 1 the simulated utilisation, busy over all
accelerator-hours, came out at 0.89 of the design figure — jobs run more on the fast types than the mean
speed assumes, and work arriving late in the year is unfinished — so 0.72 aims at about 0.64; the simulated
utilisation is what a run reports); 20 inference services with
demand shaped from the Azure LLM 2023 traces (conversation and code, alternating) in 10 user regions, sized
so their peak needs about ``SERVICE_SHARE`` of the fleet; and four grid events (limits and cuts at sites in
CAISO, ERCOT, PJM and Germany).

Conventions: UTC slots of one hour; power in MW of facility power (IT × PUE); services run on H100 and B200
with the ML.ENERGY Benchmark v3 figures the demo uses (Llama-3.1-70B), and may use a site when its round
trip to at least one of the service's user regions is within the service's latency bound (the latency
matrix of the shared data); the South African site has no cloud region in that matrix and serves no
services. Each event's counterfactual run is off (``demand_response.counterfactual: false``) so a benchmark
times one simulation per policy.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from gridshift.catalog.accelerators import load_catalog
from gridshift.data.grid import available_price_zones, load_price
from gridshift.data.network import load_latency_matrix
from gridshift.model.scenario import Scenario
from gridshift.workloads.build import build_jobs
from gridshift.world.arrays import World
from gridshift.world.assembled import Assembled
from gridshift.world.build import accelerator_types, assemble

YEAR = ("2023-01-01T00:00:00Z", "2024-01-01T00:00:00Z")
FACILITY_MW = 1000.0
JOBS = 1_000_000
TYPE_SHARE = {"H100": 0.20, "H200": 0.15, "B200": 0.30, "MI300X": 0.10, "Trainium2": 0.10, "TPU-v5p": 0.10,
              "Ascend-910B": 0.05}
# (zone, cloud region for latency or None, PUE, relative size): 16 zones, 8 of them with a second site
SITES = [
    ("US-CAL-CISO", "us-west2", 1.15, 1.0), ("US-MIDA-PJM", "us-east4", 1.25, 1.0),
    ("US-TEX-ERCO", "us-south1", 1.3, 1.0), ("US-NY-NYIS", "us-east4", 1.25, 0.8),
    ("CA-ON", "northamerica-northeast2", 1.2, 0.8), ("DE-LU", "europe-west3", 1.2, 1.0),
    ("GB", "europe-west2", 1.2, 0.8), ("JP-TK", "asia-northeast1", 1.3, 1.0),
    ("KR", "asia-northeast3", 1.3, 0.6), ("SG", "asia-southeast1", 1.4, 0.8),
    ("AU-NSW", "australia-southeast1", 1.3, 0.8), ("AU-VIC", "australia-southeast2", 1.25, 0.6),
    ("IN-WE", "asia-south1", 1.45, 0.6), ("BR-SP", "southamerica-east1", 1.35, 0.6),
    ("CL-SIC", "southamerica-west1", 1.3, 0.5), ("ZA", None, 1.4, 0.5),
    ("US-CAL-CISO", "us-west2", 1.1, 0.6), ("US-MIDA-PJM", "us-east4", 1.2, 0.6),
    ("US-TEX-ERCO", "us-south1", 1.25, 0.6), ("DE-LU", "europe-west3", 1.15, 0.5),
    ("GB", "europe-west2", 1.15, 0.5), ("JP-TK", "asia-northeast1", 1.25, 0.5),
    ("SG", "asia-southeast1", 1.35, 0.5), ("AU-NSW", "australia-southeast1", 1.25, 0.5),
]
CAP_FRAC = (0.85, 0.9, 0.95, 1.0)
TARGET_UTIL = 0.72  # design utilisation; see the module's docstring
SERVICE_SHARE = 0.05
USER_REGIONS = {  # service group -> user regions (10 in all)
    "americas": ("us-west2", "us-east4", "us-south1", "southamerica-east1"),
    "europe": ("europe-west3", "europe-west2"),
    "apac": ("asia-northeast1", "asia-southeast1", "australia-southeast1", "asia-south1"),
}
# Llama-3.1-70B at ~25 ms p90 inter-token latency (ML.ENERGY Benchmark v3), as in the demo scenario
PROFILES = {"H100": {"requests_per_s_per_accelerator": 1.78, "power_w_per_accelerator": 500.0},
            "B200": {"requests_per_s_per_accelerator": 5.6, "power_w_per_accelerator": 960.0}}
N_SERVICES = 20
PRICE_PROXY = {"GB": "DE-LU"}  # zones without price data -> a neighbouring market with it
GANG_SIZES = (1, 2, 4, 8, 16, 32, 64)


@dataclass(frozen=True)
class GigawattSpec:
    """What to build: ``scale`` multiplies the facility power, the accelerators, the jobs and the service
    demand (1.0 = the 1 GW fleet)."""

    scale: float = 1.0
    seed: int = 1
    target_util: float = TARGET_UTIL
    facility_mw: float = FACILITY_MW
    jobs: int = JOBS
    max_length_h: float = 168.0

    def __post_init__(self) -> None:
        if not (0 < self.scale <= 10):
            raise ValueError(f"scale must be in (0, 10], got {self.scale}")
        if not (0 < self.target_util < 1):
            raise ValueError(f"target_util must be in (0, 1), got {self.target_util}")


def _site_types(i: int) -> tuple[str, str]:
    names = list(TYPE_SHARE)
    return names[i % len(names)], names[(i + 3) % len(names)]


def fleet_counts(spec: GigawattSpec) -> list[dict[str, int]]:
    """Accelerators per site and type: the type shares of ``TYPE_SHARE`` at the count the catalog's power
    figures and the sites' PUEs give for ``facility_mw × scale``."""
    cat = load_catalog()
    facility_w = {k: cat[k].board_power_w + cat[k].host_power_w for k in TYPE_SHARE}
    holders: dict[str, list[int]] = {k: [] for k in TYPE_SHARE}
    for i in range(len(SITES)):
        for k in _site_types(i):
            holders[k].append(i)
    # per accelerator of type k: the facility power at the weight-averaged PUE of the sites holding k
    w = np.array([s[3] for s in SITES])
    pue = np.array([s[2] for s in SITES])
    per_acc_w = sum(TYPE_SHARE[k] * facility_w[k] * float(np.average(pue[holders[k]], weights=w[holders[k]]))
                    for k in TYPE_SHARE)
    total = spec.facility_mw * spec.scale * 1e6 / per_acc_w
    out: list[dict[str, int]] = [{} for _ in SITES]
    for k, idx in holders.items():
        share = w[idx] / w[idx].sum()
        for i, f in zip(idx, share):
            out[i][k] = max(1, int(round(total * TYPE_SHARE[k] * f)))
    return out


def _sites(spec: GigawattSpec) -> list[dict]:
    cat = load_catalog()
    sites = []
    for i, ((zone, region, pue, _), pools) in enumerate(zip(SITES, fleet_counts(spec))):
        full_mw = sum(c * (cat[k].board_power_w + cat[k].host_power_w) for k, c in pools.items()) * pue / 1e6
        sites.append({"name": f"gw{i:02d}-{zone.lower()}", "zone": zone, "region": region, "pue": pue,
                      "power_cap_mw": round(full_mw * CAP_FRAC[i % len(CAP_FRAC)], 6),
                      "pools": [{"accelerator": k, "count": c} for k, c in pools.items()]})
    return sites


def _services(spec: GigawattSpec, sites: list[dict]) -> list[dict]:
    lat = load_latency_matrix()
    b200_share = TYPE_SHARE["B200"] / (TYPE_SHARE["B200"] + TYPE_SHARE["H100"])
    rps_per_acc = (b200_share * PROFILES["B200"]["requests_per_s_per_accelerator"]
                   + (1 - b200_share) * PROFILES["H100"]["requests_per_s_per_accelerator"])
    n_acc = sum(p["count"] for s in sites for p in s["pools"])
    peak_total = SERVICE_SHARE * n_acc * rps_per_acc
    groups = list(USER_REGIONS)
    out = []
    for n in range(N_SERVICES):
        regions = USER_REGIONS[groups[n % len(groups)]]
        slo = (80.0, 120.0, 150.0)[n % 3]
        allowed = [s["name"] for s in sites if s["region"] is not None
                   and any(float(lat.loc[r, s["region"]]) <= slo for r in regions)]
        peak = peak_total / N_SERVICES / len(regions)
        out.append({"name": f"llm{n:02d}", "tenant": f"tenant-{n % 5}", "latency_slo_ms": slo,
                    "profiles": PROFILES, "allowed_sites": allowed,
                    "demand": {"trace": ("azure-llm/conv", "azure-llm/code")[n % 2],
                               "peak_requests_per_s": {r: round(peak, 6) for r in regions}}})
    return out


def _events(sites: list[dict]) -> list[dict]:
    """Four grid events at the first site of CAISO, ERCOT, PJM and Germany: summer-evening and winter
    limits (to 70 % of the cap) and two cuts of 20 % and 30 % from a stated baseline (the cap)."""
    by_zone = {}
    for s in sites:
        by_zone.setdefault(s["zone"], s)
    ev = [("US-CAL-CISO", "2023-08-15T23:00:00Z", "2023-08-16T03:00:00Z", {"limit_mw": 0.7}),
          ("US-TEX-ERCO", "2023-01-16T12:00:00Z", "2023-01-16T16:00:00Z", {"cut_frac": 0.2}),
          ("US-MIDA-PJM", "2023-07-27T18:00:00Z", "2023-07-27T21:00:00Z", {"limit_mw": 0.7}),
          ("DE-LU", "2023-11-20T16:00:00Z", "2023-11-20T19:00:00Z", {"cut_frac": 0.3})]
    out = []
    for i, (zone, start, end, target) in enumerate(ev):
        s = by_zone[zone]
        cap = float(s["power_cap_mw"])
        e = {"id": f"gw-event-{i}", "kind": "limit" if "limit_mw" in target else "cut", "sites": [s["name"]],
             "start": start, "end": end}
        if "limit_mw" in target:
            e["limit_mw"] = round(cap * target["limit_mw"], 6)
        else:
            e["cut_frac"], e["baseline_mw"] = target["cut_frac"], round(cap, 6)
        out.append(e)
    return out


def _zones() -> list[dict]:
    """The 16 zones; a zone without price data (GB) gets the 2023 mean price of its proxy market
    (``PRICE_PROXY``) as a constant. The objective is carbon, so the price enters only the cost figures."""
    have = set(available_price_zones())
    out = []
    for z in dict.fromkeys(s[0] for s in SITES):
        if z in have:
            out.append({"id": z})
        else:
            proxy = load_price(PRICE_PROXY[z], years=[2023])["price_usd_per_mwh"]
            out.append({"id": z, "price_usd_per_mwh": round(float(proxy.mean()), 2)})
    return out


def gigawatt_scenario(spec: GigawattSpec, load_scale: float = 1.0, policies: list | None = None,
                      group: tuple[int, ...] | None = None) -> Scenario:
    """The scenario of the fleet at ``spec.scale`` with the jobs' work multiplied by ``load_scale``.

    ``group``: only these sites (indices into ``SITES``), for a run split by site groups: the group gets the
    jobs in proportion to its accelerators (a draw of its own, seeded by the group), each service's demand in
    proportion to the group's share of the accelerators that may serve it, and the events at its sites."""
    all_sites = _sites(spec)
    largest = max(p["count"] for s in all_sites for p in s["pools"])
    gangs = [g for g in GANG_SIZES if g <= max(1, largest // 2)]  # all of them from scale 0.01 up
    n_jobs = spec.jobs * spec.scale
    services, events, sites, seed = _services(spec, all_sites), _events(all_sites), all_sites, spec.seed
    if group is not None:
        sites = [all_sites[i] for i in sorted(group)]
        names = {x["name"] for x in sites}
        acc = lambda ss: sum(p["count"] for x in ss for p in x["pools"])  # noqa: E731
        n_jobs *= acc(sites) / acc(all_sites)
        serving = lambda ss, svc: sum(p["count"] for x in ss if x["name"] in svc["allowed_sites"]  # noqa: E731
                                      for p in x["pools"] if p["accelerator"] in PROFILES)
        kept = []
        for svc in services:
            share = serving(sites, svc) / serving(all_sites, svc)
            if share > 0:
                svc = {**svc, "allowed_sites": [x for x in svc["allowed_sites"] if x in names]}
                svc["demand"] = {**svc["demand"], "peak_requests_per_s": {
                    r: v * share for r, v in svc["demand"]["peak_requests_per_s"].items()}}
                kept.append(svc)
        services = kept
        events = [e for e in events if set(e["sites"]) <= names]
        seed = spec.seed * 1000 + min(group) + 1
    return Scenario.model_validate({
        "name": f"gigawatt-x{spec.scale:g}", "seed": seed,
        "time_range": {"start": YEAR[0], "end": YEAR[1]}, "slot_duration_s": 3600,
        "zones": _zones(),
        "sites": sites,
        "workloads": {"generate": {"trace": "gaia/pai-100k", "count": max(1, int(round(n_jobs))),
                                   "window": spec.jobs,  # every scale thins the same 1 GW arrival process
                                   "max_length_h": spec.max_length_h, "load_scale": load_scale,
                                   "gang_sizes": gangs, "gang_size_weights": [float(g) for g in gangs]},
                      "services": services},
        "events": events,
        "demand_response": {"counterfactual": False}, "fill_gaps_max_h": 6,
        "policies": policies or [{"name": "asap"}],
    })


def design_utilisation(scenario: Scenario) -> float:
    """The jobs' work (accelerator-hours at each job's mean speed over the fleet's types) over the fleet's
    accelerator-hours in the scenario's time range."""
    cat = load_catalog()
    types = accelerator_types(scenario, cat)
    names = tuple(types)
    jobs = build_jobs(scenario, names, cat)
    counts = np.zeros(len(names))
    for site in scenario.sites:
        for p in site.pools:
            counts[names.index(cat[p.accelerator].name if p.accelerator in cat else p.accelerator)] += p.count
    mean_speed = (jobs.speed * counts[None, :]).sum(axis=1) / counts.sum()
    acc_h = float((jobs.work_acc_h / np.maximum(mean_speed, 1e-12)).sum())
    return acc_h / (counts.sum() * scenario.time_range.duration_s / 3600.0)


def calibrated_scenario(spec: GigawattSpec, policies: list | None = None) -> tuple[Scenario, float, float]:
    """The scenario with ``load_scale`` set so the design utilisation is ``spec.target_util``; returns it,
    the load scale and the design utilisation reached."""
    base = gigawatt_scenario(spec, 1.0, policies)
    u1 = design_utilisation(base)
    load_scale = spec.target_util / u1
    sc = gigawatt_scenario(spec, load_scale, policies)
    return sc, load_scale, u1 * load_scale


def build_gigawatt(spec: GigawattSpec, policies: list | None = None) -> tuple[Assembled, dict]:
    """Assemble the fleet at ``spec.scale``; returns the assembled world and its construction figures."""
    sc, load_scale, util = calibrated_scenario(spec, policies)
    asm = assemble(sc)
    f = asm.world.fleet
    by_type = {f.type_names[k]: int(f.pool_count[f.pool_type == k].sum()) for k in range(len(f.type_names))}
    full_mw = float(sum(f.pool_count[p] * (f.board_power_w[f.pool_type[p]] + f.host_power_w[f.pool_type[p]])
                        * f.pue[f.pool_site[p]] for p in range(f.n_pools)) / 1e6)
    figures = {
        "scale": spec.scale, "sites": f.n_sites, "zones": len(set(f.site_zone.tolist())),
        "accelerators": int(f.pool_count.sum()), "accelerators_by_type": by_type,
        "full_load_facility_mw": round(full_mw, 3), "cap_mw": round(float(f.power_cap_mw[:, 0].sum()), 3),
        "jobs": len(asm.world.jobs), "services": len(asm.world.services.names),
        "user_regions": len({r for rs in asm.world.services.regions for r in rs}),
        "slots": asm.world.n_slots, "load_scale": round(load_scale, 4), "design_utilisation_frac": round(util, 4),
        "grid_events": len(sc.events),
    }
    return asm, figures


def first_part(asm: Assembled, part: float) -> Assembled:
    """The assembled world cut to the first ``part`` (0 < part <= 1) of its slots: jobs arriving later are
    dropped, caps and service demand cut; the signals and events stay whole (the cut run ignores the rest)."""
    w = asm.world
    if part >= 1.0:
        return asm
    T = max(1, int(round(w.n_slots * part)))
    jobs = w.jobs.take(np.flatnonzero(w.jobs.arrival_s < T * w.slot_duration_s))
    fleet = replace(w.fleet, power_cap_mw=w.fleet.power_cap_mw[:, :T])
    services = replace(w.services, demand_rps=w.services.demand_rps[:, :, :T])
    world = World.build(fleet, jobs, services, w.slot_duration_s, w.slot_starts[:T], w.events)
    return replace(asm, world=world)
