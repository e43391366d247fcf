"""`gridshift signals fetch`: pull a live provider's actuals (and issued forecasts) for a zone and a time
range into files (registered by `register`)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from gridshift.cli.common import err, fail, out
from gridshift.errors import GridShiftError

signals_app = typer.Typer(no_args_is_help=True, help="Live grid signals from providers (docs/service/providers.md).")
TIME_FORMATS = ["%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"]


@signals_app.command("fetch")
def fetch_cmd(
    provider: Annotated[str, typer.Option(help="electricitymaps | watttime | gb-carbon-intensity | entsoe | eia | pjm | caiso.")],
    zone: Annotated[str, typer.Option(help="The provider's zone (e.g. DE, CAISO_NORTH, national, DE-LU, CISO).")],
    start: Annotated[datetime, typer.Option(help="Start (UTC).", formats=TIME_FORMATS)],
    end: Annotated[datetime, typer.Option(help="End (UTC, exclusive).", formats=TIME_FORMATS)],
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for <signal>.csv files.")],
    signal: Annotated[list[str] | None, typer.Option(help="Signal(s) to fetch (repeatable; default all).")] = None,
    forecasts: Annotated[bool, typer.Option("--forecasts/--no-forecasts",
                                            help="Also the latest issued forecasts, as <signal>.forecast.csv.")] = False,
    past_forecasts: Annotated[bool, typer.Option(
        "--past-forecasts", help="Also every forecast issued in the range (where the provider keeps them, e.g. "
                                 "WattTime), as <signal>.past-forecasts.csv.")] = False,
    base_url: Annotated[str | None, typer.Option(help="The provider's API base URL (default: its public one).")] = None,
) -> None:
    """Fetch actuals as <signal>.csv (time, value) — a scenario zone's carbon_file reads these — and, with
    --forecasts / --past-forecasts, issued forecasts in the issued-forecast format (for --external backtests)."""
    from gridshift.data.files import write_text_atomic
    from gridshift.data.issued_forecasts import forecasts_csv
    from gridshift.data.providers import ProviderConfig, make_provider
    from gridshift.data.signal_csv import write_signal_csv
    from gridshift.model.time import as_utc

    try:
        if as_utc(end) <= as_utc(start):
            raise GridShiftError("--end must be after --start", field="end")
        p = make_provider(ProviderConfig(provider, base_url=base_url))
        batch = p.actuals(zone, as_utc(start), as_utc(end), signal or None)
        out_dir.mkdir(parents=True, exist_ok=True)
        for line in batch.problems:
            err.print(line, markup=False, highlight=False, soft_wrap=True)
        for sig in sorted(set(batch.rows["signal"])):
            n = write_signal_csv(out_dir / f"{sig}.csv", batch.rows, sig)
            out.print(f"{out_dir / f'{sig}.csv'}: {n} rows", markup=False, highlight=False)
        kinds = [(flag, suffix) for flag, suffix in ((forecasts, "forecast"), (past_forecasts, "past-forecasts"))
                 if flag and p.chosen(signal or None, forecast=True)]
        for _, suffix in kinds:
            fb = p.forecasts(zone, signal or None) if suffix == "forecast" else \
                p.past_forecasts(zone, as_utc(start), as_utc(end), signal or None)
            for line in fb.problems:
                err.print(line, markup=False, highlight=False, soft_wrap=True)
            for sig, rows in fb.rows.groupby("signal"):
                table = rows.rename(columns={"at": "target_time"})[["issue_time", "target_time", "value"]]
                path = out_dir / f"{sig}.{suffix}.csv"
                write_text_atomic(path, forecasts_csv(table.assign(zone=zone)))
                out.print(f"{path}: {len(table)} rows", markup=False, highlight=False)
    except GridShiftError as e:
        fail(e)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.add_typer(signals_app, name="signals")
