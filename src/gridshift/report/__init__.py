"""Rendering and writing of GridShift outputs: run reports, study pages, figures and atomic files.

A re-export face only; the code lives in the modules:

* :mod:`gridshift.report.run_report` -- a simulation run's output directory (:func:`write_report`);
* :mod:`gridshift.report.figures` -- figure data shared by the HTML and PNG figures;
* :mod:`gridshift.report.html`, :mod:`gridshift.report.png` -- the run report's page and PNG figures;
* :mod:`gridshift.report.capacity`, :mod:`gridshift.report.headroom`, :mod:`gridshift.report.sweep` -- the
  studies' pages, figures and tables;
* :mod:`gridshift.report.style` -- the one stylesheet of every HTML page;
* :mod:`gridshift.report.output` -- atomic files and output directories.
"""

from __future__ import annotations

from gridshift.report.figures import (
    MAX_POINTS,
    POLICY_COLORS,
    color,
    cumulative_carbon,
    downsample,
    jct_cdf,
    naive_utc,
    reference_lines,
    service_frames,
    service_totals,
    site_frames,
    sites_of,
)
from gridshift.report.output import OutputDir, write_json_atomic, write_text_atomic, write_timeseries
from gridshift.report.run_report import write_report

__all__ = ["MAX_POINTS", "POLICY_COLORS", "OutputDir", "color", "cumulative_carbon", "downsample", "jct_cdf",
           "naive_utc", "reference_lines", "service_frames", "service_totals", "site_frames", "sites_of",
           "write_json_atomic", "write_report", "write_text_atomic", "write_timeseries"]
