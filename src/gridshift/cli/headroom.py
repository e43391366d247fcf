"""`gridshift headroom` command (registered on the main app by `register`).

Curtailment-enabled grid headroom per EIA region from the hourly load of 2020–2024, beside the published
figure for the 22 largest US balancing authorities; optionally joined with a site's flexibility tiers.
The maths lives in :mod:`gridshift.studies.headroom`; this module reads the data, parses options and
writes ``DIR/headroom.csv``, ``headroom_by_year.csv``, ``headroom.json`` and ``headroom.png``.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Annotated

import typer

from gridshift.errors import GridShiftError, ScenarioError

REQUIRED_COLUMNS = ["region", "curtailment_frac", "headroom_gw", "hours_curtailed", "events"]

DIFFERENCES = (
    "Why ours differ from the published figures:",
    ("- spatial unit: 13 EIA regions (each a sum of balancing authorities) instead of the 22 largest BAs. A "
     "region's seasonal peak is at most the sum of its BAs' peaks, so its thresholds leave less room than its "
     "BAs' thresholds together, and the sum over regions typically comes out below a sum over BAs; CONUS as "
     "one region is lower again;"),
    "- coverage: the 13 regions cover the whole contiguous US, the 22 BAs about 95 % of its load;",
    ("- years: 2020–2024 (5 years, in which load grew: early years add headroom that later peaks removed) "
     "instead of the report's 2016–2024; thresholds are the seasonal peaks of the years used;"),
    ("- data: Ruggles & Farnham's cleaned EIA-930 demand (anomalous spikes replaced), so thresholds are not "
     "set by reporting errors;"),
    "- time: seasons by UTC calendar month.",
)


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


def _pct(f: float) -> str:
    return f"{f * 100:g} %"


def _comparison(table, fractions: list[float], all_regions: bool) -> list[dict]:
    """Per limit: our contiguous-US figures (the sum only when every region is in it) beside the published one."""
    from gridshift.studies.headroom import CONUS, DUKE_GW, SUM_REGION

    def pick(region: str, f: float) -> float | None:
        s = table.loc[(table["region"] == region) & (table["curtailment_frac"] == f), "headroom_gw"]
        return float(s.iloc[0]) if len(s) else None

    return [{"curtailment_frac": f, "sum_of_regions_gw": pick(SUM_REGION, f) if all_regions else None,
             "conus_one_region_gw": pick(CONUS, f), "duke_22_ba_gw": DUKE_GW.get(f)} for f in fractions]


def _fmt_gw(v) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:,.1f}"


def _print_tables(table, comparison, fractions, tiers, years_label: str, basis: str) -> None:
    from rich.table import Table

    from gridshift.cli.common import out
    from gridshift.studies.headroom import CONUS, DUKE_SOURCE, SUM_REGION

    t = Table(title=f"Curtailment-enabled headroom, GW, and hours curtailed per year ({years_label}, "
                    f"{'mean of annual rates' if basis == 'mean' else 'every year within the limit'})")
    t.add_column("region")
    for f in fractions:
        t.add_column(f"GW @ {_pct(f)}", justify="right")
        t.add_column("h/yr", justify="right")
    order = [r for r in dict.fromkeys(table["region"]) if r not in (SUM_REGION, CONUS)]
    order += [r for r in (SUM_REGION, CONUS) if r in set(table["region"])]
    for reg in order:
        sub = table[table["region"] == reg].set_index("curtailment_frac")
        cells = []
        for f in fractions:
            row = sub.loc[f]
            cells += [_fmt_gw(row["headroom_gw"]),
                      "" if math.isnan(row["hours_curtailed"]) else f"{row['hours_curtailed']:.0f}"]
        label = {SUM_REGION: "sum of regions", CONUS: "CONUS as one region"}.get(reg, reg)
        nxt = order[order.index(reg) + 1] if reg != order[-1] else None
        t.add_row(label, *cells, end_section=nxt in (SUM_REGION, CONUS) and reg not in (SUM_REGION, CONUS))
    out.print(t)

    c = Table(title="Ours beside the published figures, GW")
    for col in ("curtailment limit", "ours: sum of regions", "ours: CONUS as one region",
                "Duke 2025: 22 largest BAs"):
        c.add_column(col, justify="right")
    for r in comparison:
        c.add_row(_pct(r["curtailment_frac"]), _fmt_gw(r["sum_of_regions_gw"]), _fmt_gw(r["conus_one_region_gw"]),
                  _fmt_gw(r["duke_22_ba_gw"]))
    out.print(c)
    out.print(f"Published figures: {DUKE_SOURCE}.", markup=False, highlight=False, soft_wrap=True)
    for line in DIFFERENCES:
        out.print(line, markup=False, highlight=False, soft_wrap=True)

    if tiers is not None:
        tt = Table(title=f"Site flexibility: deliverable curtailment depth {tiers.depth_frac:.3f} of site power"
                         + (f" ({tiers.accelerator} power-cap curve)" if tiers.accelerator else " (duty-cycling)"))
        for col in ("tier", "share", "throughput loss allowed", "lever", "sheds of its power"):
            tt.add_column(col, justify="right")
        for k, (s, lim, lev, cut) in enumerate(zip(tiers.shares, tiers.loss_limits, tiers.lever, tiers.cut_frac)):
            tt.add_row(str(k), f"{s:.3g}", "pause allowed" if lev == "pause" else _pct(lim), lev, f"{cut:.3f}")
        out.print(tt)
        j = Table(title="Join with the site: AI load the region can take, and backup needed at the headroom, GW")
        j.add_column("region")
        for f in fractions:
            j.add_column(f"site GW @ {_pct(f)}", justify="right")
            j.add_column("backup GW", justify="right")
        for reg in order:
            sub = table[table["region"] == reg].set_index("curtailment_frac")
            cells = []
            for f in fractions:
                cells += [_fmt_gw(sub.loc[f, "site_headroom_gw"]), _fmt_gw(sub.loc[f, "backup_gw"])]
            j.add_row({SUM_REGION: "sum of regions", CONUS: "CONUS as one region"}.get(reg, reg), *cells)
        out.print(j)
        out.print("A site that can shed only part of its power cannot follow the curtailment at a seasonal-peak "
                  "hour, where the grid needs the whole new load off; 'site GW' is the load it can add without "
                  "help, 'backup GW' the on-site generation or storage that closes the gap at the full headroom.",
                  markup=False, highlight=False, soft_wrap=True)


def _write_png(path: Path, table, comparison, fractions) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from gridshift.studies.headroom import CONUS, SUM_REGION

    regions = [r for r in dict.fromkeys(table["region"]) if r not in (SUM_REGION, CONUS)]
    fig = Figure(figsize=(11.0, 4.6), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2, width_ratios=[2.2, 1]) if regions else (None, fig.subplots(1, 1))
    width = 0.8 / max(len(fractions), 1)
    if regions:
        for k, f in enumerate(fractions):
            sub = table[table["curtailment_frac"] == f].set_index("region")
            ax1.bar([i + k * width for i in range(len(regions))], [sub.loc[r, "headroom_gw"] for r in regions],
                    width=width, label=_pct(f))
        ax1.set_xticks([i + 0.4 - width / 2 for i in range(len(regions))], regions)
        ax1.set_ylabel("headroom, GW")
        ax1.set_title("By EIA region")
        ax1.legend(title="curtailment limit", fontsize=8)
    xs = range(len(fractions))
    for key, label, marker in (("sum_of_regions_gw", "ours: sum of regions", "o"),
                               ("conus_one_region_gw", "ours: CONUS as one region", "s"),
                               ("duke_22_ba_gw", "Duke 2025: 22 largest BAs", "^")):
        ys = [r[key] if r[key] is not None else float("nan") for r in comparison]
        if any(not math.isnan(y) for y in ys):
            ax2.plot(list(xs), ys, marker=marker, label=label)
    ax2.set_xticks(list(xs), [_pct(f) for f in fractions])
    ax2.set_xlabel("annual curtailment limit")
    ax2.set_ylabel("headroom, GW")
    ax2.set_title("Contiguous US")
    ax2.legend(fontsize=8)
    fig.savefig(path, format="png")


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

        try:
            if scenario is not None:
                if tier_shares is not None:
                    raise ScenarioError("give --tier-shares or --scenario, not both", field="scenario")
                from gridshift.world.build import assemble
                from gridshift.data.scenario import load_scenario
                from gridshift.studies.tiers import main_accelerator, tier_energy_shares

                asm = assemble(load_scenario(scenario))
                tier_shares = ",".join(f"{x:.6f}" for x in tier_energy_shares(asm.world))
                accelerator = accelerator or main_accelerator(asm.world)
            doc, table, tiers, final = _run(out_dir, regions, years, curtailment, basis, max_event_h, tier_shares,
                                            accelerator, quiet=as_json)
        except GridShiftError as e:
            fail(e)
            return
        if as_json:
            out.print_json(json.dumps(doc))
        else:
            _print_tables(table, doc["comparison"], doc["curtailment_fracs"], tiers, doc["years"], doc["basis"])
            err.print(f"wrote {final}/headroom.csv, headroom_by_year.csv, headroom.json, headroom.png",
                      markup=False, highlight=False, soft_wrap=True)


def _run(out_dir: Path, regions_opt, years_opt, curtailment_opt, basis, max_event_h, tier_shares_opt,
         accelerator_opt, *, quiet: bool):
    from gridshift.cli.common import err
    from gridshift.data.grid import available_load_regions, load_grid_load
    from gridshift.report.output import OutputDir, to_jsonable, write_json_atomic
    from gridshift.studies import headroom as hr

    fractions = parse_fractions(curtailment_opt)
    years = parse_years(years_opt)
    if basis not in ("mean", "worst-year"):
        raise ScenarioError(f"unknown basis '{basis}'; use 'mean' or 'worst-year'", field="basis")
    if max_event_h is not None and max_event_h < 1:
        raise ScenarioError(f"--max-event-h must be at least 1 hour (got {max_event_h})", field="max_event_h")
    tiers = None
    if tier_shares_opt is not None:
        shares = parse_tier_shares(tier_shares_opt)
        kw = {}
        if accelerator_opt:
            from gridshift.catalog import get_accelerator

            acc = get_accelerator(accelerator_opt)
            curve = acc.power_cap_curve
            kw = {"power_frac": curve.power_frac, "throughput_frac": curve.throughput_frac,
                  "board_share": acc.board_power_w / (acc.board_power_w + acc.host_power_w),
                  "accelerator": acc.name}
        tiers = hr.tier_depth(shares, **kw)
    elif accelerator_opt:
        raise ScenarioError("--accelerator only applies with --tier-shares", field="accelerator")
    names = parse_regions(regions_opt, available_load_regions())

    status = err.status("loading hourly load", spinner="dots") if not quiet else _Null()
    with status:
        loads = {r: hr.prepare_region(r, load_grid_load(r)["load_mw"], years) for r in names}
    table, by_year = hr.headroom_table(loads, fractions, basis=basis, max_event_h=max_event_h,
                                       depth_frac=tiers.depth_frac if tiers else None)
    cols = REQUIRED_COLUMNS + [c for c in table.columns if c not in REQUIRED_COLUMNS]
    table = table[cols]
    all_regions = set(available_load_regions()) - {hr.CONUS} <= set(names)
    comparison = _comparison(table, fractions, all_regions)
    years_label = str(table["years"].iloc[0])
    doc = {
        "method": "curtailment-enabled headroom: largest constant new load that never lifts load above the "
                  "historical seasonal peak (winter Dec-Feb, spring Mar-May, summer Jun-Aug, fall Sep-Nov; UTC "
                  "months) by curtailing the excess, within an annual curtailment limit on its energy",
        "basis": basis,
        "years": years_label,
        "curtailment_fracs": fractions,
        "max_event_h": max_event_h,
        "regions": names,
        "comparison": comparison,
        "published": {"source": hr.DUKE_SOURCE, "headroom_gw": {str(k): v for k, v in hr.DUKE_GW.items()}},
        "data": "Ruggles & Farnham, cleaned EIA-930 hourly demand, CC BY 4.0 (doi:10.5281/zenodo.3517197)",
        "tiers": None if tiers is None else {
            "shares": tiers.shares, "loss_limits": tiers.loss_limits, "lever": tiers.lever,
            "cut_frac": tiers.cut_frac, "cap_power_frac": tiers.cap_power_frac, "depth_frac": tiers.depth_frac,
            "accelerator": tiers.accelerator},
        "rows": table.to_dict(orient="records"),
    }
    with OutputDir(out_dir) as tmp:
        table.to_csv(tmp / "headroom.csv", index=False, float_format="%.10g")
        by_year.to_csv(tmp / "headroom_by_year.csv", index=False, float_format="%.10g")
        write_json_atomic(tmp / "headroom.json", doc)
        _write_png(tmp / "headroom.png", table, comparison, fractions)
    return to_jsonable(doc), table, tiers, OutputDir(out_dir).final


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False
