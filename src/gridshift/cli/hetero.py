"""`gridshift hetero …` commands: heterogeneity-aware policies on mixed fleets.

* ``reproduce-gavel`` — Gavel's published simulation experiments, ours beside the published figures;
* ``fleet`` — a mixed modern fleet (H100, A100, Trainium2, Inferentia2, Ascend 910B) under one site's
  afternoon power cap and the zone's hourly carbon, agnostic vs aware.

The maths lives in :mod:`gridshift.plan.allocation`, :mod:`gridshift.sim.rounds` and the studies
:mod:`gridshift.studies.gavel` and :mod:`gridshift.studies.hetero_fleet`; this module parses
options, calls them and prints (tables in :mod:`gridshift.report.hetero`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gridshift.errors import GridShiftError, ScenarioError

hetero_app = typer.Typer(no_args_is_help=True, help="Heterogeneity-aware allocation on mixed accelerator fleets.")


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
        mechanics: Annotated[str, typer.Option(
            help="Round mechanics: gavel (Gavel's simulator: re-solve at most every 1,920 s, received time kept) "
                 "or gridshift (GridShift's default).")] = "gavel",
        fifo_fastest_free: Annotated[bool, typer.Option(
            help="Also run the makespan experiment's FIFO as Gavel's code runs it (fifo-fastest-free).")] = False,
    ) -> None:
        """Gavel's published experiments (OSDI 2020): least-attained-service with single- and multi-GPU jobs,
        and the makespan of 500 static jobs; ours printed beside the published figures."""
        from gridshift.cli.common import fail, out
        from gridshift.report.hetero import gavel_table
        from gridshift.report.output import write_json_atomic
        from gridshift.studies.gavel import reproduce_gavel

        try:
            if not 1 <= seeds <= 100:
                raise ScenarioError(f"must be from 1 to 100 (got {seeds})", field="seeds")
            if not 1 <= workers <= 256:
                raise ScenarioError(f"must be from 1 to 256 (got {workers})", field="workers")
            if mechanics not in ("gavel", "gridshift"):
                raise ScenarioError(f"expected gavel or gridshift, got {mechanics!r}", field="mechanics")
            names = [x.strip() for x in only.split(",") if x.strip()] if only else None
            if names:
                from gridshift.studies.gavel import experiments
                known = [e.name for e in experiments(quick)]
                bad = [n for n in names if n not in known]
                if bad:
                    raise ScenarioError(f"unknown experiment '{bad[0]}'; expected one of {', '.join(known)}",
                                        field="only")
            rows = reproduce_gavel(quick=quick, seeds=list(range(seeds)), gang_choice=gang_choice,
                                   workers=workers, only=names, mechanics=mechanics,
                                   fifo_fastest_free=fifo_fastest_free)
        except GridShiftError as e:
            fail(e)
        out.print(gavel_table(rows))
        if out_dir is not None:
            keys = ("name", "policy", "policy_detail", "jobs_per_h", "avg_jct_h", "makespan_h",
                    "published_avg_jct_h", "published_makespan_h", "seeds", "avg_jct_h_by_seed",
                    "makespan_h_by_seed", "makespan_lp_bound_h", "makespan_lp_bound_h_by_seed", "jobs_measured",
                    "energy_mwh", "moves", "wall_s", "solve_s")
            doc = {"experiments": [{k: r.get(k) for k in keys} for r in rows], "quick": quick,
                   "cluster": {"K80": 36, "P100": 36, "V100": 36}, "round_s": 360.0, "mechanics": mechanics}
            out_dir.mkdir(parents=True, exist_ok=True)
            write_json_atomic(out_dir / "gavel.json", doc)
            out.print(f"wrote {out_dir / 'gavel.json'}")


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
    from gridshift.report.hetero import fleet_table
    from gridshift.report.output import write_json_atomic, write_text_atomic
    from gridshift.studies.hetero_fleet import FleetSetup, fleet_study

    try:
        if not 30 <= jobs <= 100_000:
            raise ScenarioError(f"must be from 30 to 100,000 (got {jobs})", field="jobs")
        if not 0 < jobs_per_h <= 10_000:  # nan and inf fail too
            raise ScenarioError(f"must be above 0 and at most 10,000 (got {jobs_per_h:g})", field="jobs-per-h")
        if not 0 <= seed < 2**32:
            raise ScenarioError(f"must be from 0 to 2^32 - 1 (got {seed})", field="seed")
        if not 0 <= carbon_weight <= 1:
            raise ScenarioError("must be between 0 and 1", field="carbon-weight")
        if not 0 < cap_frac <= 1:
            raise ScenarioError("must be in (0, 1]", field="cap-frac")
        setup = FleetSetup(jobs_per_h=jobs_per_h, n_jobs=jobs, window=(jobs // 6, jobs - jobs // 6),
                           carbon_weight=carbon_weight, cap_frac=cap_frac, seed=seed)
        df, setup, _ = fleet_study(setup)
    except GridShiftError as e:
        fail(e)
    out.print(fleet_table(df, setup.window, setup.n_jobs))
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out_dir / "fleet.json", {"setup": setup.__dict__, "variants": df.to_dict("records")})
        write_text_atomic(out_dir / "fleet.csv", df.drop(columns=["site_energy_mwh", "site_carbon_t"]).to_csv(index=False))
        out.print(f"wrote {out_dir / 'fleet.json'}")
