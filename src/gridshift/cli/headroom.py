"""`gridshift headroom` command (registered on the main app by `register`).

Curtailment-enabled grid headroom per EIA region from the hourly load of 2020–2024, beside the published
figure for the 22 largest US balancing authorities; optionally joined with a site's flexibility tiers.
This module parses the options; the study lives in :mod:`gridshift.studies.headroom` and its outputs
(``DIR/headroom.csv``, ``headroom_by_year.csv``, ``headroom.json``, ``headroom.png`` and the tables) in
:mod:`gridshift.report.headroom`.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Annotated

import typer

from gridshift.errors import GridShiftError, ScenarioError


def _parse_list(text: str, what: str) -> list[str]:
    items = [x.strip() for x in re.split(r"[,\s]+", text or "") if x.strip()]
    if not items:
        raise ScenarioError(f"{what} is empty", field=what)
    return items


def parse_fractions(text: str) -> list[float]:
    """``"0.0025,0.005"`` or ``"0.25%,0.5%"`` -> fractions strictly between 0 and 1, in the order given."""
    out: list[float] = []
    for item in _parse_list(text, "curtailment"):
        pct = item.endswith("%")
        try:
            v = float(item[:-1] if pct else item) / (100.0 if pct else 1.0)
        except ValueError:
            raise ScenarioError(f"'{item}' is not a number", field="curtailment") from None
        if not (math.isfinite(v) and 0.0 < v < 1.0):
            raise ScenarioError(f"curtailment limit '{item}' must be a fraction strictly between 0 and 1 "
                                "(e.g. 0.005 or 0.5%)", field="curtailment")
        if v not in out:
            out.append(v)
    return out


def parse_years(text: str) -> list[int]:
    """``"2020-2024"``, ``"2021,2023"`` or a mix -> sorted years."""
    years: set[int] = set()
    for item in _parse_list(text, "years"):
        m = re.fullmatch(r"(\d{4})(?:[-–](\d{4}))?", item)
        if not m:
            raise ScenarioError(f"'{item}' is not a year or a range like 2020-2024", field="years")
        a, b = int(m.group(1)), int(m.group(2) or m.group(1))
        if b < a:
            raise ScenarioError(f"year range '{item}' runs backwards", field="years")
        years.update(range(a, b + 1))
    return sorted(years)


def parse_tier_shares(text: str) -> list[float]:
    """``"0.4,0.2,0.2,0.2"`` -> four non-negative shares summing to 1 (checked by ``tier_depth``)."""
    vals = []
    for item in _parse_list(text, "tier_shares"):
        try:
            vals.append(float(item))
        except ValueError:
            raise ScenarioError(f"tier share '{item}' is not a number", field="tier_shares") from None
    return vals


def parse_regions(text: str | None, available: list[str]) -> list[str]:
    if not text:
        return [r for r in available if r != "CONUS"] + (["CONUS"] if "CONUS" in available else [])
    known = {r.upper(): r for r in available}
    out = []
    for item in _parse_list(text, "regions"):
        r = known.get(item.upper())
        if r is None:
            raise ScenarioError(f"unknown region '{item}' (known: {', '.join(available)})", field="regions")
        if r not in out:
            out.append(r)
    return out


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""

    @app.command("headroom")
    def headroom_cmd(
        out_dir: Annotated[Path, typer.Option("--out", "-o", help="Output directory (written atomically).")] = Path(
            "headroom-out"),
        regions: Annotated[str | None, typer.Option(
            help="Comma-separated EIA regions (default: all 13 and CONUS as one region).")] = None,
        years: Annotated[str, typer.Option(help="Study years, e.g. 2020-2024 or 2021,2023 (UTC).")] = "2020-2024",
        curtailment: Annotated[str, typer.Option(
            help="Annual curtailment limits as fractions of the new load's energy (or with %).")
        ] = "0.0025,0.005,0.01,0.05",
        basis: Annotated[str, typer.Option(
            help="'mean': mean of the annual rates within the limit; 'worst-year': every year within it.")] = "mean",
        max_event_h: Annotated[int | None, typer.Option(
            "--max-event-h", help="Also cap the length of a curtailment event (consecutive hours).")] = None,
        tier_shares: Annotated[str | None, typer.Option(
            help="Share of the site's load in flexibility tiers 0-3, e.g. 0.4,0.2,0.2,0.2 (tier 0 never slowed; "
                 "1, 2, 3 accept 10, 25, 50 % throughput loss; 3 may pause).")] = None,
        accelerator: Annotated[str | None, typer.Option(
            help="Accelerator whose power-cap curve tiers 1-2 may use (with --tier-shares).")] = None,
        scenario: Annotated[Path | None, typer.Option(
            help="Take the tier shares (and the accelerator) from a scenario's workload instead.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON instead of tables.")] = False,
    ) -> None:
        """Curtailment-enabled grid headroom per US region: the largest constant new load that stays under
        the historical seasonal peaks by curtailing at most a given share of its energy; beside the Duke 2025
        figures, and optionally joined with a site's flexibility tiers."""
        from gridshift.cli.common import err, fail, out
        from gridshift.data.grid import available_load_regions
        from gridshift.report.headroom import console_items, write_outputs
        from gridshift.report.output import to_jsonable
        from gridshift.studies.headroom import run_headroom, scenario_tiers

        try:
            shares = None
            if scenario is not None:
                if tier_shares is not None:
                    raise ScenarioError("give --tier-shares or --scenario, not both", field="scenario")
                shares, main = scenario_tiers(scenario)
                accelerator = accelerator or main
            if max_event_h is not None and not 1 <= max_event_h <= 8784:
                raise ScenarioError(f"must be from 1 to 8784 hours (a year; got {max_event_h})", field="max-event-h")
            fractions = parse_fractions(curtailment)
            year_list = parse_years(years)
            if shares is None and tier_shares is not None:
                shares = parse_tier_shares(tier_shares)
            names = parse_regions(regions, available_load_regions())
            loading = err.status("loading hourly load", spinner="dots") if not as_json else None
            run = run_headroom(names, year_list, fractions, basis=basis, max_event_h=max_event_h,
                               tier_shares=shares, accelerator=accelerator, loading=loading)
            final = write_outputs(run, out_dir)
        except GridShiftError as e:
            fail(e)
            return
        if as_json:
            out.print_json(json.dumps(to_jsonable(run.doc)))
        else:
            for item in console_items(run):
                if isinstance(item, str):
                    out.print(item, markup=False, highlight=False, soft_wrap=True)
                else:
                    out.print(item)
            err.print(f"wrote {final}/headroom.csv, headroom_by_year.csv, headroom.json, headroom.png",
                      markup=False, highlight=False, soft_wrap=True)
