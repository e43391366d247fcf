"""Forecast backtests on the project's data, their tables and plots (the I/O side of the backtest; the
scoring itself is :mod:`gridshift.forecast.backtest`).

``run_zone`` loads one zone's signal (and its cross signals), runs the models at every origin from
``warmup_days`` after 2023-01-01 to the last hour of 2023 (``stride_h`` apart; the default, 1 h, is every
hour), and returns tables. With ``years`` (consecutive, e.g. ``[2022, 2023]``) the series runs from
:data:`FIRST_YEAR` (the first year of the grid data) to the last year asked, so every origin sees all history
before it, across New Year; origins run over the years asked (from their first hour, or ``warmup_days`` after
the series start if that is later), and the calendar models (``gbm``, the ``ensemble``'s member,
``climatology``, ``shape-blend``, ``gated``) are told the series' start; ``targets_table`` and ``aggregate_targets`` summarise them against the naive
baselines; ``plot_error_vs_lead`` and ``plot_fan`` draw them; ``write_forecasts`` stores any model's
forecasts as an issued-forecast file (see :mod:`gridshift.data.issued_forecasts`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gridshift.data.issued_forecasts import fetch_forecasts, forecasts_csv, read_forecasts
from gridshift.data.series import Series, cross_signals, load_series
from gridshift.errors import PlanError
from gridshift.forecast.backtest import ModelResult, backtest
from gridshift.forecast.calendar import ZONE_CALENDAR
from gridshift.forecast.registry import DEFAULT_MODEL, NAIVE_BASELINES, make_forecaster
from gridshift.report.output import write_text_atomic

WINDOWS_H = (8, 24)
CALENDAR_SIGNALS = ("load", "price")  # signals whose LightGBM models get the zone's local calendar and holidays
FIRST_YEAR = 2021  # the grid signals' data start (docs/reference/data.md, "Years")
START_MODELS = ("gbm", "climatology", "shape-blend", "gated")  # read the UTC time of slot 0 (``start``)
SUMMARY_COLUMNS = ["zone", "signal", "model", "lead_h", "mae", "mape", "smape", "coverage80"]


@dataclass
class ZoneRun:
    series: Series
    results: dict[str, ModelResult]
    metrics: pd.DataFrame
    decision: pd.DataFrame
    seconds: float
    params: dict = field(default_factory=dict)


def parse_hours(text: str, what: str) -> int:
    """``"48h"``, ``"2d"`` or ``"48"`` → whole hours (> 0)."""
    s = str(text).strip().lower()
    mult = 24 if s.endswith("d") else 1
    s = s[:-1] if s[-1:] in ("h", "d") else s
    try:
        v = float(s) * mult
    except ValueError:
        raise PlanError(f"'{text}' is not a duration (use e.g. 48h or 2d)", field=what) from None
    if v <= 0 or v != int(v):
        raise PlanError(f"'{text}' must be a positive whole number of hours", field=what)
    return int(v)


def external_forecaster(source: str, zone: str | None):
    """The ``external`` model replaying the issued forecasts in the file or http(s) URL ``source``."""
    url = source.startswith(("http://", "https://"))
    table = fetch_forecasts(source) if url else read_forecasts(source)
    return make_forecaster("external", table=table, zones=[zone], source=source)


def build_models(names: list[str], external: str | None = None, zone: str | None = None,
                 signal: str | None = None, start: str | None = None) -> dict:
    """The models to backtest by name (the naive baselines always included); for ``CALENDAR_SIGNALS`` the
    LightGBM models (``gbm``, the ``ensemble``'s member) get ``zone``'s local-time calendar with holidays;
    ``start`` (the UTC time of the series' first slot; default 2023-01-01) goes to the models that read the
    calendar (``START_MODELS`` and the ``ensemble``'s LightGBM member)."""
    local = {"zone": zone} if signal in CALENDAR_SIGNALS and zone in ZONE_CALENDAR else {}
    st = {"start": start} if start is not None else {}
    models = {}
    for n in dict.fromkeys([*NAIVE_BASELINES, *names]):
        if n == "perfect" or n == "lead-error":
            raise PlanError(f"'{n}' is an oracle given the actual future; it is not backtested", field="model")
        if n == "external":
            if external is None:
                raise PlanError("model 'external' needs --external FILE or URL", field="model")
            models[n] = external_forecaster(external, zone)
        elif n == "gbm":
            models[n] = make_forecaster(n, **local, **st)
        elif n == "ensemble":
            models[n] = make_forecaster(n, gbm={**local, **st} or None)
        elif n in START_MODELS:
            models[n] = make_forecaster(n, **st)
        else:
            models[n] = make_forecaster(n)
    if external is not None and "external" not in models:
        models["external"] = external_forecaster(external, zone)
    return models


def run_zone(zone: str, signal: str, models: list[str], horizon_h: int = 48, *, stride_h: int = 1,
             warmup_days: int = 35, external: str | None = None, use_exog: bool = True,
             job_h: int = 1, years=None) -> ZoneRun:
    span, first = None, 0
    if years is not None:
        ys = sorted({int(v) for v in np.atleast_1d(years)})
        if not ys or len(ys) != ys[-1] - ys[0] + 1:
            raise PlanError(f"years must be consecutive, got {ys}", field="years")
        whole = signal != "request_rate"  # the request-rate trace is 2023 only
        span = list(range(min(FIRST_YEAR, ys[0]), ys[-1] + 1)) if whole else ys
    s = load_series(zone, signal, span)
    if years is not None:
        first = int(s.index.searchsorted(pd.Timestamp(f"{ys[0]}-01-01", tz="UTC")))
    y = s.values[None]
    exog = None
    if use_exog and any(m in ("gbm", "ensemble") for m in models):
        _, ex = cross_signals(zone, signal, span)
        exog = ex[None] if ex is not None else None
    n = y.shape[1]
    origins = np.arange(max(warmup_days * 24, first), n - 1, stride_h)
    if origins.size == 0:
        raise PlanError("no origins: the warm-up is longer than the series", field="warmup")
    start = None if years is None else s.index[0].strftime("%Y-%m-%dT%H:%M:%SZ")
    mods = build_models(models, external, zone, signal, start)
    t = time.perf_counter()
    res = backtest(y, mods, origins, horizon_h + 1, exog=exog, windows_h=WINDOWS_H, job_h=job_h)
    secs = time.perf_counter() - t
    rows, drows = [], []
    for name, r in res.items():
        for h in range(1, horizon_h + 1):
            rows.append({"zone": zone, "signal": signal, "model": name, "lead_h": h,
                         **{k: float(r.metrics[k][0, h]) for k in ("mae", "mape", "smape", "coverage80", "width80")},
                         "n": int(r.metrics["n"][0, h])})
        for w, q in r.decision.items():
            drows.append({"zone": zone, "signal": signal, "model": name, "window_h": w, "job_h": job_h,
                          "quality": float(q[0])})
    params = {"zone": zone, "signal": signal, "unit": s.unit, "horizon_h": horizon_h, "stride_h": stride_h,
              **({"years": ys, "history_from_utc": s.index[0]} if years is not None else {}),
              "warmup_days": warmup_days, "origins": int(origins.size), "first_origin_utc": s.index[origins[0]],
              "last_origin_utc": s.index[origins[-1]], "models": list(res), "seconds_per_model":
              {k: round(r.seconds, 2) for k, r in res.items()}}
    return ZoneRun(s, res, pd.DataFrame(rows), pd.DataFrame(drows), secs, params)


def targets_table(metrics: pd.DataFrame, decision: pd.DataFrame, model: str = DEFAULT_MODEL) -> pd.DataFrame:
    """Per zone: the model's 24 h MAPE against the naive baselines, its worst ratio to the better naive
    baseline over all lead times (MAPE and MAE), its mean 80 % coverage, and decision quality."""
    out = []
    for (zone, signal), g in metrics.groupby(["zone", "signal"], sort=False):
        piv = {k: g.pivot(index="lead_h", columns="model", values=k) for k in ("mape", "mae", "coverage80")}
        if model not in piv["mape"].columns:
            continue
        best_mape = piv["mape"][list(NAIVE_BASELINES)].min(axis=1)
        best_mae = piv["mae"][list(NAIVE_BASELINES)].min(axis=1)
        d = decision[(decision.zone == zone) & (decision.signal == signal)].pivot(
            index="window_h", columns="model", values="quality")
        row = {"zone": zone, "signal": signal, "model": model,
               "persistence_mape24": piv["mape"].loc[24, "persistence"] if 24 in piv["mape"].index else np.nan,
               "seasonal_naive_mape24": piv["mape"].loc[24, "seasonal-naive"] if 24 in piv["mape"].index else np.nan,
               "model_mape24": piv["mape"].loc[24, model] if 24 in piv["mape"].index else np.nan,
               "worst_mape_ratio": float((piv["mape"][model] / best_mape).max()),
               "worst_mae_ratio": float((piv["mae"][model] / best_mae).max()),
               "coverage80": float(piv["coverage80"][model].mean()),
               "coverage80_min": float(piv["coverage80"][model].min()),
               "coverage80_max": float(piv["coverage80"][model].max())}
        for w in WINDOWS_H:
            if w in d.index:
                row[f"dq{w}_model"] = d.loc[w, model]
                row[f"dq{w}_seasonal_naive"] = d.loc[w, "seasonal-naive"]
                row[f"dq{w}_persistence"] = d.loc[w, "persistence"]
        out.append(row)
    return pd.DataFrame(out)


def aggregate_targets(t: pd.DataFrame) -> dict:
    """The issue's aggregate targets from a targets table."""
    hard = t[t.persistence_mape24 > 5.0]
    res = {"zones": len(t), "hard_zones": list(hard.zone),
           "worst_mape_ratio_max": float(t.worst_mape_ratio.max()), "worst_mae_ratio_max": float(t.worst_mae_ratio.max()),
           "zones_within_2pct_mape": int((t.worst_mape_ratio <= 1.02).sum()),
           "coverage80_min_zone_mean": float(t.coverage80.min()), "coverage80_max_zone_mean": float(t.coverage80.max())}
    if len(hard):
        res["hard_mape24_gain_vs_persistence"] = float(1 - (hard.model_mape24 / hard.persistence_mape24).mean())
        if "dq24_model" in hard:
            best_naive = hard[["dq24_seasonal_naive", "dq24_persistence"]].max(axis=1)
            res["hard_dq24_model_mean"] = float(hard.dq24_model.mean())
            res["hard_dq24_best_naive_mean"] = float(best_naive.mean())
            res["hard_dq24_gain_vs_best_naive"] = float(hard.dq24_model.mean() / best_naive.mean() - 1)
    return res


def plot_error_vs_lead(path: Path, metrics: pd.DataFrame, title: str) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.5), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2)
    for model, g in metrics.groupby("model", sort=False):
        g = g.groupby("lead_h")[["mape", "coverage80"]].mean()
        ax1.plot(g.index, g["mape"], label=model)
        ax2.plot(g.index, g["coverage80"] * 100, label=model)
    ax1.set(xlabel="lead time (h)", ylabel="MAPE (%)", title=f"{title}: error vs lead time")
    ax2.axhspan(75, 85, color="0.9")
    ax2.set(xlabel="lead time (h)", ylabel="80 % interval coverage (%)", title="interval coverage")
    ax1.legend(fontsize=8)
    fig.savefig(path)
    return path


def plot_fan(path: Path, run: ZoneRun, model: str, week_start_utc: str = "2023-07-03") -> Path:
    """Day-ahead forecast fan vs actual for a sample week: the forecasts issued daily at 00:00 UTC."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    s, r = run.series, run.results[model]
    fc = r.forecast
    start = int(np.searchsorted(s.index, pd.Timestamp(week_start_utc, tz="UTC")))
    fig = Figure(figsize=(11, 4), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    end = min(start + 7 * 24, s.values.size)
    ax.plot(s.index[start:end], s.values[start:end], color="k", lw=1.2, label="actual")
    lo, hi = fc.interval(0.8)
    for d, o in enumerate(range(start, end, 24)):
        k = np.searchsorted(fc.origins, o)
        if k >= fc.origins.size or fc.origins[k] != o:
            continue
        m = min(25, s.values.size - o)
        t = s.index[o: o + m]
        ax.fill_between(t, lo[0, k, :m], hi[0, k, :m], color="C0", alpha=0.25, lw=0,
                        label="80 % interval" if d == 0 else None)
        ax.plot(t, fc.point[0, k, :m], color="C0", lw=1, label=f"{model} (issued 00:00 UTC)" if d == 0 else None)
    ax.set(title=f"{s.zone} {s.signal} ({s.unit}): day-ahead forecasts, week of {week_start_utc}", ylabel=s.unit)
    ax.legend(fontsize=8)
    fig.savefig(path)
    return path


def write_forecasts(df: pd.DataFrame, path: str | Path) -> None:
    """Write an issued-forecast table (e.g. ``forecast.external.issue_forecasts`` of a model's backtest) as
    CSV, times in UTC ISO 8601, atomically."""
    write_text_atomic(path, forecasts_csv(df))


def backtest_to_dir(out_dir: str | Path, *, zone: str | None, all_zones: bool, signal: str, horizon: str,
                    models: list[str] | None, external: str | None, stride: str, warmup: str, fan_week: str,
                    years: list[int] | None = None,
                    on_zone: Callable[[str, int, float], None] | None = None) -> pd.DataFrame:
    """The ``gridshift forecast backtest`` run: check the options, backtest each zone (``on_zone(zone, origins,
    seconds)`` after each), write summary/metrics/decision/targets CSVs, run.json and plots into ``out_dir``
    (atomically), and return the targets table."""
    from gridshift.data.series import available, check_signal
    from gridshift.forecast.registry import FORECASTERS
    from gridshift.report.output import OutputDir, write_json_atomic

    check_signal(signal)
    models = list(models or [DEFAULT_MODEL])
    for m in models:
        if m not in FORECASTERS:
            raise PlanError(f"unknown model '{m}' (known: {', '.join(FORECASTERS)})", field="model")
    H, st, wu = parse_hours(horizon, "horizon"), parse_hours(stride, "stride"), parse_hours(warmup, "warmup")
    if (zone is None) == (not all_zones):
        raise PlanError("give exactly one of --zone Z or --all-zones", field="zone")
    zones = available(signal) if all_zones else [zone]
    if not all_zones:
        known = available(signal)
        if zone not in known:
            raise PlanError(f"no '{signal}' data for zone '{zone}' (known: {', '.join(known)})", field="zone")
    runs = []
    t0 = time.perf_counter()
    for z in zones:
        r = run_zone(z, signal, models, H, stride_h=st, warmup_days=max(1, wu // 24), external=external,
                     years=years)
        runs.append(r)
        if on_zone is not None:
            on_zone(z, r.params["origins"], r.seconds)
    metrics = pd.concat([r.metrics for r in runs], ignore_index=True)
    decision = pd.concat([r.decision for r in runs], ignore_index=True)
    main = next((m for m in models if m in runs[0].results), DEFAULT_MODEL)
    targets = targets_table(metrics, decision, main)
    with OutputDir(out_dir) as tmp:
        write_text_atomic(tmp / "summary.csv", metrics[SUMMARY_COLUMNS].to_csv(index=False, float_format="%.6g"))
        write_text_atomic(tmp / "metrics.csv", metrics.to_csv(index=False, float_format="%.6g"))
        write_text_atomic(tmp / "decision.csv", decision.to_csv(index=False, float_format="%.6g"))
        write_text_atomic(tmp / "targets.csv", targets.to_csv(index=False, float_format="%.6g"))
        write_json_atomic(tmp / "run.json", {"signal": signal, "horizon_h": H, "stride_h": st, "model": main,
                                             **({"years": years} if years is not None else {}),
                                             "seconds": round(time.perf_counter() - t0, 2),
                                             "aggregate": aggregate_targets(targets) if len(targets) else {},
                                             "zones": [r.params for r in runs]})
        plot_error_vs_lead(tmp / "error_vs_lead.png", metrics, f"{signal} ({len(zones)} zone(s))")
        for r in runs:
            plot_fan(tmp / f"fan_{r.series.zone}.png", r, main, fan_week)
    return targets
