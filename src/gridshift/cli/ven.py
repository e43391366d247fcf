"""Command line: ``gridshift ven`` — run an OpenADR 2.0b VEN for one site against a utility's VTN."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def _load_reader(load_mw: float | None, load_mw_file: Path | None):
    from gridshift.grid.openadr import OpenADRError

    if (load_mw is None) == (load_mw_file is None):
        raise OpenADRError("give exactly one of --load-mw or --load-mw-file", field="load_mw")
    if load_mw is not None:
        return lambda: load_mw

    def read() -> float:
        try:
            return float(load_mw_file.read_text().strip())
        except (OSError, ValueError) as e:
            raise OpenADRError(f"cannot read the site's load in MW: {e}", file=load_mw_file) from None

    return read


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""

    @app.command("ven")
    def ven_cmd(
        vtn_url: Annotated[str, typer.Option(help="The VTN's OpenADR 2.0b URL, e.g. "
                                                  "https://vtn.example.com/OpenADR2/Simple/2.0b")],
        ven_name: Annotated[str, typer.Option(help="This VEN's name, as agreed with the utility.")],
        site: Annotated[str, typer.Option(help="The site this VEN speaks for.")],
        load_mw: Annotated[float | None, typer.Option(help="Report this constant facility load, MW.")] = None,
        load_mw_file: Annotated[Path | None, typer.Option(
            help="Or: read the facility load (MW, one number) from this file at every report.")] = None,
        baseline_mw: Annotated[float | None, typer.Option(
            help="Reference of cut events, MW (default: the reported load when the event arrives).")] = None,
        capacity_mw: Annotated[float | None, typer.Option(
            help="The site's full capacity, MW (for LOAD_CONTROL capacity shares).")] = None,
        tariff_usd_per_mwh: Annotated[float | None, typer.Option(
            help="Tariff that relative price signals modify, USD/MWh.")] = None,
        report_interval_s: Annotated[int, typer.Option(help="Shortest telemetry period offered, s.")] = 10,
        opt_out: Annotated[bool, typer.Option("--opt-out", help="Decline every event (default: take part).")] = False,
        ven_id: Annotated[str | None, typer.Option(help="A venID the VTN already assigned.")] = None,
        cert: Annotated[str | None, typer.Option(help="PEM client certificate (TLS and message signing).")] = None,
        key: Annotated[str | None, typer.Option(help="PEM private key of --cert.")] = None,
        ca_file: Annotated[str | None, typer.Option(help="PEM CA bundle that signed the VTN's certificate.")] = None,
        vtn_fingerprint: Annotated[str | None, typer.Option(help="Fingerprint of the VTN's certificate.")] = None,
        verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show openleadr's protocol log.")] = False,
    ) -> None:
        """Register with a VTN, print each grid event it sends as a JSON line, answer optIn (or optOut) and
        report the site's facility load; runs until interrupted."""
        import asyncio
        import logging

        from gridshift.cli.common import err, fail, out
        from gridshift.grid.openadr import GridShiftVen, OpenADRError

        if verbose:
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        else:
            logging.getLogger("openleadr").setLevel(logging.CRITICAL)
        try:
            load = _load_reader(load_mw, load_mw_file)

            def on_events(events) -> bool:
                for e in events:
                    out.print(e.model_dump_json(), markup=False, highlight=False, soft_wrap=True)
                return not opt_out

            async def main() -> None:
                ven = GridShiftVen(ven_name, vtn_url, site, on_events, load,
                                   baseline_mw=baseline_mw,
                                   capacity_mw=capacity_mw, tariff_usd_per_mwh=tariff_usd_per_mwh,
                                   report_interval_s=report_interval_s, ven_id=ven_id, cert=cert, key=key,
                                   ca_file=ca_file, vtn_fingerprint=vtn_fingerprint)
                try:
                    await ven.run()
                    err.print(f"registered with {vtn_url} as venID {ven.ven_id}; Ctrl-C stops", markup=False)
                    await ven.wait()
                finally:
                    await ven.stop()

            asyncio.run(main())
        except OpenADRError as e:
            fail(e)
        except KeyboardInterrupt:
            raise typer.Exit(0) from None
