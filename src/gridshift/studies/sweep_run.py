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

import json
import logging
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

from gridshift.data.scenario import load_scenario, read_text
from gridshift.errors import GridShiftError, ScenarioError, require
from gridshift.model.scenario import Scenario
from gridshift.report.output import (
    _write_parquet,
    to_jsonable,
    write_json_atomic,
    write_text_atomic,
)
from gridshift.report.sweep import render_report
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
    from gridshift.sim.runner import run_policies
    from gridshift.world.build import assemble

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
    ray = require("ray", "ray", "a sweep on Ray")
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

    @property
    def n_failed_in_table(self) -> int:
        """Cells of the results table (this run's and earlier runs') whose status is not ``ok``."""
        return int((self.table["status"] != "ok").sum()) if self.table is not None and len(self.table) else 0


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
    write_text_atomic(out / "report.html", render_report(loaded, table, axes=AXES))
    return table
