"""Gavel measured training throughputs on K80 / P100 / V100 (Narayanan et al., OSDI 2020; MIT).

The JSON is ``{accelerator: {"('<job type>', <gpus>)": {"null": steps_per_s,
"('<other job type>', <gpus>)": [own_steps_per_s, other_steps_per_s], ...}}}``. Accelerator keys ending
in ``_unconsolidated`` are the same GPU type with the job's GPUs spread across servers. Tuple keys are
parsed with :func:`ast.literal_eval` (never ``eval``). A throughput of 0 means the configuration did not
run (e.g. ResNet-50 batch 128 on 2-8 K80s, or pairs that do not fit together) and is kept as 0.

The frames keep the file's name for the gang size, ``gpus``;
:meth:`gridshift.catalog.throughput.ThroughputTable.from_gavel` reads it as ``gang``, the package's name.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pandas as pd

from gridshift.data._cache import cached_parse, source_path
from gridshift.errors import DataError

_ACCELERATORS = ("k80", "p100", "v100")
_SUFFIX = "_unconsolidated"


def load_gavel_throughputs(path: str | Path | None = None) -> pd.DataFrame:
    """Throughput of each job running alone: one row per (accelerator, consolidated, job_type, gpus).

    Columns: ``accelerator`` (k80/p100/v100), ``consolidated`` (bool; False for the ``_unconsolidated``
    variants), ``job_type`` (e.g. ``'ResNet-18 (batch size 16)'``), ``gpus`` (int), ``steps_per_s``.
    """
    return _parsed(source_path("gavel/throughputs", path))[0]


def load_gavel_colocated(path: str | Path | None = None) -> pd.DataFrame:
    """Throughputs of two jobs sharing the same GPUs (space sharing), one row per ordered pair.

    Columns: ``accelerator``, ``consolidated``, ``job_type``, ``gpus``, ``other_job_type``,
    ``other_gpus``, ``own_steps_per_s`` (this job's throughput while paired) and ``other_steps_per_s``.
    """
    return _parsed(source_path("gavel/throughputs", path))[1]


def _key(text: str, p: Path, where: str) -> tuple[str, int]:
    try:
        key = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        key = None
    if (not isinstance(key, tuple) or len(key) != 2 or not isinstance(key[0], str)
            or isinstance(key[1], bool) or not isinstance(key[1], int) or key[1] < 1):
        raise DataError(f"expected a key like \"('<job type>', <gpus>)\", got {text!r}", file=p, field=where)
    return key[0], key[1]


def _rate(x: object, p: Path, where: str) -> float:
    if isinstance(x, bool) or not isinstance(x, int | float) or not np.isfinite(x) or x < 0:
        raise DataError(f"expected a non-negative throughput (steps/s), got {x!r}", file=p, field=where)
    return float(x)


@cached_parse
def _parsed(p: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON: {exc.msg} (truncated file?)", file=p, row=exc.lineno) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read file: {exc}", file=p) from exc
    if not isinstance(doc, dict):
        raise DataError("expected a JSON object keyed by accelerator", file=p)
    alone, pairs = [], []
    for acc_key, jobs in doc.items():
        acc = acc_key.removesuffix(_SUFFIX)
        if acc not in _ACCELERATORS or not isinstance(jobs, dict):
            raise DataError(f"unknown accelerator key '{acc_key}'", file=p, field=acc_key)
        consolidated = not acc_key.endswith(_SUFFIX)
        for job_key, entry in jobs.items():
            where = f"{acc_key}/{job_key}"
            job, gpus = _key(job_key, p, where)
            if not isinstance(entry, dict) or "null" not in entry:
                raise DataError("missing the 'null' (job alone) throughput", file=p, field=where)
            for other_key, val in entry.items():
                here = f"{where}/{other_key}"
                if other_key == "null":
                    alone.append((acc, consolidated, job, gpus, _rate(val, p, here)))
                    continue
                other, other_gpus = _key(other_key, p, here)
                if not isinstance(val, list) or len(val) != 2:
                    raise DataError(f"expected [own, other] throughputs, got {val!r}", file=p, field=here)
                pairs.append((acc, consolidated, job, gpus, other, other_gpus,
                              _rate(val[0], p, here), _rate(val[1], p, here)))
    a = pd.DataFrame(alone, columns=["accelerator", "consolidated", "job_type", "gpus", "steps_per_s"])
    c = pd.DataFrame(pairs, columns=["accelerator", "consolidated", "job_type", "gpus", "other_job_type",
                                     "other_gpus", "own_steps_per_s", "other_steps_per_s"])
    for df in (a, c):
        df.attrs["source"] = str(p)
    return a, c


_TRACE_FIELDS = ("job_type", "command", "working_directory", "num_steps_arg", "needs_data_dir", "total_steps",
                 "scale_factor", "priority_weight", "slo", "arrival_s")


def load_gavel_trace(path: str | Path) -> pd.DataFrame:
    """A job trace in Gavel's format (``scheduler/traces/*/*.trace``, and what its
    ``scripts/utils/generate_trace.py`` writes; parsed as its ``utils.parse_trace`` does): one job a line,
    ten tab-separated fields — job type, command, working directory, steps argument, needs-data-dir (0/1),
    total steps, scale factor (GPUs, >= 1), priority weight, SLO (-1 = none) and arrival time (s).

    Columns: those ten (``slo`` NaN when -1 or absent, ``arrival_s`` float); rows in file order.
    """
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read file: {exc}", file=p) from exc
    rows = []
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        f = line.split("\t")
        if len(f) != len(_TRACE_FIELDS):
            raise DataError(f"expected {len(_TRACE_FIELDS)} tab-separated fields, got {len(f)}", file=p, row=i)
        try:
            needs, steps, gpus = int(f[4]), int(f[5]), int(f[6])
        except ValueError as exc:
            raise DataError(f"expected integers in needs_data_dir, total_steps, scale_factor: {exc}",
                            file=p, row=i) from exc
        try:
            weight, slo, arrival = float(f[7]), float(f[8]), float(f[9])
        except ValueError as exc:
            raise DataError(f"expected numbers in priority_weight, SLO, arrival time: {exc}", file=p, row=i) from exc
        if gpus < 1:
            raise DataError(f"scale factor must be at least 1, got {gpus}", file=p, row=i, field="scale_factor")
        if steps <= 0:
            raise DataError(f"total steps must be positive, got {steps}", file=p, row=i, field="total_steps")
        if not (np.isfinite(arrival) and arrival >= 0):
            raise DataError(f"arrival time must be >= 0, got {f[9]!r}", file=p, row=i, field="arrival_time")
        rows.append((f[0], f[1], f[2], f[3], bool(needs), steps, gpus, weight,
                     np.nan if slo < 0 else slo, arrival))
    df = pd.DataFrame(rows, columns=list(_TRACE_FIELDS))
    df.attrs["source"] = str(p)
    return df
