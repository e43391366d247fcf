"""`gridshift hetero …` commands: heterogeneity-aware policies on mixed fleets.

* ``reproduce-gavel`` — Gavel's published simulation experiments, ours beside the published figures;
* ``fleet`` — a mixed modern fleet (H100, A100, Trainium2, Inferentia2, Ascend 910B) under one site's
  afternoon power cap and the zone's hourly carbon, agnostic vs aware.

The maths lives in :mod:`gridshift.plan.allocation`, :mod:`gridshift.sim.rounds` and the studies
:mod:`gridshift.studies.gavel` and :mod:`gridshift.studies.hetero_fleet`; this module reads data, parses
options and writes results.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Annotated

import typer

from gridshift.errors import GridShiftError, ScenarioError

hetero_app = typer.Typer(no_args_is_help=True, help="Heterogeneity-aware allocation on mixed accelerator fleets.")


def _gavel_inputs():
    from gridshift.catalog import load_catalog
    from gridshift.studies.gavel import gavel_cluster, gavel_table, gavel_tensor

    cat = load_catalog()
    _, thr = gavel_tensor(gavel_table(catalog=cat))
    board = {n: cat[n].board_power_w for n in ("K80", "P100", "V100")}
    idle = {n: cat[n].idle_power_w for n in ("K80", "P100", "V100")}
    return thr, gavel_cluster(board, idle)


def _run_one(args: tuple) -> dict:
    from gridshift.studies.gavel import run_experiment

    exp, variant, seed, choose_gang = args
    thr, cluster = _gavel_inputs()
    return run_experiment(exp, variant, thr, cluster, seed, choose_gang=choose_gang)


def reproduce_gavel(*, quick: bool, seeds: list[int], gang_choice: bool, workers: int,
                    only: list[str] | None = None) -> list[dict]:
    """Run every experiment × variant × seed (and the gang-choice variant of the multi-GPU experiment)."""
    from gridshift.studies.gavel import experiments, summarise

    exps = [e for e in experiments(quick) if not only or e.name in only]
    tasks = [(e, v, s, False) for e in exps for v in ("agnostic", "aware") for s in seeds]
    if gang_choice:
        tasks += [(e, "aware", s, True) for e in exps if e.multi_gpu for s in seeds]
    if workers > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            rows = list(pool.map(_run_one, tasks))
    else:
        rows = [_run_one(t) for t in tasks]
    return summarise(rows)


def _table(rows: list[dict]):
    from rich.table import Table

    t = Table(title="Gavel reproduction (ours vs published; mean over seeds)")
    for c in ("experiment", "policy", "jobs/h", "avg JCT h", "published", "makespan h", "published", "wall s"):
        t.add_column(c, justify="left" if c in ("experiment", "policy") else "right")

    def f(v):
        return "–" if v is None or v != v else f"{v:,.2f}"
    for r in rows:
        t.add_row(r["name"], r["policy_detail"], f(r["jobs_per_h"]), f(r["avg_jct_h"]), f(r["published_avg_jct_h"]),
                  f(r["makespan_h"]), f(r["published_makespan_h"]), f(r["wall_s"]))
    return t


def register(app: typer.Typer) -> None:
    """Add the ``hetero`` command group to ``app``."""
    app.add_typer(hetero_app, name="hetero")

    @hetero_app.command("reproduce-gavel")
    def reproduce_gavel_cmd(
        out_dir: Annotated[Path | None, typer.Option("--out", "-o", help="Write DIR/gavel.json.")] = None,
        quick: Annotated[bool, typer.Option(help="Reduced size (jobs 60–160 of 260; 60 static jobs).")] = False,
        seeds: Annotated[int, typer.Option(help="Seeds 0..N-1 (Gavel's figures average three).")] = 3,
        gang_choice: Annotated[bool, typer.Option(
            help="Also run the multi-GPU experiments with the policy choosing each job's gang size.")] = True,
        workers: Annotated[int, typer.Option(help="Processes to run experiments in parallel.")] = 1,
        only: Annotated[str | None, typer.Option(help="Comma-separated experiment names to run.")] = None,
    ) -> None:
        """Gavel's published experiments (OSDI 2020): least-attained-service with single- and multi-GPU jobs,
        and the makespan of 500 static jobs; ours printed beside the published figures."""
        from gridshift.cli.common import fail, out
        from gridshift.report.output import write_json_atomic

        try:
            if seeds < 1:
                raise ScenarioError("must be at least 1", field="seeds")
            if workers < 1:
                raise ScenarioError("must be at least 1", field="workers")
            names = [x.strip() for x in only.split(",") if x.strip()] if only else None
            if names:
                from gridshift.studies.gavel import experiments
                known = [e.name for e in experiments(quick)]
                bad = [n for n in names if n not in known]
                if bad:
                    raise ScenarioError(f"unknown experiment '{bad[0]}'; expected one of {', '.join(known)}",
                                        field="only")
            rows = reproduce_gavel(quick=quick, seeds=list(range(seeds)), gang_choice=gang_choice,
                                   workers=workers, only=names)
        except GridShiftError as e:
            fail(e)
        out.print(_table(rows))
        if out_dir is not None:
            keys = ("name", "policy", "policy_detail", "jobs_per_h", "avg_jct_h", "makespan_h",
                    "published_avg_jct_h", "published_makespan_h", "seeds", "avg_jct_h_by_seed",
                    "makespan_h_by_seed", "makespan_lp_bound_h", "makespan_lp_bound_h_by_seed", "jobs_measured",
                    "energy_mwh", "moves", "wall_s", "solve_s")
            doc = {"experiments": [{k: r.get(k) for k in keys} for r in rows], "quick": quick,
                   "cluster": {"K80": 36, "P100": 36, "V100": 36}, "round_s": 360.0}
            out_dir.mkdir(parents=True, exist_ok=True)
            write_json_atomic(out_dir / "gavel.json", doc)
            out.print(f"wrote {out_dir / 'gavel.json'}")


def fleet_study(setup=None):
    """Load the grid series and the fleet job table, run every variant; returns (table, setup, throughputs)."""
    import numpy as np
    import pandas as pd

    from gridshift.catalog import load_catalog
    from gridshift.catalog.fleet_jobs import load_fleet_jobs
    from gridshift.data.grid import load_carbon, load_price
    from gridshift.studies.hetero_fleet import POOLS, SITES, FleetSetup, fleet_cluster, fleet_jobs, run_fleet

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


@hetero_app.command("fleet")
def fleet_cmd(
    out_dir: Annotated[Path | None, typer.Option("--out", "-o", help="Write DIR/fleet.json and fleet.csv.")] = None,
    jobs: Annotated[int, typer.Option(help="Jobs in the stream (JCT averaged over the middle two thirds).")] = 600,
    jobs_per_h: Annotated[float, typer.Option(help="Poisson arrival rate.")] = 6.0,
    carbon_weight: Annotated[float, typer.Option(help="Carbon weight of the grid-aware variant (0-1).")] = 0.3,
    cap_frac: Annotated[float, typer.Option(help="Texas's afternoon cap as a share of its full draw.")] = 0.6,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """A mixed modern fleet (H100, Trainium2, Inferentia2 in Texas; A100, Ascend 910B in California) running
    LLM pre-training, fine-tuning and batch inference: FIFO and least-attained-service, agnostic vs aware,
    and aware with an afternoon power cap and a carbon weight; JCT, energy, carbon, energy per tenant."""
    from gridshift.cli.common import fail, out
    from gridshift.report.output import write_json_atomic, write_text_atomic
    from gridshift.studies.hetero_fleet import FleetSetup

    try:
        if jobs < 30:
            raise ScenarioError("must be at least 30", field="jobs")
        if not jobs_per_h > 0:
            raise ScenarioError("must be positive", field="jobs-per-h")
        if not 0 <= carbon_weight <= 1:
            raise ScenarioError("must be between 0 and 1", field="carbon-weight")
        if not 0 < cap_frac <= 1:
            raise ScenarioError("must be in (0, 1]", field="cap-frac")
        setup = FleetSetup(jobs_per_h=jobs_per_h, n_jobs=jobs, window=(jobs // 6, jobs - jobs // 6),
                           carbon_weight=carbon_weight, cap_frac=cap_frac, seed=seed)
        df, setup, _ = fleet_study(setup)
    except GridShiftError as e:
        fail(e)
    from rich.table import Table

    t = Table(title=f"Mixed fleet, jobs {setup.window[0]}–{setup.window[1] - 1} of {setup.n_jobs}")
    cols = ("variant", "avg_jct_h", "energy_mwh", "carbon_t", "rounds_above_cap", "energy_mwh_research",
            "energy_mwh_product", "energy_mwh_platform")
    for c in cols:
        t.add_column(c, justify="left" if c == "variant" else "right")
    for _, r in df.iterrows():
        t.add_row(*[str(r[c]) if c in ("variant", "rounds_above_cap") else f"{r[c]:,.2f}" for c in cols])
    out.print(t)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out_dir / "fleet.json", {"setup": setup.__dict__, "variants": df.to_dict("records")})
        write_text_atomic(out_dir / "fleet.csv", df.drop(columns=["site_energy_mwh", "site_carbon_t"]).to_csv(index=False))
        out.print(f"wrote {out_dir / 'fleet.json'}")
