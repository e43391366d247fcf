"""Reproduction of Gavel's published simulation experiments (Narayanan et al., OSDI 2020, §7.2–7.3).

Cluster: 36 V100 + 36 P100 + 36 K80. Jobs generated as Gavel's ``scheduler/utils.py`` does: job type
uniform over the 26 configurations (multi-GPU jobs only over those measured at that size), gang size 1/2/4/8
with probability 0.70/0.10/0.15/0.05 (1 only in the single-GPU experiment), duration 60·10^U(1.5, 3) s with
probability 0.8 else 60·10^U(3, 4) s, steps = duration × the job's V100 throughput at its size, Poisson
arrivals; average JCT over jobs 4000–5000 of a continuous stream; three seeds. The makespan experiment puts
500 multi-GPU jobs in the queue at t = 0.

Published figures (from the authors' notebooks in the Gavel repository, stanford-futuredata/gavel):
least-attained-service with single-GPU jobs at 5.6 jobs/h, heterogeneity-agnostic 95.99 h vs aware 28.96 h;
multi-GPU jobs at 2.8 jobs/h, 169.93 h vs 55.78 h; makespan of 500 static multi-GPU jobs, FIFO 426.6 h vs
heterogeneity-aware minimum makespan 169.4 h.

Round mechanics: the experiments run the round simulator with Gavel's own mechanics
(``SimConfig(mechanics="gavel")``: re-solve at most every 1,920 s, received time and deficits carried
between re-solves, per-type queues; see :mod:`gridshift.sim.rounds`); ``mechanics="gridshift"`` runs them
with GridShift's default. The makespan experiment's FIFO runs both ways Gavel's base FIFO can be read:
``fifo-random`` (a random free type, as the paper describes) and ``fifo-fastest-free`` (what its code
does; :mod:`gridshift.plan.allocation.rounds`); the published 426.6 h is printed beside both.

Multi-GPU weights: Gavel's LAS (``MaxMinFairnessPolicyWithPerf``) maximises the least
``scale_factor_j * throughput_j(x) / (priority_weight_j * proportional_throughput_j)``: multiplying by the
gang makes it fair in *accelerator time* (a job on 8 GPUs deserves 1/8 of the wall-clock time of a
one-GPU job). GridShift's max-min fairness is fair in *wall-clock time share* (every job, whatever its
gang, deserves the same share; :mod:`gridshift.plan.allocation.terms`); Gavel's proportional throughput is
GridShift's reference throughput up to one factor common to all jobs, which does not change the optimum.
With weight ``priority_weight / gang`` GridShift's objective is Gavel's (up to that factor), so the
reproduction with Gavel's mechanics uses those weights (``gang_weights``); GridShift's studies keep weight 1.

Workload generation, cluster and experiment definitions do no I/O: the throughput tensor is passed in
(:func:`gavel_tensor` turns a table into one); :func:`gavel_table` reads Gavel's throughput file through
:mod:`gridshift.data.gavel` and builds the table.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gridshift.catalog.accelerators import load_catalog
from gridshift.catalog.throughput import ThroughputTable
from gridshift.data.gavel import load_gavel_throughputs, load_gavel_trace
from gridshift.errors import DataError
from gridshift.model.time import S_PER_H
from gridshift.plan.allocation.policies import allocate
from gridshift.sim.rounds import Cluster, JobSet, RoundSimulator, SimConfig

GAVEL_TYPES = ("k80", "p100", "v100")
CATALOG_NAMES = {"k80": "K80", "p100": "P100", "v100": "V100"}
GANG_SIZES = np.array([1, 2, 4, 8])
REFERENCE = "v100"


@dataclass(frozen=True)
class Published:
    avg_jct_h: dict[str, float] | None = None  # by policy variant (agnostic / aware)
    makespan_h: dict[str, float] | None = None


PUBLISHED = {
    "las-single-5.6": Published(avg_jct_h={"agnostic": 95.99, "aware": 28.96}),
    "las-multi-2.8": Published(avg_jct_h={"agnostic": 169.93, "aware": 55.78}),
    "makespan-500": Published(makespan_h={"agnostic": 426.6, "aware": 169.4}),
}


@dataclass(frozen=True)
class Experiment:
    name: str
    jobs_per_h: float | None  # None = every job at t = 0
    multi_gpu: bool
    window: tuple[int, int]  # jobs whose JCT is averaged (lo <= id < hi)
    n_jobs: int  # jobs generated
    agnostic: tuple[str, bool]  # (policy, aware)
    aware: tuple[str, bool]
    metric: str  # "avg_jct_h" or "makespan_h"
    more: tuple[tuple[str, str, bool], ...] = ()  # further variants: (name, policy, aware)

    def variants(self) -> dict[str, tuple[str, bool]]:
        return {"agnostic": self.agnostic, "aware": self.aware} | {v: (p, a) for v, p, a in self.more}


def experiments(quick: bool = False) -> list[Experiment]:
    """The three published experiments; ``quick`` shrinks the job stream for the test suite."""
    if quick:
        win, n, static = (60, 160), 260, 60
    else:
        win, n, static = (4000, 5000), 9000, 500
    las = ("max-min-fairness", False), ("max-min-fairness", True)
    return [
        Experiment("las-single-5.6", 5.6, False, win, n, *las, metric="avg_jct_h"),
        Experiment("las-multi-2.8", 2.8, True, win, n, *las, metric="avg_jct_h"),
        Experiment("makespan-500", None, True, (0, static), static,
                   ("fifo-random", False), ("min-makespan", True), metric="makespan_h",
                   more=(("agnostic-fastest-free", "fifo-fastest-free", False),)),
    ]


def gavel_table(consolidated: bool = True, *, path: str | Path | None = None,
                catalog: Mapping[str, Any] | None = None) -> ThroughputTable:
    """Gavel's measured throughputs as a :class:`~gridshift.catalog.throughput.ThroughputTable`: read by
    :func:`gridshift.data.gavel.load_gavel_throughputs` (from the data registry, or ``path``), built by
    :meth:`~gridshift.catalog.throughput.ThroughputTable.from_gavel`."""
    return ThroughputTable.from_gavel(load_gavel_throughputs(path), consolidated, catalog=catalog)


def gavel_tensor(table) -> tuple[list[str], np.ndarray]:
    """``(job types, thr[type, gang, pool])`` from a :class:`~gridshift.catalog.throughput.ThroughputTable`
    built by :func:`gavel_table` (consolidated placements); pools ordered k80, p100, v100."""
    types = list(table.job_types)
    return types, table.tensor(types, GANG_SIZES, [CATALOG_NAMES[a] for a in GAVEL_TYPES])


def gavel_cluster(board_power_w: dict[str, float], idle_power_w: dict[str, float],
                  per_type: int = 36) -> Cluster:
    """Gavel's simulated cluster: ``per_type`` each of K80, P100, V100 at one site."""
    return Cluster(pool_type=[CATALOG_NAMES[a] for a in GAVEL_TYPES], count=np.full(3, per_type),
                   busy_power_w=np.array([board_power_w[CATALOG_NAMES[a]] for a in GAVEL_TYPES]),
                   idle_power_w=np.array([idle_power_w[CATALOG_NAMES[a]] for a in GAVEL_TYPES]))


def generate_jobs(thr: np.ndarray, *, n_jobs: int, jobs_per_h: float | None, multi_gpu: bool, seed: int,
                  choose_gang: bool = False) -> JobSet:
    """Gavel's job generator (see the module docstring). With ``choose_gang`` each job may run at any
    measured size from 1 to 8 (its generated size stays the default)."""
    rng = np.random.default_rng(seed)
    ref = GAVEL_TYPES.index(REFERENCE)
    if multi_gpu:
        u = rng.random(n_jobs)
        gang = np.select([u <= 0.7, u <= 0.8, u <= 0.95], [1, 2, 4], 8)
    else:
        gang = np.ones(n_jobs, dtype=np.int64)
    long = rng.random(n_jobs) >= 0.8
    dur_s = np.where(long, 60 * 10 ** rng.uniform(3, 4, n_jobs), 60 * 10 ** rng.uniform(1.5, 3, n_jobs))
    gi = np.searchsorted(GANG_SIZES, gang)
    runs_at = thr[:, :, ref] > 0  # [type, gang]
    job_type = np.empty(n_jobs, dtype=np.int64)
    for k in range(len(GANG_SIZES)):  # uniform over the configurations measured at that size
        idx = np.flatnonzero(gi == k)
        allowed = np.flatnonzero(runs_at[:, k])
        job_type[idx] = rng.choice(allowed, size=len(idx))
    steps = dur_s * thr[job_type, gi, ref]
    if jobs_per_h is None:
        arrival = np.zeros(n_jobs)
    else:
        gaps = rng.exponential(S_PER_H / jobs_per_h, n_jobs)
        arrival = np.concatenate([[0.0], np.cumsum(gaps[1:])])
    min_g = max_g = None
    if choose_gang:
        multi = runs_at[job_type][:, 1:].any(axis=1)  # distributed-capable configuration
        min_g = np.ones(n_jobs, dtype=np.int64)
        max_g = np.where(multi, 8, 1)
    return JobSet(arrival_s=arrival, job_type=job_type, steps=steps, gang=gang, gang_min=min_g, gang_max=max_g)


def jobs_from_trace(path: str | Path, job_types: list[str], thr: np.ndarray) -> JobSet:
    """Gavel's exact jobs from a trace in its format (:func:`gridshift.data.gavel.load_gavel_trace`):
    job type by name (``job_types`` as :func:`gavel_tensor` returns them), gang = scale factor, steps =
    total steps, weight = priority weight, arrival times as given (sorted, stably). SLOs are not used
    (Gavel's LAS and makespan policies ignore them)."""
    df = load_gavel_trace(path)
    index = {t: i for i, t in enumerate(job_types)}
    unknown = sorted(set(df["job_type"]) - set(index))
    if unknown:
        raise DataError(f"job type {unknown[0]!r} has no measured throughput", file=path, field="job_type")
    gang = df["scale_factor"].to_numpy(np.int64)
    bad = ~np.isin(gang, GANG_SIZES)
    if bad.any():
        raise DataError(f"scale factor {int(gang[bad][0])} not one of {GANG_SIZES.tolist()}", file=path,
                        row=int(np.flatnonzero(bad)[0]) + 1, field="scale_factor")
    jt = df["job_type"].map(index).to_numpy(np.int64)
    runs = thr[jt, np.searchsorted(GANG_SIZES, gang)].max(axis=1) > 0
    if not runs.all():
        k = int(np.flatnonzero(~runs)[0])
        raise DataError(f"{df['job_type'].iat[k]!r} on {int(gang[k])} GPUs has no measured throughput", file=path,
                        row=k + 1, field="scale_factor")
    o = np.argsort(df["arrival_s"].to_numpy(float), kind="stable")
    return JobSet(arrival_s=df["arrival_s"].to_numpy(float)[o], job_type=jt[o],
                  steps=df["total_steps"].to_numpy(float)[o], gang=gang[o],
                  weight=df["priority_weight"].to_numpy(float)[o])


def makespan_lower_bound_h(jobs: JobSet, thr: np.ndarray, cluster: Cluster, *, choose_gang: bool = False) -> float:
    """A lower bound on the makespan (h) of ``jobs`` (all present at t = 0) under any schedule: the
    heterogeneity-aware minimum-makespan LP over the whole run (the fluid relaxation: time fractions instead
    of whole rounds). Any schedule that ends by ``T`` gives fractions ``time on pool / T`` that meet the
    LP's constraints with rate ``1 / T``, so ``T >= 1 / r*``."""
    sim = RoundSimulator(jobs, cluster, thr, GANG_SIZES, SimConfig(policy="min-makespan", choose_gang=choose_gang))
    res = allocate("min-makespan", sim.initial_problem(), aware=True, time_limit_s=120.0)
    return float(1.0 / res.objective / S_PER_H) if res.objective > 0 else float("nan")


def run_experiment(exp: Experiment, variant: str, thr: np.ndarray, cluster: Cluster, seed: int, *,
                   choose_gang: bool = False, jobs: JobSet | None = None, mechanics: str = "gavel",
                   gang_weights: bool | None = None, **config) -> dict:
    """Run one experiment variant (``"agnostic"``, ``"aware"`` or one of ``exp.more``) for one seed on the
    generated stream (or on ``jobs``, e.g. a Gavel trace); returns a result row. ``gang_weights`` (default:
    with Gavel's mechanics) divides each job's weight by its (requested) gang, as Gavel's LAS does."""
    policy, aware = exp.variants()[variant]
    if jobs is None:
        jobs = generate_jobs(thr, n_jobs=exp.n_jobs, jobs_per_h=exp.jobs_per_h, multi_gpu=exp.multi_gpu,
                             seed=seed, choose_gang=choose_gang)
    if (mechanics == "gavel" if gang_weights is None else gang_weights) and policy == "max-min-fairness":
        jobs = replace(jobs, weight=jobs.weight / jobs.gang)
    cfg = SimConfig(policy=policy, aware=aware, choose_gang=choose_gang, stop_after=exp.window, seed=seed,
                    mechanics=mechanics, **config)
    res = RoundSimulator(jobs, cluster, thr, GANG_SIZES, cfg).run()
    w = res.window(*exp.window)
    bound = (makespan_lower_bound_h(jobs, thr, cluster, choose_gang=choose_gang)
             if exp.metric == "makespan_h" else None)
    pub = PUBLISHED.get(exp.name)
    pub_val = None
    if pub is not None:
        src = pub.avg_jct_h if exp.metric == "avg_jct_h" else pub.makespan_h
        pub_val = src.get(variant.split("-")[0]) if src else None
    return {"name": exp.name + ("-gang-choice" if choose_gang else ""), "policy": variant,
            "policy_detail": f"{policy} ({'aware' if aware else 'agnostic'})", "seed": seed,
            "mechanics": mechanics, "gang_weights": bool(jobs.weight.min() < 1),
            "jobs_per_h": exp.jobs_per_h, "avg_jct_h": w["avg_jct_h"], "makespan_h": w["makespan_h"],
            "jobs_measured": w["jobs"], "energy_mwh": w["energy_mwh"],
            "published_avg_jct_h": pub_val if exp.metric == "avg_jct_h" else None,
            "published_makespan_h": pub_val if exp.metric == "makespan_h" else None,
            "makespan_lp_bound_h": bound,
            "solves": res.solves, "solve_s": res.solve_s, "wall_s": res.wall_s, "moves": res.moves}


def summarise(rows: list[dict]) -> list[dict]:
    """Mean over seeds per (name, policy), keeping the published figure beside ours."""
    df = pd.DataFrame(rows)
    out = []
    for (_name, _pol), g in df.groupby(["name", "policy"], sort=False):
        r = g.iloc[0].to_dict()
        for k in ("avg_jct_h", "makespan_h", "energy_mwh", "wall_s", "solve_s"):
            r[k] = float(g[k].mean())
        r["seeds"] = [int(s) for s in g["seed"]]
        r["avg_jct_h_by_seed"] = [float(v) for v in g["avg_jct_h"]]
        r["makespan_h_by_seed"] = [float(v) for v in g["makespan_h"]]
        if g["makespan_lp_bound_h"].notna().all():
            r["makespan_lp_bound_h"] = float(g["makespan_lp_bound_h"].mean())
            r["makespan_lp_bound_h_by_seed"] = [float(v) for v in g["makespan_lp_bound_h"]]
        else:
            r["makespan_lp_bound_h"] = r["makespan_lp_bound_h_by_seed"] = None
        r["moves"] = float(g["moves"].mean())
        r.pop("seed", None)
        out.append(r)
    return out


def gavel_inputs() -> tuple[np.ndarray, Cluster]:
    """Gavel's throughput tensor (through the data registry) and its cluster with the catalog's power figures."""
    cat = load_catalog()
    _, thr = gavel_tensor(gavel_table(catalog=cat))
    board = {n: cat[n].board_power_w for n in ("K80", "P100", "V100")}
    idle = {n: cat[n].idle_power_w for n in ("K80", "P100", "V100")}
    return thr, gavel_cluster(board, idle)


def _run_one(args: tuple) -> dict:
    exp, variant, seed, choose_gang, mechanics = args
    thr, cluster = gavel_inputs()
    return run_experiment(exp, variant, thr, cluster, seed, choose_gang=choose_gang, mechanics=mechanics)


def reproduce_gavel(*, quick: bool, seeds: list[int], gang_choice: bool, workers: int,
                    only: list[str] | None = None, mechanics: str = "gavel",
                    fifo_fastest_free: bool = False) -> list[dict]:
    """Run every experiment × variant × seed (and the gang-choice variant of the multi-GPU experiment), in
    ``workers`` processes, with the round ``mechanics`` (Gavel's by default, see the module docstring);
    ``fifo_fastest_free`` adds the makespan experiment's ``agnostic-fastest-free`` variant."""

    exps = [e for e in experiments(quick) if not only or e.name in only]
    tasks = [(e, v, s, False, mechanics) for e in exps
             for v in (e.variants() if fifo_fastest_free else ("agnostic", "aware")) for s in seeds]
    if gang_choice:
        tasks += [(e, "aware", s, True, mechanics) for e in exps if e.multi_gpu for s in seeds]
    if workers > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            rows = list(pool.map(_run_one, tasks))
    else:
        rows = [_run_one(t) for t in tasks]
    return summarise(rows)
