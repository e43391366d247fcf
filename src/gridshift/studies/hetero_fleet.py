"""A mixed modern fleet: H100, A100, Trainium2, Inferentia2 and Ascend 910B across two grid zones.

Three tenants submit LLM pre-training, fine-tuning and batch-inference jobs (types and per-accelerator
throughputs from :mod:`gridshift.catalog.fleet_jobs`, mostly estimated; see docs/guide/heterogeneity.md). The
example compares, on the same job stream:

* ``fifo`` (heterogeneity-agnostic, as most clusters run today);
* least-attained-service, heterogeneity-agnostic and -aware;
* least-attained-service, aware, choosing each job's gang size within the sizes it can run at (1-8 for
  fine-tuning and inference, 32-64 for pre-training);
* least-attained-service, aware, with an afternoon power cap at one site and a carbon weight — fairness
  and grid-awareness composed in one LP.

Reported: average JCT, energy, carbon, energy per tenant, rounds above the cap. The core builds arrays only;
the CLI (``gridshift hetero fleet``) loads the grid series and the job table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from gridshift.catalog.accelerators import load_catalog
from gridshift.catalog.fleet_jobs import load_fleet_jobs
from gridshift.data.grid import load_carbon, load_price
from gridshift.errors import GridShiftError
from gridshift.model.time import S_PER_H
from gridshift.sim.rounds import Cluster, JobSet, RoundSimulator, SimConfig

SITES = (("texas", "US-TEX-ERCO"), ("california", "US-CAL-CISO"))
POOLS = (  # (site index, accelerator type, count)
    (0, "H100", 128), (0, "Trainium2", 128), (0, "Inferentia2", 64),
    (1, "A100", 128), (1, "Ascend-910B", 64),
)
TENANTS = ("research", "product", "platform")


@dataclass(frozen=True)
class FleetSetup:
    jobs_per_h: float = 6.0
    n_jobs: int = 600
    window: tuple[int, int] = (100, 500)
    start: str = "2023-07-03T00:00:00Z"
    cap_frac: float = 0.6  # texas's cap in the afternoon, as a share of its full draw
    cap_hours_local: tuple[int, int] = (14, 20)  # local hours (UTC-5 in July) when the cap applies
    utc_offset_h: int = -5
    carbon_weight: float = 0.3
    seed: int = 0


def fleet_cluster(catalog: dict, carbon: np.ndarray, price: np.ndarray, setup: FleetSetup) -> Cluster:
    """The two-site cluster; ``carbon``/``price`` are ``[S, H]`` hourly series from the start hour."""
    types = [p[1] for p in POOLS]
    count = np.array([p[2] for p in POOLS])
    site = np.array([p[0] for p in POOLS])
    busy = np.array([catalog[t].board_power_w + catalog[t].host_power_w for t in types])
    idle = np.array([catalog[t].idle_power_w + catalog[t].host_power_w for t in types])
    full_w = np.bincount(site, weights=count * busy, minlength=len(SITES))
    hours = carbon.shape[1]
    local = (np.arange(hours) + setup.utc_offset_h) % 24
    cap = np.full((len(SITES), hours), np.inf)
    a, b = setup.cap_hours_local
    cap[0, (local >= a) & (local < b)] = setup.cap_frac * full_w[0]
    return Cluster(pool_type=types, count=count, busy_power_w=busy, idle_power_w=idle, pool_site=site,
                   site_names=[s[0] for s in SITES], site_cap_w=cap, carbon_g_per_kwh=carbon, price_per_mwh=price)


def fleet_jobs(thr: np.ndarray, gang_sizes: np.ndarray, kinds: list[str], ref_pool: int,
               setup: FleetSetup) -> JobSet:
    """Poisson stream: 15 % pre-training (gang 32–64, 1–7 days), 45 % fine-tuning (gang 1–8, 1–24 h),
    40 % batch inference (gang 1–8, 0.5–12 h); durations log-uniform at the reference type's speed."""
    rng = np.random.default_rng(setup.seed)
    n = setup.n_jobs
    kind_of_type = np.array(kinds)
    pick = rng.choice(3, size=n, p=[0.15, 0.45, 0.40])
    names = np.array(["pre-training", "fine-tuning", "batch-inference"])[pick]
    lo_h = np.select([pick == 0, pick == 1], [24.0, 1.0], 0.5)
    hi_h = np.select([pick == 0, pick == 1], [168.0, 24.0], 12.0)
    dur_s = S_PER_H * np.exp(rng.uniform(np.log(lo_h), np.log(hi_h)))
    job_type = np.empty(n, dtype=np.int64)
    gang = np.empty(n, dtype=np.int64)
    gang_min = np.empty(n, dtype=np.int64)
    gang_max = np.empty(n, dtype=np.int64)
    for i in range(n):
        cands = np.flatnonzero(kind_of_type == names[i])
        t = int(rng.choice(cands))
        ok = np.flatnonzero(thr[t, :, ref_pool] > 0)
        if names[i] == "pre-training":
            ok = ok[gang_sizes[ok] >= 32] if np.any(gang_sizes[ok] >= 32) else ok
        else:
            ok = ok[gang_sizes[ok] <= 8] if np.any(gang_sizes[ok] <= 8) else ok
        gi = int(rng.choice(ok))
        job_type[i], gang[i] = t, gang_sizes[gi]
        gang_min[i], gang_max[i] = gang_sizes[ok].min(), gang_sizes[ok].max()  # sizes the job may run at
    gidx = np.searchsorted(gang_sizes, gang)
    steps = dur_s * thr[job_type, gidx, ref_pool]
    gaps = rng.exponential(S_PER_H / setup.jobs_per_h, n)
    arrival = np.concatenate([[0.0], np.cumsum(gaps[1:])])
    tenant = rng.choice(len(TENANTS), size=n)
    return JobSet(arrival_s=arrival, job_type=job_type, steps=steps, gang=gang, tenant=tenant,
                  gang_min=gang_min, gang_max=gang_max)


VARIANTS = (  # (name, policy, aware, grid, carbon weight, the policy chooses gang sizes)
    ("fifo", "fifo", False, False, 0.0, False),
    ("las-agnostic", "max-min-fairness", False, False, 0.0, False),
    ("las-aware", "max-min-fairness", True, False, 0.0, False),
    ("las-aware-gang-choice", "max-min-fairness", True, False, 0.0, True),
    ("las-aware-grid", "max-min-fairness", True, True, None, False),  # None: setup.carbon_weight
)


def run_fleet(jobs: JobSet, cluster: Cluster, thr: np.ndarray, gang_sizes: np.ndarray,
              setup: FleetSetup) -> pd.DataFrame:
    """One row per variant: JCT, energy, carbon, energy by tenant, cap compliance."""
    rows = []
    for name, policy, aware, grid, cw, choose in VARIANTS:
        cl = cluster if grid else Cluster(**{**cluster.__dict__, "site_cap_w": None})
        cfg = SimConfig(policy=policy, aware=aware, choose_gang=choose, stop_after=setup.window, seed=setup.seed,
                        carbon_weight=setup.carbon_weight if cw is None else cw)
        res = RoundSimulator(jobs, cl, thr, gang_sizes, cfg).run()
        w = res.window(*setup.window)
        lo, hi = setup.window
        by_tenant = np.bincount(jobs.tenant[lo:hi], weights=res.energy_j[lo:hi], minlength=len(TENANTS)) / 3.6e9
        rounds_capped = 0
        if cluster.site_cap_w is not None:
            hours = (res.round_start_s // S_PER_H).astype(int)
            cap = cluster.site_cap_w[:, np.minimum(hours, cluster.site_cap_w.shape[1] - 1)].T
            rounds_capped = int(np.sum(np.any(res.site_power_w > cap + 1e-6, axis=1)))
        rows.append({"variant": name, "policy": policy, "aware": aware, "grid": grid, "gang_choice": choose,
                     "avg_jct_h": w["avg_jct_h"], "energy_mwh": w["energy_mwh"], "carbon_t": w["carbon_t"],
                     "jobs": w["jobs"], "site_energy_mwh": (res.site_energy_j / 3.6e9).round(3).tolist(),
                     "site_carbon_t": (res.site_carbon_g / 1e6).round(3).tolist(),
                     **{f"energy_mwh_{t}": float(by_tenant[i]) for i, t in enumerate(TENANTS)},
                     "rounds_above_cap": rounds_capped, "solves": res.solves, "wall_s": res.wall_s})
    return pd.DataFrame(rows)


def fleet_study(setup: FleetSetup | None = None) -> tuple[pd.DataFrame, FleetSetup, object]:
    """Load the grid series and the fleet job table, run every variant; returns (table, setup, throughputs)."""
    setup = setup or FleetSetup()
    cat = load_catalog()
    table = load_fleet_jobs()
    types = [p[1] for p in POOLS]
    thr = table.tensor(acc_types=types)
    gang_sizes = np.asarray(table.gang_axis)
    kinds = [table.kind(j) for j in table.job_types]
    start = pd.Timestamp(setup.start)
    hours = 24 * 60
    idx = pd.date_range(start, periods=hours, freq="h")

    def series(load, col):
        rows = []
        for _, zone in SITES:
            s = load(zone)[col]
            s = s.reindex(idx)
            if s.isna().any():
                raise GridShiftError(f"{zone}: {col} has no data for {idx[s.isna()][0]}", field=col)
            rows.append(s.to_numpy(dtype=float))
        return np.vstack(rows)

    carbon = series(load_carbon, "carbon_g_per_kwh")
    price = series(load_price, "price_usd_per_mwh")
    cluster = fleet_cluster(cat, carbon, price, setup)
    jobs = fleet_jobs(thr, gang_sizes, kinds, ref_pool=types.index("H100"), setup=setup)
    return run_fleet(jobs, cluster, thr, gang_sizes, setup), setup, table
