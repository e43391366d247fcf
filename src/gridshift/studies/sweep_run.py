"""Run a sweep's cells on Ray and write its outputs.

``OUT/cells/<cell_id>/result.json`` holds a finished cell (status ``ok`` with its metrics, or ``failed``
with a one-line error) and ``scenario.json`` the exact scenario it ran; both are written atomically by the
driver as each cell finishes, so an interrupted sweep keeps every finished cell and workers need no shared
file system. At the end ``OUT/results.parquet`` (one row per cell), ``OUT/report.html`` and, when cells
failed, ``OUT/failures.csv`` are rebuilt from all cell results of the sweep, including those of earlier runs.

Resume: a cell whose ``result.json`` has status ``ok`` and the same ``scenario_sha256`` is not run again;
failed cells are run again unless ``retry_failed`` is off.
"""

from __future__ import annotations

import html as _html
import json
import logging
import math
import os
import socket
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from gridshift.errors import GridShiftError, ScenarioError
from gridshift.model.scenario import Scenario
from gridshift.report.output import (
    _write_parquet,
    to_jsonable,
    write_json_atomic,
    write_text_atomic,
)
from gridshift.data.scenario import load_scenario, read_text
from gridshift.studies.sweep import (
    AXES,
    Cell,
    SweepSpec,
    expand,
    parse_sweep,
    results_table,
)

SWEEP_DOC = "sweep.json"
RESULT = "result.json"
SCENARIO = "scenario.json"


@dataclass
class LoadedSweep:
    spec: SweepSpec
    path: Path
    base_path: Path
    base: Scenario
    cells: list[Cell]


def load_sweep(path: str | Path) -> LoadedSweep:
    """Read and validate a sweep file and its base scenario, and expand the cells (errors name the file)."""
    p = Path(path)
    spec = parse_sweep(read_text(p, "sweep file"), str(p))
    base_path = Path(spec.base) if Path(spec.base).is_absolute() else p.parent / spec.base
    if not base_path.is_file():
        raise ScenarioError(f"base scenario '{spec.base}' not found (looked at {base_path})", file=p, field="base")
    base = load_scenario(base_path)
    return LoadedSweep(spec, p, base_path, base, expand(spec, base, str(p)))


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _one_line(text: str, limit: int = 500) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


# --------------------------------------------------------------------------------------- in a worker
def run_cell(cell_id: str, scenario_doc: dict[str, Any]) -> dict[str, Any]:
    """Assemble and simulate one cell (the cell scenario has exactly one policy). Never raises: a failure
    is returned as status ``failed`` with a one-line error. Runs in a Ray worker."""
    from gridshift.world.build import assemble
    from gridshift.sim.runner import run_policies

    started, t0, c0 = _utc_now(), time.perf_counter(), time.process_time()
    out: dict[str, Any] = {"cell_id": cell_id, "status": "ok", "error": None, "metrics": None}
    try:
        sc = Scenario.model_validate(scenario_doc)
        asm = assemble(sc)
        (run,) = run_policies(asm, list(sc.policies))
        out["metrics"] = to_jsonable(run.metrics)
    except GridShiftError as e:
        out.update(status="failed", error=_one_line(str(e)))
    except Exception as e:  # noqa: BLE001 - an unexpected failure of one cell must not stop the sweep
        out.update(status="failed", error=_one_line(f"{type(e).__name__}: {e}"), traceback=traceback.format_exc())
    out.update(started_utc=started, finished_utc=_utc_now(), wall_s=time.perf_counter() - t0,
               cpu_s=time.process_time() - c0,
               worker={"host": socket.gethostname(), "pid": os.getpid()})
    return out


# ------------------------------------------------------------------------------------------ outputs
def read_result(out_dir: Path, cell_id: str) -> dict[str, Any] | None:
    p = Path(out_dir) / "cells" / cell_id / RESULT
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def is_done(result: dict[str, Any] | None, cell: Cell, retry_failed: bool = True) -> bool:
    """Whether a stored result makes running ``cell`` again unnecessary."""
    if result is None or result.get("cell_id") != cell.cell_id:
        return False
    if result.get("scenario_sha256") != cell.scenario_sha256:
        return False
    if result.get("status") == "ok":
        return True
    return result.get("status") == "failed" and not retry_failed


def _prepare_out(out_dir: Path, loaded: LoadedSweep) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise GridShiftError("output path exists and is not a directory", file=out_dir)
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / SWEEP_DOC).is_file():
        raise GridShiftError(f"output directory is not empty and holds no {SWEEP_DOC}; refusing to write a sweep "
                             "into it, choose another output path", file=out_dir)
    try:
        (out_dir / "cells").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise GridShiftError(f"cannot create output directory: {e.strerror or e}", file=out_dir) from e
    write_json_atomic(out_dir / SWEEP_DOC, {
        "sweep": loaded.spec.name, "sweep_file": str(loaded.path), "base_scenario": str(loaded.base_path),
        "spec": loaded.spec.model_dump(mode="json"), "written_utc": _utc_now(),
        "cells": [{"cell_id": c.cell_id, **c.axes, "scenario_sha256": c.scenario_sha256} for c in loaded.cells],
    })


def _record(out_dir: Path, loaded: LoadedSweep, cell: Cell, res: dict[str, Any]) -> dict[str, Any]:
    doc = {**res, "sweep": loaded.spec.name, "axes": cell.axes, "variant": cell.variant,
           "scenario_sha256": cell.scenario_sha256}
    cdir = out_dir / "cells" / cell.cell_id
    if cell.scenario is not None:
        write_json_atomic(cdir / SCENARIO, cell.scenario.model_dump(mode="json"))
    write_json_atomic(cdir / RESULT, doc)  # last: its presence means the cell is complete
    return doc


def _invalid_result(cell: Cell) -> dict[str, Any]:
    now = _utc_now()
    return {"cell_id": cell.cell_id, "status": "failed", "error": cell.error, "metrics": None,
            "started_utc": now, "finished_utc": now, "wall_s": 0.0, "worker": None}


# ---------------------------------------------------------------------------------------------- Ray
def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast on an address nothing listens at (``ray.init`` would retry for minutes)."""
    hostport = address.removeprefix("ray://").rstrip("/")
    if address == "auto" or ":" not in hostport:
        return
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except (OSError, ValueError) as e:
        raise GridShiftError(f"cannot connect to Ray at {address}: {_one_line(str(e), 200)}") from e


@contextmanager
def ray_session(workers: int | None, address: str | None) -> Iterator[Any]:
    """The ``ray`` module, connected: to ``address`` if given, else to the Ray already initialised in this
    process, else to a new local instance with ``workers`` CPUs (shut down on exit)."""
    import ray

    if ray.is_initialized():
        yield ray
        return
    try:
        if address:
            _check_reachable(address)
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
        else:
            ray.init(address="local", num_cpus=workers or os.cpu_count() or 1, include_dashboard=False,
                     logging_level=logging.ERROR, log_to_driver=False)
    except GridShiftError:
        raise
    except Exception as e:  # ConnectionError, RuntimeError, ValueError ... from ray.init
        where = f"connect to Ray at {address}" if address else "start a local Ray instance"
        hint = (" (a cluster with token authentication needs RAY_AUTH_MODE=token and its token in RAY_AUTH_TOKEN "
                "or RAY_AUTH_TOKEN_PATH)" if address and not os.environ.get("RAY_AUTH_MODE") else "")
        raise GridShiftError(f"cannot {where}: {_one_line(str(e), 300)}{hint}") from e
    try:
        yield ray
    finally:
        ray.shutdown()


_REMOTE: list[Any] = []


def _remote_fn(ray: Any) -> Any:
    """``run_cell`` as a Ray task of one CPU; not retried (a cell whose worker died is recorded as failed)."""
    if not _REMOTE:
        _REMOTE.append(ray.remote(num_cpus=1, max_retries=0)(run_cell))
    return _REMOTE[0]


@dataclass
class SweepOutcome:
    out_dir: Path
    cells: list[Cell]
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    table: pd.DataFrame | None = None
    timing_s: dict[str, float] = field(default_factory=dict)


def run_sweep(loaded: LoadedSweep, out_dir: str | Path, *, workers: int | None = None, address: str | None = None,
              retry_failed: bool = True, on_start: Callable[[int, int], None] | None = None,
              on_cell: Callable[[dict[str, Any]], None] | None = None) -> SweepOutcome:
    """Run every cell that is not done yet, then rebuild the table, report and failure list.

    ``workers`` bounds the cells that run at once (a local Ray gets that many CPUs; on a cluster at most that
    many cells are in flight). ``on_start(to_run, skipped)`` and ``on_cell(result)`` report progress.
    """
    t_start = time.perf_counter()
    out = Path(os.path.abspath(out_dir))
    _prepare_out(out, loaded)
    outcome = SweepOutcome(out, loaded.cells)
    todo: list[Cell] = []
    for c in loaded.cells:
        (outcome.skipped if is_done(read_result(out, c.cell_id), c, retry_failed) else todo).append(c)
    if on_start:
        on_start(len(todo), len(outcome.skipped))
    workers = workers or loaded.spec.workers

    def finish(cell: Cell, res: dict[str, Any]) -> None:
        doc = _record(out, loaded, cell, res)
        outcome.ran.append(cell.cell_id)
        if doc["status"] != "ok":
            outcome.failed.append(cell.cell_id)
        if on_cell:
            on_cell(doc)

    for c in [c for c in todo if c.scenario is None]:
        finish(c, _invalid_result(c))
    runnable = [c for c in todo if c.scenario is not None]
    t_ray = t_run = time.perf_counter()
    if runnable:
        local_workers = workers or min(os.cpu_count() or 1, len(runnable))
        with ray_session(local_workers, address) as ray:
            t_run = time.perf_counter()
            remote = _remote_fn(ray)
            cpus = int(ray.cluster_resources().get("CPU", 1)) or 1
            # a cluster runs at most `workers` cells at once when given; locally Ray's CPU count bounds them
            cap = workers if (address and workers) else 2 * (local_workers if not address else cpus)
            pending = iter(runnable)
            in_flight: dict[Any, Cell] = {}
            more = True
            while more or in_flight:
                while more and len(in_flight) < cap:
                    c = next(pending, None)
                    if c is None:
                        more = False
                        break
                    in_flight[remote.remote(c.cell_id, c.scenario.model_dump(mode="json"))] = c
                if not in_flight:
                    break
                ready, _ = ray.wait(list(in_flight), num_returns=1)
                for ref in ready:
                    cell = in_flight.pop(ref)
                    try:
                        res = ray.get(ref)
                    except Exception as e:  # noqa: BLE001 - the worker died (out of memory, killed): record it
                        now = _utc_now()
                        res = {"cell_id": cell.cell_id, "status": "failed", "metrics": None,
                               "error": _one_line(f"{type(e).__name__}: {e}"), "started_utc": None,
                               "finished_utc": now, "wall_s": None, "worker": None}
                    finish(cell, res)
            t_ray_done = time.perf_counter()
    else:
        t_ray_done = time.perf_counter()
    t_write = time.perf_counter()
    outcome.table = write_outputs(out, loaded)
    t_end = time.perf_counter()
    outcome.timing_s = {"ray_start_s": t_run - t_ray, "run_s": t_ray_done - t_run,
                        "write_s": t_end - t_write, "total_s": t_end - t_start}
    return outcome


def write_outputs(out: Path, loaded: LoadedSweep) -> pd.DataFrame:
    """Rebuild results.parquet, report.html and failures.csv from the stored cell results."""
    results = {c.cell_id: r for c in loaded.cells if (r := read_result(out, c.cell_id)) is not None}
    table = results_table(loaded.cells, results)
    _write_parquet(table, out / "results.parquet")
    fails = table[table["status"] != "ok"] if len(table) else table
    fpath = out / "failures.csv"
    if len(fails):
        write_text_atomic(fpath, fails[["cell_id", *AXES, "error"]].to_csv(index=False))
    elif fpath.exists():
        fpath.unlink()
    write_text_atomic(out / "report.html", render_report(loaded, table))
    return table


# ------------------------------------------------------------------------------------------- report
METRIC_TITLES = {"carbon_t": "Carbon, t CO₂", "batch_carbon_t": "Batch jobs' carbon, t CO₂",
                 "cost_usd": "Energy cost, USD", "deadline_miss_frac": "Deadline misses, share",
                 "saving_vs_asap_frac": "Saving vs asap, share", "oracle_capture_frac": "Oracle capture, share"}
TABLE_METRICS = ("objective_value", "carbon_t", "batch_carbon_t", "cost_usd", "energy_mwh", "deadline_miss_frac",
                 "work_done_frac", "saving_vs_asap_frac", "oracle_capture_frac", "wall_s")


def _axis_fig(ok: pd.DataFrame, axis: str | None, keys: list[str]):
    """Mean of each metric per value of ``axis`` (x) and policy (bars), over all other axes."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from gridshift.report import color

    metrics = [(k, METRIC_TITLES.get(k, k)) for k in keys
               if k in ok.columns and pd.to_numeric(ok[k], errors="coerce").notna().any()]
    if not metrics:
        return None
    rows = (len(metrics) + 1) // 2
    fig = make_subplots(rows=rows, cols=2, subplot_titles=[t for _, t in metrics], vertical_spacing=0.18)
    x_of = ok[axis].astype(str) if axis else pd.Series("all", index=ok.index)
    order = list(dict.fromkeys(x_of))  # the order of the sweep file (cells are in axis order)
    for i, (key, _) in enumerate(metrics):
        r, c = i // 2 + 1, i % 2 + 1
        vals = pd.to_numeric(ok[key], errors="coerce")
        for j, pol in enumerate(dict.fromkeys(ok["policy"])):
            sel = ok["policy"] == pol
            g = vals[sel].groupby(x_of[sel]).agg(["mean", "min", "max", "count"]).reindex(order)
            fig.add_trace(go.Bar(
                x=order, y=g["mean"], name=str(pol), legendgroup=str(pol), showlegend=i == 0,
                marker_color=color(j),
                error_y={"type": "data", "symmetric": False, "array": g["max"] - g["mean"],
                         "arrayminus": g["mean"] - g["min"], "visible": bool((g["count"] > 1).any())},
                customdata=g["count"], hovertemplate="%{x}: %{y:.4g} (mean of %{customdata} cell(s))"),
                row=r, col=c)
        fig.update_xaxes(type="category", title_text=axis or "", row=r, col=c)
    fig.update_layout(barmode="group", template="plotly_white", height=320 * rows + 80,
                      margin={"l": 60, "r": 30, "t": 50, "b": 50}, legend={"orientation": "h", "y": 1.08})
    return fig


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if isinstance(v, float):
        return f"{v:,.1f}" if abs(v) >= 100 else f"{v:.4g}"
    return str(v)


def _table_html(df: pd.DataFrame, cols: list[str]) -> str:
    e = _html.escape
    head = "".join(f'<th scope="col">{e(c)}</th>' for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{e(_fmt(r[c]))}</td>" for c in cols) + "</tr>"
                   for r in df[cols].to_dict("records"))
    return f'<table class="cells"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0 auto;
max-width:1200px;padding:1rem 1.5rem;color:#222;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5rem 0;font-size:.85rem}th,td{padding:.25rem .6rem;border:1px solid #ddd;
text-align:right}thead th{background:#f4f4f4}td:first-child{font-family:ui-monospace,monospace}
.caption{font-size:.9rem;color:#444;background:#fafafa;border-left:3px solid #bbb;padding:.4rem .8rem}
.failed td{background:#fbe3e3}
"""


def render_report(loaded: LoadedSweep, table: pd.DataFrame) -> str:
    """One self-contained page: comparison plots per varying axis, every cell, and the failures."""
    from plotly.offline import get_plotlyjs

    e = _html.escape
    spec = loaded.spec
    ok = table[table["status"] == "ok"] if len(table) else table
    varying = [a for a in ("zone", "year", "seed", "fleet_scale") if len(ok) and ok[a].nunique() > 1]
    sections = []
    config = {"displaylogo": False, "responsive": True}
    for axis in varying or [None]:
        fig = _axis_fig(ok, axis, spec.plot_metrics) if len(ok) else None
        if fig is None:
            continue
        title = f"By {axis}" if axis else "By policy"
        div = fig.to_html(full_html=False, include_plotlyjs=False, config=config,
                          default_height=f"{fig.layout.height}px", default_width="100%")
        others = [a for a in varying if a != axis]
        note = (f"Bars are the mean over {', '.join(others)}; whiskers span the minimum and maximum."
                if others else "One cell per bar.")
        sections.append(f'<h2>{e(title)}</h2><figure>{div}<figcaption class="caption">{e(note)} Saving vs asap '
                        f"is (asap − policy) / asap on the objective value ({e(loaded.base.objective.kind)}) of the "
                        "same scenario variant; lower carbon, cost and misses are better.</figcaption></figure>")
    cols = ["cell_id", *[a for a in AXES], "status", *[m for m in TABLE_METRICS if m in table.columns]]
    n_ok = int((table["status"] == "ok").sum()) if len(table) else 0
    fails = table[table["status"] != "ok"] if len(table) else table
    fail_html = (_table_html(fails, ["cell_id", *AXES, "error"]) if len(fails) else "<p>None.</p>")
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>GridShift sweep – {e(spec.name)}</title><style>{_CSS}</style>",
        f'<script type="text/javascript">{get_plotlyjs()}</script></head><body>',
        f"<h1>GridShift sweep – {e(spec.name)}</h1>",
        f"<p>{e(spec.description)}</p>" if spec.description else "",
        (f"<p>Base scenario <code>{e(loaded.base.name)}</code>; {len(loaded.cells)} cell(s), {n_ok} ok, "
         f"{len(fails)} failed, {len(loaded.cells) - len(table)} without a result. Varying: "
         f"{e(', '.join([*varying, 'policy']))}. Times are UTC.</p>"),
        *(sections or ["<p>No finished cells to plot.</p>"]),
        "<h2>Cells</h2>", _table_html(table, cols) if len(table) else "<p>No results.</p>",
        "<h2>Failures</h2>", fail_html,
        "</body></html>",
    ])
