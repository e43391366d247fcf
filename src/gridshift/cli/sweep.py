"""`gridshift sweep` command (registered on the main app by `register`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gridshift.errors import GridShiftError


def sweep(
    sweep_file: Annotated[Path, typer.Argument(help="Sweep YAML file (docs/guide/sweeps.md).", metavar="SWEEP.yaml")],
    out_dir: Annotated[Path | None, typer.Option("--out", "-o", help="Output directory (default: the sweep's "
                                                    "`out`, else out/sweep-NAME).")] = None,
    workers: Annotated[int | None, typer.Option("--workers", "-w", min=1, max=1024,
                                                   help="Cells at once (local Ray CPUs; default: the sweep's "
                                                        "`workers`, else all CPUs).")] = None,
    address: Annotated[str | None, typer.Option("--address", help="Address of an existing Ray cluster, e.g. "
                                                   "ray://head:10001 or auto (default: a local Ray).")] = None,
    retry_failed: Annotated[bool, typer.Option("--retry-failed/--no-retry-failed",
                                               help="Run cells that failed before again.")] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar, per-cell failures or summary "
                                                               "table (the exit code still tells).")] = False,
) -> None:
    """Run a grid of scenario variants (zones × years × seeds × fleet scales × policies) on Ray; resumable.

    Writes OUT/cells/<id>/result.json per cell, OUT/results.parquet, OUT/report.html and OUT/failures.csv
    (when cells failed). Exit code 1 when any cell failed, 2 on a bad sweep file.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from gridshift.cli.common import err, fail, out
    from gridshift.report.sweep import summary_table
    from gridshift.studies.sweep_run import load_sweep, run_sweep

    try:
        loaded = load_sweep(sweep_file)
    except GridShiftError as e:
        fail(e, str(sweep_file))
    dest = out_dir or Path(loaded.spec.out or Path("out") / f"sweep-{loaded.spec.name}")
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("cells"),
                        TextColumn("[red]{task.fields[failed]} failed"), TimeElapsedColumn(), TimeRemainingColumn(),
                        console=err, disable=quiet)
    state: dict = {}

    def on_start(to_run: int, skipped: int) -> None:
        if not quiet and skipped:
            err.print(f"{skipped} cell(s) already done in {dest}; running {to_run}", markup=False, highlight=False)
        state["task"] = progress.add_task(f"sweep {loaded.spec.name}", total=to_run, failed=0)
        state["failed"] = 0

    def on_cell(doc: dict) -> None:
        state["failed"] += doc["status"] != "ok"
        progress.update(state["task"], advance=1, failed=state["failed"])
        if doc["status"] != "ok" and not quiet:
            progress.console.print(f"cell {doc['cell_id']} failed: {doc['error']}", markup=False, highlight=False,
                                   soft_wrap=True)

    try:
        with progress:
            res = run_sweep(loaded, dest, workers=workers, address=address, retry_failed=retry_failed,
                            on_start=on_start, on_cell=on_cell)
    except GridShiftError as e:
        fail(e)
    if not quiet:
        if res.table is not None and len(res.table):
            out.print(summary_table(res.table, loaded.spec.plot_metrics))
        n_fail = res.n_failed_in_table
        out.print(f"{len(res.cells)} cells: {len(res.ran)} ran, {len(res.skipped)} already done, {n_fail} failed; "
                  f"wrote {res.out_dir}/results.parquet, report.html"
                  f"{' and failures.csv' if n_fail else ''} in {res.timing_s['total_s']:.1f} s",
                  markup=False, highlight=False, soft_wrap=True)
    if res.n_failed_in_table:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("sweep")(sweep)
