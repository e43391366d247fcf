"""Run outputs: metrics.json, a self-contained report.html, PNG figures and parquet time series."""

from __future__ import annotations

from pathlib import Path

from gridshift.report.output import OutputDir, write_json_atomic, write_text_atomic, write_timeseries
from gridshift.sim.result import PolicyRun

__all__ = ["OutputDir", "write_json_atomic", "write_report", "write_text_atomic", "write_timeseries"]


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
