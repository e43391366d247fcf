"""`gridshift forecast` commands: ``backtest``, ``errormodel``, ``models`` (registered by `register`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gridshift.cli.common import fail, out
from gridshift.errors import GridShiftError

forecast_app = typer.Typer(no_args_is_help=True, help="Forecast grid signals: backtests and error models.")


@forecast_app.command("models")
def models_cmd() -> None:
    """List the forecasting models (names for --model and for the planner's forecast parameter)."""
    from gridshift.forecast.registry import DEFAULT_MODEL, FORECASTERS

    for name in FORECASTERS:
        out.print(name + ("  (default)" if name == DEFAULT_MODEL else ""), markup=False, highlight=False)


@forecast_app.command("backtest")
def backtest_cmd(
    out_dir: Annotated[Path, typer.Option("--out", help="Output directory (replaced atomically).")],
    zone: Annotated[str | None, typer.Option("--zone", help="Zone (or EIA region / trace) to backtest.")] = None,
    all_zones: Annotated[bool, typer.Option("--all-zones", help="Every zone the signal exists for.")] = False,
    signal: Annotated[str, typer.Option("--signal", help="carbon_intensity, clean_share, price, load, request_rate.")] = "carbon_intensity",
    horizon: Annotated[str, typer.Option("--horizon", help="Forecast horizon, e.g. 48h.")] = "48h",
    model: Annotated[list[str] | None, typer.Option("--model", help="Model(s) to test (repeatable); "
                                                       "persistence and seasonal-naive are always included.")] = None,
    external: Annotated[str | None, typer.Option("--external", help="Issued-forecast CSV/JSON file or "
                                                    "http(s) URL, tested as model 'external'.")] = None,
    stride: Annotated[str, typer.Option("--stride", help="Hours between forecast origins.")] = "1h",
    warmup: Annotated[str, typer.Option("--warmup", help="History before the first origin.")] = "35d",
    fan_week: Annotated[str, typer.Option("--fan-week", help="UTC start of the week plotted.")] = "2023-07-03",
    years: Annotated[str | None, typer.Option("--years", help="Consecutive years of origins, e.g. 2022,2023 "
                                                 "(trained on all history before each origin from 2021); "
                                                 "default 2023 alone.")] = None,
) -> None:
    """Rolling-origin backtest (2023, or --years): per-lead MAE/MAPE/sMAPE, 80 % coverage and decision quality."""
    try:
        _backtest(out_dir, zone, all_zones, signal, horizon, model, external, stride, warmup, fan_week,
                  parse_years(years))
    except GridShiftError as e:
        fail(e)


def parse_years(text: str | None) -> list[int] | None:
    """``"2022,2023"`` → ``[2022, 2023]`` (None stays None); anything else is a PlanError naming --years."""
    from gridshift.errors import PlanError

    if text is None:
        return None
    try:
        ys = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise PlanError(f"--years must be years separated by commas (e.g. 2022,2023), got '{text}'",
                        field="years") from None
    if not ys or any(b - a != 1 for a, b in zip(ys, ys[1:])):
        raise PlanError(f"--years must be consecutive years, got '{text}'", field="years")
    return ys


def _backtest(out_dir, zone, all_zones, signal, horizon, model, external, stride, warmup, fan_week,
              years=None) -> None:
    from gridshift.studies.forecast_backtest import backtest_to_dir

    def on_zone(z: str, origins: int, seconds: float) -> None:
        out.print(f"{z}: {origins} origins, {seconds:.1f} s", markup=False, highlight=False)

    targets = backtest_to_dir(out_dir, zone=zone, all_zones=all_zones, signal=signal, horizon=horizon, models=model,
                              external=external, stride=stride, warmup=warmup, fan_week=fan_week, years=years,
                              on_zone=on_zone)
    _print_targets(targets)
    out.print(f"wrote {out_dir}", markup=False, highlight=False)


def _print_targets(t) -> None:
    from rich.table import Table

    if not len(t):
        return
    tab = Table(title=f"{t.model.iloc[0]} vs naive baselines")
    cols = [("zone", "zone", "{}"), ("pers. MAPE24 %", "persistence_mape24", "{:.2f}"),
            ("s-naive MAPE24 %", "seasonal_naive_mape24", "{:.2f}"), ("model MAPE24 %", "model_mape24", "{:.2f}"),
            ("worst ratio", "worst_mape_ratio", "{:.3f}"), ("cov80", "coverage80", "{:.3f}"),
            ("DQ 8h", "dq8_model", "{:.3f}"), ("DQ 24h", "dq24_model", "{:.3f}")]
    for c, _, _ in cols:
        tab.add_column(c, justify="right")
    for _, row in t.iterrows():
        tab.add_row(*[f.format(row[k]) if k in row else "—" for _, k, f in cols])
    out.print(tab)


@forecast_app.command("errormodel")
def errormodel_cmd(
    zone: Annotated[str, typer.Option("--zone")],
    out_file: Annotated[Path, typer.Option("--out", help="JSON file for the fitted model.")],
    signal: Annotated[str, typer.Option("--signal")] = "carbon_intensity",
    model: Annotated[str, typer.Option("--model", help="Model whose backtest errors are fitted.")] = "blend",
    horizon: Annotated[str, typer.Option("--horizon")] = "48h",
) -> None:
    """Fit a lead-time error model (for ``make_forecaster('lead-error', ...)``) from a backtest."""
    try:
        from gridshift.forecast.errormodel import LeadErrorModel
        from gridshift.report.output import write_json_atomic
        from gridshift.studies.forecast_backtest import parse_hours, run_zone

        r = run_zone(zone, signal, [model], parse_hours(horizon, "horizon"))
        em = LeadErrorModel.fit(r.series.values[None], r.results[model].forecast)
        write_json_atomic(out_file, {"zone": zone, "signal": signal, "model": model, "slot_h": 1, **em.to_dict()})
        out.print(f"rho={em.rho:.3f}, sigma_rel at 1/24/48 h = {em.sigma_rel[1]:.3f}/"
                  f"{em.sigma_rel[min(24, len(em.sigma_rel) - 1)]:.3f}/{em.sigma_rel[-1]:.3f}; wrote {out_file}",
                  markup=False, highlight=False)
    except GridShiftError as e:
        fail(e)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.add_typer(forecast_app, name="forecast")
