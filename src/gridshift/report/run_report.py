"""A simulation run's outputs: its directory (metrics.json, report.html, PNG figures, parquet time series),
the data attributions its report cites, and its console summary table."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gridshift.report.output import OutputDir, write_json_atomic, write_text_atomic, write_timeseries
from gridshift.sim.result import PolicyRun

__all__ = ["DATA_ATTRIBUTION_KEYS", "SUMMARY_ROWS", "data_attributions", "summary_table", "write_report"]


def write_report(
    out_dir: Path,
    scenario_name: str,
    runs: list[PolicyRun],
    metrics_doc: dict,
    *,
    scenario_summary: dict | None = None,
    attributions: list[str] | None = None,
) -> Path:
    """Write the complete output directory atomically and return its final path.

    Contents: ``metrics.json`` (``metrics_doc`` as given, NaN → null), ``report.html``, the PNG figures and
    ``timeseries/<policy>/*.parquet``. An existing gridshift output directory is replaced; any other
    non-empty directory is refused with a :class:`~gridshift.errors.GridShiftError` before anything is written.
    """
    from gridshift.report.html import render_html
    from gridshift.report.png import write_pngs

    out = OutputDir(out_dir)
    with out as tmp:
        write_json_atomic(tmp / "metrics.json", metrics_doc)
        page = render_html(scenario_name, runs, scenario_summary=scenario_summary, attributions=attributions)
        write_text_atomic(tmp / "report.html", page)
        write_pngs(tmp, runs)
        write_timeseries(tmp, runs)
    return out.final


# datasets whose attribution a run report cites: those a scenario's zones, jobs and services draw on
DATA_ATTRIBUTION_KEYS = ("carbon/", "price/", "gaia/", "philly/", "azure-llm/", "mooncake/", "latency/")


def data_attributions(datasets: Iterable[Any]) -> list[str]:
    """The distinct attributions of the registry's datasets (``.name``, ``.attribution``) a run draws on, sorted."""
    return sorted({d.attribution for d in datasets if d.attribution and any(
        k in d.name for k in DATA_ATTRIBUTION_KEYS)})


def _saving_rows(ref: str) -> tuple[tuple[str, str, str], ...]:
    """The site's saving against ``ref`` and the jobs' own, each with its parts (sim.attribution)."""
    rows = []
    for who, label in (("", f"saving vs {ref} (site)"), ("jobs_", f"jobs' own saving vs {ref}")):
        rows.append((label, f"{who}saving_vs_{ref}_frac", "share"))
        rows += [(f" of which {part.replace('_', ' ')}", f"{who}saving_vs_{ref}_{key}_frac", "share")
                 for key, part in (("timing", "timing / placement"), ("energy", "energy"), ("work_left", "work left"))]
    return tuple(rows)


SUMMARY_ROWS = (("energy", "energy_mwh", "MWh"), ("carbon", "carbon_t", "t"), ("cost", "cost_usd", "$"),
                ("jobs completed", "jobs_completed", ""), ("deadline misses", "deadline_miss_frac", "share"),
                ("avg job completion", "avg_jct_h", "h"), ("inference SLO attained", "slo_attainment", "share"),
                ("work done", "work_done_frac", "share"),
                ("batch carbon per work", "batch_carbon_kg_per_acc_h", "kg/acc-h"), ("avg carbon intensity", "avg_carbon_g_per_kwh", "g/kWh"),
                ("peak power", "peak_power_mw", "MW"), ("energy above cap", "cap_violation_mwh", "MWh"),
                ("planning time", "plan_time_s", "s"), ("objective value", "objective_value", "obj."),
                *_saving_rows("asap"), *_saving_rows("nominal"),
                ("oracle capture", "oracle_capture_frac", "share"))


def _fmt_metric(v: float) -> str:
    if isinstance(v, int):
        return f"{v:,d}"
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:,.3g}" if abs(v) < 1 else f"{v:,.1f}"


def summary_table(runs: list[PolicyRun]):
    """The console summary of a run: metrics as rows, policies as columns (fits a narrow terminal)."""
    from rich.table import Table

    t = Table(title="GridShift results")
    t.add_column("metric")
    t.add_column("unit")
    for r in runs:
        t.add_column(r.policy, justify="right")
    for label, key, unit in SUMMARY_ROWS:
        if all(key not in r.metrics for r in runs):
            continue
        if "work_left" in key and all(not r.metrics.get(key) for r in runs):
            continue  # no work deferred past the end by any policy: the row would be all zeros
        best = _best(runs, key)
        t.add_row(label, unit, *[("[bold green]" if best is not None and r.metrics.get(key) == best else "")
                                 + _fmt_metric(r.metrics[key]) if r.metrics.get(key) is not None else "—"
                                 for r in runs])
    return t


# the objective rows: the best policy's figure is highlighted (lower or higher is better)
OBJECTIVE_BETTER = {"objective_value": min, "saving_vs_asap_frac": max, "oracle_capture_frac": max}


def _best(runs: list[PolicyRun], key: str) -> float | None:
    """The best value of an objective row among at least two different ones, else None."""
    pick = OBJECTIVE_BETTER.get(key)
    vals = [v for r in runs if isinstance(v := r.metrics.get(key), int | float) and math.isfinite(v)]
    if pick is None or len(set(vals)) < 2:
        return None
    return pick(vals)
