"""``gridshift flex``: a site's commitment curve — MW it can shed, for how long, at what throughput cost."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from gridshift.cli.common import fail, out
from gridshift.errors import GridShiftError, ScenarioError

MAX_DURATION_H = 24 * 366.0  # a shed held longer than a year is not a flexibility question


def register(app: typer.Typer) -> None:
    @app.command()
    def flex(
        scenario: Annotated[Path, typer.Argument(help="Scenario YAML file.")],
        site: Annotated[str, typer.Option("--site", "-s", help="Site name.")],
        at: Annotated[str, typer.Option("--at", help="UTC time, e.g. 2023-08-15T23:00:00Z.")],
        policy: Annotated[str, typer.Option("--policy", "-p", help="Policy that runs the fleet up to then.")] = "asap",
        durations: Annotated[str, typer.Option(help="Hours to hold the shed, comma-separated.")] =
            "0.25,0.5,1,2,4,8,12,24",
        as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    ) -> None:
        """How many MW a site can shed at a moment, for how long, at what cost in throughput (by tier)."""
        from gridshift.data.scenario import load_scenario
        from gridshift.studies.flex import site_flex
        from gridshift.world.build import assemble

        try:
            try:
                when = datetime.fromisoformat(at.replace("Z", "+00:00"))
            except ValueError:
                raise ScenarioError(f"'{at}' is not an ISO 8601 time", field="at") from None
            try:
                hours = tuple(float(x) for x in durations.split(",") if x.strip())
            except ValueError:
                raise ScenarioError(f"'{durations}' is not a list of hours", field="durations") from None
            if not hours or not all(0 < h <= MAX_DURATION_H for h in hours):  # nan and inf fail too
                raise ScenarioError(f"durations must be above 0 and at most {MAX_DURATION_H:g} hours (got "
                                    f"'{durations}')", field="durations")
            res = site_flex(assemble(load_scenario(scenario)), site, when, policy=policy, duration_h=hours)
        except GridShiftError as e:
            fail(e, str(scenario))
        if as_json:
            out.print_json(json.dumps(res))
            return
        t = Table(title=f"{res['site']} at {res['at']} ({res['policy']}): drawing {res['draw_mw']:.4g} MW, "
                        f"{res['running_jobs']} jobs running; floor with all idle {res['floor_mw']:.4g} MW")
        for c in ("hold for h", "shed MW", "shed %", "throughput lost %", "full shed within s",
                  "tier 1 MW", "tier 2 MW", "tier 3 MW"):
            t.add_column(c, justify="right")
        for r in res["curve"]:
            t.add_row(f"{r['duration_h']:g}", f"{r['shed_mw']:.4g}", f"{100 * r['shed_frac']:.1f}",
                      f"{100 * r['throughput_lost_frac']:.1f}", f"{r['full_shed_within_s']:.0f}",
                      f"{r['tier1_mw']:.3g}", f"{r['tier2_mw']:.3g}", f"{r['tier3_mw']:.3g}")
        out.print(t)
