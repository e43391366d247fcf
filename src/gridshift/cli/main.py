"""Command line: ``gridshift simulate | demo | schema | data | catalog``.

Every user error (bad scenario, bad data, unknown name) prints one line and exits with code 2.
"""

from __future__ import annotations

import json
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from gridshift.cli.common import OneLineErrors, err, out, progress_after
from gridshift.cli.common import fail as _fail
from gridshift.errors import GridShiftError, ScenarioError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="GridShift: make AI compute follow the grid.",
                  cls=OneLineErrors)


def _version(value: bool) -> None:
    if value:
        from gridshift import __version__

        out.print(f"gridshift {__version__}", markup=False, highlight=False)
        raise typer.Exit()


@app.callback()
def _options(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                   help="Print the version and exit.")] = False) -> None:
    """GridShift: make AI compute follow the grid."""
data_app = typer.Typer(no_args_is_help=True, help="The data registry: list, verify and locate datasets.")
app.add_typer(data_app, name="data")


def _run(scenario_path: str, scenario, policies: list[str] | None, out_dir: Path, quiet: bool,
         t0: float | None = None) -> None:
    from gridshift.data import load_registry
    from gridshift.plan.registry import POLICIES
    from gridshift.report.output import check_output_dir
    from gridshift.report.run_report import data_attributions, summary_table, write_report
    from gridshift.sim.runner import metrics_doc, policy_specs, run_policies
    from gridshift.world.build import assemble

    t0 = time.perf_counter() if t0 is None else t0
    try:  # what the command line gave is checked first, and blamed on the command line
        for name in policies or []:
            if name not in POLICIES and name not in {s.key for s in scenario.policies}:
                raise ScenarioError(f"unknown policy '{name}' (known: {', '.join(sorted(POLICIES))})",
                                    field="--policy")
        check_output_dir(out_dir)
    except GridShiftError as e:
        _fail(e)
    try:
        with err.status("loading data and building workloads", spinner="dots") if not quiet else _null():
            asm = assemble(scenario)
        for note in asm.notes if not quiet else []:
            if note.startswith("warning: "):
                err.print(note, markup=False, highlight=False, soft_wrap=True)
        specs = policy_specs(asm, policies)
        progress = Progress(TextColumn("{task.description:<12}"), BarColumn(), TextColumn("{task.completed}/{task.total} slots"),
                            TimeElapsedColumn(), TimeRemainingColumn(), console=err, disable=quiet)
        with progress:
            tasks = {s.key: progress.add_task(s.key, total=asm.world.n_slots) for s in specs}

            def tick(name: str, t: int, T: int) -> None:
                if t % 24 == 0 or t == T:
                    progress.update(tasks[name], completed=t)

            runs = run_policies(asm, specs, tick)
        doc = metrics_doc(asm, runs)
        final = write_report(out_dir, scenario.name, runs, doc, scenario_summary=asm.summary(),
                             attributions=data_attributions(load_registry().values()))
    except GridShiftError as e:
        _fail(e, scenario_path)
    if not quiet:
        out.print(summary_table(runs))
        for r in runs:
            for w in r.metrics.get("plan_warnings", [])[:10]:
                err.print(f"warning ({r.policy}): {w}", markup=False, highlight=False, soft_wrap=True)
        out.print(f"wrote {final}/metrics.json, report.html, PNGs and timeseries/ "
                  f"in {time.perf_counter() - t0:.1f} s")


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


@app.command()
def simulate(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file.")],
    policy: Annotated[list[str] | None, typer.Option("--policy", "-p", help="Policy name (repeatable); default: the scenario's.")] = None,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Output directory (written atomically).")] = Path("out"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or summary table.")] = False,
) -> None:
    """Simulate a scenario under one or more policies and write metrics, time series and a report."""
    from gridshift.data.scenario import load_scenario

    t0 = time.perf_counter()
    try:
        with progress_after(f"reading {scenario}", quiet):
            sc = load_scenario(scenario)
    except GridShiftError as e:
        _fail(e)
    _run(str(scenario), sc, policy, out_dir, quiet, t0)


@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")] = Path("gridshift-demo"),
    jobs: Annotated[int | None, typer.Option(help="Override the number of batch jobs.")] = None,
    days: Annotated[int | None, typer.Option(help="Override the number of simulated days.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or summary table.")] = False,
) -> None:
    """Run the bundled demo scenario (4 weeks of 2023, 4 sites on 4 grids, mixed accelerators, real traces)."""
    from datetime import timedelta

    from gridshift.data.scenario import parse_scenario

    src = "gridshift/scenarios/demo.yaml"
    try:
        for name, value, most in (("jobs", jobs, 10_000_000), ("days", days, 3660)):
            if value is not None and not 1 <= value <= most:
                raise ScenarioError(f"must be from 1 to {most:,}, not {value}", field=name)
        sc = parse_scenario(resources.files("gridshift").joinpath("scenarios/demo.yaml").read_text(), src)
        upd = {}
        if jobs is not None:
            upd["workloads"] = sc.workloads.model_copy(update={"generate": sc.workloads.generate.model_copy(update={"count": jobs})})
        if days is not None:
            upd["time_range"] = sc.time_range.model_copy(update={"end": sc.time_range.start + timedelta(days=days)})
        if upd:
            from gridshift.model.scenario import Scenario
            sc = Scenario.model_validate({**sc.model_dump(), **{k: v.model_dump() for k, v in upd.items()}})
    except GridShiftError as e:
        _fail(e)
    _run(src, sc, None, out_dir, quiet)


@app.command()
def explain(
    out_dir: Annotated[Path, typer.Argument(help="Output directory of `gridshift simulate` or `demo`.")],
    job: Annotated[str, typer.Option("--job", "-j", help="Job id.")],
    policy: Annotated[list[str] | None, typer.Option("--policy", "-p", help="Policy (repeatable); default all.")] = None,
) -> None:
    """Say why a job ran where and when it did: intensity and price it met and avoided, what bound it."""
    from gridshift.report.explain import explain_job, policies_in

    try:
        names = policy or policies_in(out_dir)
        for name in names:
            for line in explain_job(out_dir, job, name):
                out.print(line, markup=False, highlight=False, soft_wrap=True)
            out.print()
    except GridShiftError as e:
        _fail(e)


@app.command()
def schema(
    model: Annotated[str, typer.Argument(help="scenario | job | site | service | accelerator")] = "scenario",
) -> None:
    """Print the JSON Schema of a model."""
    from gridshift import model as m

    models = {"scenario": m.Scenario, "job": m.Job, "site": m.Site, "service": m.Service,
              "accelerator": m.AcceleratorType, "zone": m.Zone}
    if model not in models:
        _fail(GridShiftError(f"unknown model '{model}' (known: {', '.join(models)})"))
    out.print_json(json.dumps(models[model].model_json_schema()))


@app.command()
def catalog() -> None:
    """List the accelerator catalog with sources."""
    from gridshift.catalog import catalog_table

    rows = catalog_table()
    t = Table(title="Accelerator catalog")
    keys = [k for k in rows[0] if not isinstance(rows[0][k], (dict, list))][:10]
    for k in keys:
        t.add_column(k)
    for r in rows:
        t.add_row(*[str(r.get(k, "")) for k in keys])
    out.print(t)


@data_app.command("list")
def data_list() -> None:
    """List every registered dataset, where it resolves, and its license."""
    from gridshift.data import load_registry
    from gridshift.data.registry import dataset_years
    from gridshift.data.registry import find as find_local

    t = Table(title="Datasets (per-year datasets: the default year's file)")
    for c in ("name", "years", "license", "size MB", "found at"):
        t.add_column(c)
    for name, d in sorted(load_registry().items()):
        p = find_local(name)
        years = dataset_years(name)
        t.add_row(name, f"{years[0]}–{years[-1]}" if years else "", d.license[:40], f"{d.bytes / 1e6:.2f}",
                  str(p) if p else "(not local; downloads on use)")
    out.print(t)


@data_app.command("verify")
def data_verify(name: Annotated[str | None, typer.Argument()] = None,
                year: Annotated[int | None, typer.Option(help="Only this year's file of a per-year dataset.")] = None,
                ) -> None:
    """Check SHA-256 of one dataset (every year's file of a per-year one), or all that are present locally."""
    from gridshift.data import load_registry
    from gridshift.data.registry import find as find_local
    from gridshift.data.registry import verify

    try:
        names = [name] if name else sorted(n for n in load_registry() if find_local(n))
        bad = 0
        for n in names:
            ok, detail = verify(n, year)
            bad += not ok
            out.print(f"{'ok ' if ok else 'BAD'} {n}: {detail}", markup=False, highlight=False)
    except GridShiftError as e:
        _fail(e)
    if bad:
        raise typer.Exit(1)


@data_app.command("path")
def data_path(name: str,
              year: Annotated[int | None, typer.Option(help="A year of a per-year dataset (default 2023).")] = None,
              ) -> None:
    """Print the local path of a dataset (downloading it if needed)."""
    from gridshift.data import resolve

    try:
        out.print(str(resolve(name, year=year)), markup=False, highlight=False, soft_wrap=True)
    except GridShiftError as e:
        _fail(e)


def _register_studies() -> None:
    """Commands that live in their own modules (planning studies, forecasting)."""
    from gridshift.cli import capacity, flex, forecast, gateway, headroom, hetero, kueue, serve, signals, sweep, ven

    for mod in (capacity, headroom, sweep, forecast, ven, flex, serve, hetero, signals, gateway, kueue):
        mod.register(app)


_register_studies()


def main() -> None:
    try:
        app()
    except GridShiftError as e:  # anything not caught closer to its command
        err.print(f"error: {e}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
