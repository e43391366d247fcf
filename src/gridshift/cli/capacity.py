"""`gridshift capacity` command (registered on the main app by `register`).

Sizes a fleet for a demand (tokens per day, training FLOP per month) per accelerator type and for mixes, or
says what a power budget buys; prints a table and every assumption with its source, and with ``--out``
writes ``capacity.csv``, ``capacity.html``, ``tornado.png`` and ``capacity.json`` atomically. The study
lives in :mod:`gridshift.studies.capacity`, its outputs in :mod:`gridshift.report.capacity`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from gridshift.errors import GridShiftError
from gridshift.studies.capacity.study import DEFAULT_ACCELERATORS


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""

    @app.command()
    def capacity(
        tokens_per_day: Annotated[float | None, typer.Option(
            "--tokens-per-day", help="Inference demand: generated tokens per day (annual mean).")] = None,
        requests_per_day: Annotated[float | None, typer.Option(
            "--requests-per-day", help="Inference demand in requests per day (x the trace's generated tokens per "
                                       "request).")] = None,
        model_class: Annotated[str | None, typer.Option(
            "--model-class", help="llama-8b | llama-70b | llama-405b-fp8 (default llama-70b).")] = None,
        training_flop_per_month: Annotated[float | None, typer.Option(
            "--training-flop-per-month", help="Training demand, FLOP per month (730 h).")] = None,
        utilisation: Annotated[float | None, typer.Option(
            "--utilisation", help="Target utilisation 0-1 (default 0.7).")] = None,
        pue: Annotated[float | None, typer.Option("--pue", help="Power usage effectiveness (default 1.56).")] = None,
        zone: Annotated[str | None, typer.Option("--zone", help="Grid zone for carbon and price "
                                                    "(default US-MIDA-PJM).")] = None,
        carbon_g_per_kwh: Annotated[float | None, typer.Option(
            "--carbon-g-per-kwh", help="Override the zone's 2023 mean carbon intensity.")] = None,
        energy_price: Annotated[float | None, typer.Option(
            "--energy-price-usd-per-mwh", help="Override the zone's 2023 mean electricity price.")] = None,
        accelerators: Annotated[str, typer.Option(
            "--accelerators", "-a", help="Comma-separated catalog names or aliases, or 'all'.")] = DEFAULT_ACCELERATORS,
        budget_mw: Annotated[float | None, typer.Option("--budget-mw", help="Power budget in MW (inverse mode).")] = None,
        budget_gw: Annotated[float | None, typer.Option("--budget-gw", help="Power budget in GW (inverse mode).")] = None,
        budget_basis: Annotated[str, typer.Option(
            "--budget-basis", help="facility (metered, includes PUE) or it.")] = "facility",
        mix: Annotated[list[str] | None, typer.Option(
            "--mix", help="A mix (repeatable): 'H100:0.6,B200:0.4' or 'inference=B200,training=Trainium2'.")] = None,
        trace: Annotated[str, typer.Option("--trace", help="Azure LLM trace shaping demand: conv or code.")] = "conv",
        peak_to_mean: Annotated[float | None, typer.Option(
            "--peak-to-mean", help="Override the demand's peak-to-mean ratio (1 = flat).")] = None,
        mfu: Annotated[float | None, typer.Option("--mfu", help="Training model FLOP utilisation (default 0.40).")] = None,
        amortisation_years: Annotated[float | None, typer.Option(
            "--amortisation-years", help="Capex amortisation period (default 5).")] = None,
        server_capex_frac: Annotated[float | None, typer.Option(
            "--server-capex-frac", help="Server, network and storage capex per accelerator, as a share of its "
                                        "price (default 0.5).")] = None,
        sensitivity: Annotated[float | None, typer.Option(
            "--sensitivity", help="Tornado range, fraction (default 0.2 = ±20 %).")] = None,
        out_dir: Annotated[Path | None, typer.Option(
            "--out", "-o", help="Write capacity.csv, capacity.html, tornado.png, capacity.json here (atomically).")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False,
    ) -> None:
        """Size accelerators, power, energy, carbon and cost for a demand, or say what a power budget buys."""
        from gridshift.cli.common import fail, out
        from gridshift.report.capacity import (
            ASSUMPTIONS_HEADING,
            assumption_lines,
            console_table,
            mix_lines,
            write_outputs,
        )
        from gridshift.report.output import to_jsonable
        from gridshift.studies.capacity import run_capacity

        try:
            run = run_capacity(tokens_per_day=tokens_per_day, requests_per_day=requests_per_day,
                               model_class=model_class, training_flop_per_month=training_flop_per_month,
                               utilisation=utilisation, pue=pue, zone=zone, carbon_g_per_kwh=carbon_g_per_kwh,
                               energy_price=energy_price, accelerators=accelerators, budget_mw=budget_mw,
                               budget_gw=budget_gw, budget_basis=budget_basis, mixes=mix, trace=trace,
                               peak_to_mean=peak_to_mean, mfu=mfu, amortisation_years=amortisation_years,
                               server_capex_frac=server_capex_frac, sensitivity=sensitivity)
            final = write_outputs(run, out_dir) if out_dir is not None else None
        except GridShiftError as e:
            fail(e)
        if as_json:
            typer.echo(json.dumps(to_jsonable(run.doc()), indent=2, ensure_ascii=False, allow_nan=False))
            return
        out.print(console_table(run))
        for line in mix_lines(run):
            out.print(line, markup=False, highlight=False, soft_wrap=True)
        out.print(ASSUMPTIONS_HEADING, markup=False, highlight=False)
        for line in assumption_lines(run):
            out.print(line, markup=False, highlight=False, soft_wrap=True)
        if final is not None:
            out.print(f"wrote {final}/capacity.csv, capacity.html, tornado.png, capacity.json",
                      markup=False, highlight=False, soft_wrap=True)

__all__ = ["register"]
