"""Report outputs: self-contained HTML, PNGs, metrics.json, parquet time series and atomic output dirs."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from gridshift.errors import GridShiftError
from gridshift.report import (
    OutputDir,
    downsample,
    jct_cdf,
    write_json_atomic,
    write_report,
    write_text_atomic,
    write_timeseries,
)
from gridshift.report.html import render_html
from gridshift.report.output import MARKER
from gridshift.report.png import write_pngs
from gridshift.sim.result import JOB_COLUMNS, SITE_TS_COLUMNS, PolicyRun

POLICIES = ("carbon-aware", "baseline_fifo")
SITES = (("oslo-dc", "NO-NO1"), ("dallas-dc", "US-TEX-ERCO"))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _run(policy: str, seed: int, slots: int = 48) -> PolicyRun:
    rng = np.random.default_rng(seed)
    times = pd.date_range("2024-03-01", periods=slots, freq="h", tz="UTC")
    rows = []
    for site, zone in SITES:
        ci = 50 + 40 * np.sin(np.arange(slots) / 4) + (300 if zone.startswith("US") else 0)
        it = rng.uniform(5, 20, slots)
        fac = it * 1.2
        rows.append(pd.DataFrame({
            "time": times, "site": site, "zone": zone, "it_power_mw": it, "facility_power_mw": fac,
            "power_cap_mw": 22.0, "energy_mwh": fac, "carbon_t": fac * ci / 1000, "cost_usd": fac * 60,
            "carbon_g_per_kwh": ci, "price_usd_per_mwh": 60.0, "busy_accelerators": rng.integers(0, 100, slots),
            "serving_accelerators": 10, "total_accelerators": 128, "cap_violation_mwh": np.maximum(fac - 22, 0),
        }))
    sites = pd.concat(rows, ignore_index=True)[list(SITE_TS_COLUMNS)]
    arrival = times[rng.integers(0, 24, 6)]
    completion = pd.Series(arrival + pd.to_timedelta(rng.uniform(1, 20, 6), unit="h"))
    completion[[1, 4]] = pd.NaT  # unfinished jobs
    jct = (completion - pd.Series(arrival)).dt.total_seconds() / 3600
    jobs = pd.DataFrame({
        "job_id": [f"j{i}" for i in range(6)], "kind": "training", "tenant": "acme", "arrival": arrival,
        "deadline": pd.Series(arrival + pd.Timedelta(hours=30)), "first_start": pd.Series(arrival),
        "completion": completion, "jct_h": jct, "missed_deadline": completion.isna().to_numpy(),
        "work_acc_h": 100.0, "done_acc_h": 80.0, "energy_mwh": 1.5, "carbon_t": 0.4, "cost_usd": 90.0,
        "preemptions": rng.integers(0, 3, 6),
    })[list(JOB_COLUMNS)]
    svc = pd.DataFrame({"time": times.repeat(2), "service": "chat-llm", "region": ["eu", "us"] * slots,
                        "demand_rps": 100.0, "served_rps": rng.uniform(80, 100, 2 * slots)})
    metrics = {"energy_mwh": float(sites["energy_mwh"].sum()), "carbon_t": float(sites["carbon_t"].sum()),
               "cost_usd": 1000.0 + seed, "jobs_completed": 4, "deadline_miss_frac": 2 / 6,
               "avg_jct_h": float(np.nanmean(jct)), "slo_attainment": 0.97, "peak_power_mw": 24.0,
               "cap_violation_mwh": 0.5, "plan_time_s": math.nan}
    return PolicyRun(policy, metrics, sites, jobs, svc)


@pytest.fixture
def runs() -> list[PolicyRun]:
    return [_run(p, i) for i, p in enumerate(POLICIES)]


@pytest.fixture
def report_dir(tmp_path, runs):
    doc = {"scenario": "demo", "policies": {r.policy: r.metrics for r in runs}, "inf": float("inf")}
    return write_report(tmp_path / "out", "demo scenario", runs, doc,
                        scenario_summary={"sites": 2, "zones": ["NO-NO1", "US-TEX-ERCO"], "jobs": 6},
                        attributions=["Grid data: Example ISO (CC-BY 4.0)"])


def test_html_is_self_contained(report_dir):
    page = (report_dir / "report.html").read_text(encoding="utf-8")
    assert page.count("Plotly.newPlot") >= 4  # site power, carbon, JCT, service
    assert "<script src=" not in page.lower() and "<link" not in page.lower()
    from plotly.offline import get_plotlyjs

    bundle = get_plotlyjs()
    assert page.count(bundle[:200]) == 1  # plotly.js inlined exactly once
    rest = page.replace(bundle, "")
    assert "cdn.plot.ly" not in rest
    assert not re.search(r"""(src|href)\s*=\s*["']?https?://""", rest)
    assert "@import" not in rest and "url(" not in rest
    for name in (*POLICIES, *(s for s, _ in SITES), "NO-NO1", "chat-llm", "Example ISO (CC-BY 4.0)"):
        assert name in rest
    assert 'class="best"' in rest and "How to read this" in rest


def test_html_downsampling_caption():
    long = [_run("p", 0, slots=5000)]
    page = render_html("long", long)
    assert "downsampled to at most 2,000 points" in page
    t, v, w = downsample(pd.date_range("2024", periods=5000, freq="h"), np.arange(5000.0), "max")
    assert w == 3 and len(t) == len(v) <= 2000 and v.max() == 4999


def test_jct_cdf_counts_unfinished(runs):
    x, y, k, n = jct_cdf(runs[0])
    assert (k, n) == (4, 6) and y[-1] == pytest.approx(4 / 6) and np.all(np.diff(x) >= 0)


def test_pngs_valid(tmp_path, runs, report_dir):
    paths = write_pngs(tmp_path / "png", runs)
    names = {p.name for p in paths}
    assert names == {"site_power.png", "cumulative_carbon.png", "jct_cdf.png", "service_slo.png"}
    for p in paths + [report_dir / n for n in names]:
        data = p.read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 10_000


def test_no_service_png_without_service_data(tmp_path, runs):
    for r in runs:
        r.service_timeseries = pd.DataFrame()
    names = {p.name for p in write_pngs(tmp_path, runs)}
    assert "service_slo.png" not in names and "jct_cdf.png" in names
    assert "Plotly.newPlot" in render_html("x", runs)


def test_metrics_json_nan_becomes_null(report_dir, runs):
    text = (report_dir / "metrics.json").read_text(encoding="utf-8")
    assert "NaN" not in text and "Infinity" not in text
    doc = json.loads(text)
    assert doc["inf"] is None
    assert doc["policies"]["carbon-aware"]["plan_time_s"] is None
    assert doc["policies"]["baseline_fifo"]["cost_usd"] == 1001.0
    assert (report_dir / MARKER).is_file()


def test_parquet_roundtrip(report_dir, runs):
    for r in runs:
        pdir = report_dir / "timeseries" / r.policy
        pd.testing.assert_frame_equal(pd.read_parquet(pdir / "sites.parquet"), r.site_timeseries)
        pd.testing.assert_frame_equal(pd.read_parquet(pdir / "jobs.parquet"), r.jobs)
        pd.testing.assert_frame_equal(pd.read_parquet(pdir / "services.parquet"), r.service_timeseries)


def test_timeseries_policy_names_made_safe(tmp_path, runs):
    runs[0].policy, runs[1].policy = "a/b", "a b"
    runs[1].service_timeseries = pd.DataFrame()
    paths = write_timeseries(tmp_path, runs)
    dirs = sorted({p.parent.name for p in paths})
    assert dirs == ["a_b", "a_b-2"] and not (tmp_path / "timeseries" / "a_b-2" / "services.parquet").exists()


def _hidden(parent):
    return [p.name for p in parent.iterdir() if p.name.startswith(".")]


def test_exception_leaves_nothing(tmp_path):
    final = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with OutputDir(final) as tmp:
            (tmp / "a.txt").write_text("x")
            raise RuntimeError("boom")
    assert not final.exists() and list(tmp_path.iterdir()) == []


def test_exception_keeps_previous_output(tmp_path, runs):
    final = write_report(tmp_path / "out", "s", runs, {"a": 1})
    with pytest.raises(RuntimeError):
        with OutputDir(final) as tmp:
            (tmp / "new.txt").write_text("x")
            raise RuntimeError("boom")
    assert json.loads((final / "metrics.json").read_text()) == {"a": 1}
    assert not (final / "new.txt").exists() and _hidden(tmp_path) == []


def test_existing_output_replaced_entirely(tmp_path):
    final = tmp_path / "out"
    with OutputDir(final) as tmp:
        (tmp / "old.txt").write_text("old")
        (tmp / "sub").mkdir()
    assert (final / "old.txt").exists() and (final / MARKER).exists()
    with OutputDir(final) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".")
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in final.iterdir()) == [MARKER, "new.txt"]
    assert _hidden(tmp_path) == []


def test_foreign_dir_refused_untouched(tmp_path, runs):
    final = tmp_path / "mine"
    final.mkdir()
    (final / "thesis.tex").write_text("precious")
    with pytest.raises(GridShiftError) as err:
        write_report(final, "s", runs, {})
    assert "\n" not in str(err.value) and "mine" in str(err.value)
    assert [p.name for p in final.iterdir()] == ["thesis.tex"] and _hidden(tmp_path) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(GridShiftError):
        OutputDir(tmp_path / "file").__enter__()


def test_empty_existing_dir_is_used(tmp_path):
    final = tmp_path / "empty"
    final.mkdir()
    with OutputDir(final) as tmp:
        (tmp / "x.txt").write_text("x")
    assert (final / "x.txt").read_text() == "x"


def test_atomic_file_writers(tmp_path):
    write_text_atomic(tmp_path / "d" / "t.txt", "héllo")
    assert (tmp_path / "d" / "t.txt").read_text(encoding="utf-8") == "héllo"
    write_json_atomic(tmp_path / "m.json", {"x": np.float64("nan"), "n": np.int64(3), "t": pd.NaT,
                                            "ts": pd.Timestamp("2024-01-01", tz="UTC"), "l": (1.5, math.inf)})
    assert json.loads((tmp_path / "m.json").read_text()) == {
        "x": None, "n": 3, "t": None, "ts": "2024-01-01T00:00:00+00:00", "l": [1.5, None]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "m.json"]


def test_the_legend_sits_above_the_panel_titles_and_serving_lines_stay_apart(runs):
    from gridshift.report.html import LEGEND_TITLE_BAND_PX, _service_fig, legend_above_titles, render_html

    fig, _ = _service_fig(runs)
    height = fig.layout.height
    legend_above_titles(fig)
    lay = fig.layout
    plot_h = lay.height - lay.margin.t - 50
    assert (lay.legend.y - 1) * plot_h >= LEGEND_TITLE_BAND_PX - 1e-6  # the legend's bottom above the titles
    assert lay.margin.t >= LEGEND_TITLE_BAND_PX + 22 and lay.height - lay.margin.t == height - 40  # panels keep size
    served = [t for t in fig.data if t.name.startswith("served")]
    assert len(served) == len(runs) >= 2
    assert len({(t.line.dash, t.line.width) for t in served}) == len(served)  # overlapping lines stay visible
    import re

    html = render_html("test", runs)  # the page's power and service panels carry it so
    above = re.findall(r'"legend":\{"orientation":"h","y":([0-9.]+),"yanchor":"bottom"', html)
    assert len(above) >= 2 and all(float(y) > 1 for y in above)
