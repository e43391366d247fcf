"""Scenario sweeps, the pure core: the sweep file model, the expansion of its axes into cells (one scenario
variant under one policy each), stable cell ids, and the results table. No I/O here; running cells on Ray and
writing their results is :mod:`gridshift.studies.sweep_run`.

A cell is one point of the cartesian product ``zones × years × seeds × fleet_scale × policies``. Its id is
a hash of its variant (the axis values as written), so it is the same on every run of the same sweep file;
``scenario_sha256`` hashes the complete scenario the cell runs, so a changed base scenario is noticed.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from gridshift.data.scenario import _clean_loc, _field_path, parse_yaml_model
from gridshift.errors import ScenarioError
from gridshift.model.fleet import Zone
from gridshift.model.scenario import PolicySpec, Scenario

ALL_SITES = "*"
AXES = ("zone", "year", "seed", "fleet_scale", "policy")
"""Axis columns of the results table, in order."""

ZoneValue = str | Zone
PLOT_METRICS = ("carbon_t", "cost_usd", "deadline_miss_frac", "saving_vs_asap_frac")


class Axes(BaseModel):
    """What varies. Every axis is optional; a missing axis keeps the base scenario's value."""

    model_config = ConfigDict(extra="forbid")

    zones: list[dict[str, ZoneValue]] | None = Field(
        default=None,
        description="Either a list whose items are a zone (id or {id, price_usd_per_mwh, ...}) put on every "
                    "site, or a mapping site → zone for one assignment; or a mapping site → list of zones, "
                    "whose cartesian product over the listed sites gives the assignments.")
    years: list[int] | None = Field(default=None, description="Shift the scenario to the same dates in each year.")
    seeds: list[int] | None = Field(default=None, description="Scenario seed (workload generation).")
    fleet_scale: list[float] | None = Field(
        default=None, description="Multiply every pool's accelerator count (rounded) and every site power cap.")
    policies: list[PolicySpec] | None = Field(
        default=None, description="Policy names or {name, label, params}; default: the base scenario's policies.")

    @field_validator("zones", mode="before")
    @classmethod
    def _zones(cls, v: Any) -> Any:
        if isinstance(v, dict):  # site -> [zones]: the cartesian product over the listed sites
            if not v:
                raise ValueError("the mapping site → list of zones is empty")
            sites = list(v)
            lists = [x if isinstance(x, list) else [x] for x in v.values()]
            if any(not x for x in lists):
                raise ValueError("every site needs at least one zone")
            return [dict(zip(sites, combo)) for combo in itertools.product(*lists)]
        if isinstance(v, list):
            out = []
            for item in v:
                if isinstance(item, str) or (isinstance(item, dict) and "id" in item):
                    out.append({ALL_SITES: item})
                else:
                    out.append(item)
            return out
        return v

    @field_validator("policies", mode="before")
    @classmethod
    def _policies(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [{"name": p} if isinstance(p, str) else p for p in v]
        return v

    @field_validator("years")
    @classmethod
    def _years(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and any(not (1900 <= y <= 2200) for y in v):
            raise ValueError("years must lie between 1900 and 2200")
        return v

    @field_validator("fleet_scale")
    @classmethod
    def _scale(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and any(not (math.isfinite(x) and x > 0) for x in v):
            raise ValueError("fleet_scale values must be finite and > 0")
        return v

    @model_validator(mode="after")
    def _unique(self) -> Axes:
        for name in ("zones", "years", "seeds", "fleet_scale", "policies"):
            vals = getattr(self, name)
            if vals is None:
                continue
            if not vals:
                raise ValueError(f"axes.{name} is empty (leave it out to keep the base scenario's value)")
            keys = [_canon(_variant_value(name, x)) for x in vals]
            if len(set(keys)) != len(keys):
                raise ValueError(f"axes.{name} lists the same value twice")
        if self.policies is not None:
            labels = [p.key for p in self.policies]
            if len(set(labels)) != len(labels):
                raise ValueError("policy labels must be unique (set `label` to run one policy twice)")
        return self


class SweepSpec(BaseModel):
    """A sweep file: a base scenario, the axes to vary, and where and how wide to run."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    description: str = ""
    base: str = Field(min_length=1, description="Scenario YAML, relative to the sweep file.")
    axes: Axes = Field(default_factory=Axes)
    workers: int | None = Field(default=None, ge=1, le=4096,
                                description="Cells run at once on a local Ray (default: all CPUs).")
    out: str | None = Field(default=None, description="Output directory, relative to the working directory "
                                                      "(default: out/sweep-<name>).")
    plot_metrics: list[str] = Field(
        default_factory=lambda: list(PLOT_METRICS), min_length=1,
        description="Scalar metrics compared in report.html (default: carbon, cost, deadline misses, saving vs asap).")


def parse_sweep(text: str, source: str = "<sweep>") -> SweepSpec:
    """A validated :class:`SweepSpec` from YAML text; :class:`ScenarioError` naming file, line and field."""
    return parse_yaml_model(SweepSpec, text, source, "a sweep file (name, base, axes)")


# ------------------------------------------------------------------------------------------ expansion
@dataclass(frozen=True)
class Cell:
    """One scenario variant under one policy. ``scenario`` is None when the variant is not a valid scenario
    (for example 29 February in a year that has none); ``error`` then says why, and the cell is recorded as
    failed without running."""

    cell_id: str
    variant: dict[str, Any]
    axes: dict[str, Any]
    scenario: Scenario | None
    error: str | None = None
    scenario_sha256: str | None = field(default=None)


def _canon(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def _variant_value(axis: str, value: Any) -> Any:
    if axis == "zones":
        return {site: z if isinstance(z, str) else z.model_dump(mode="json") for site, z in value.items()}
    if axis == "policies":
        return value.model_dump(mode="json")
    if axis == "fleet_scale":
        return float(value)
    return value


def cell_id_of(variant: dict[str, Any]) -> str:
    """The stable id of a cell: 12 hex digits of SHA-256 over its canonical variant."""
    return hashlib.sha256(_canon(variant).encode()).hexdigest()[:12]


def scenario_hash(scenario: Scenario) -> str:
    return hashlib.sha256(_canon(scenario.model_dump(mode="json")).encode()).hexdigest()


def _zone_label(sites: list[dict[str, Any]]) -> str:
    zones = [s["zone"] for s in sites]
    if len(set(zones)) == 1:
        return zones[0]
    return ",".join(f"{s['name']}={s['zone']}" for s in sites)


def _shift_year(t: datetime, years: int) -> datetime:
    try:
        return t.replace(year=t.year + years)
    except ValueError:  # 29 February
        raise ValueError(f"{t.date().isoformat()} has no counterpart in {t.year + years} "
                         "(29 February); choose another year or start date") from None


def apply_zones(doc: dict[str, Any], assignment: dict[str, ZoneValue], base: Scenario) -> None:
    """Put sites on zones (``'*'`` = every site not named); the scenario keeps only the zones its sites use.
    A zone given by id reuses the base scenario's settings for that zone (e.g. a constant price)."""
    base_zones = {z.id: z.model_dump(mode="json") for z in base.zones}
    chosen: dict[str, dict[str, Any]] = {}
    for site in doc["sites"]:
        z = assignment.get(site["name"], assignment.get(ALL_SITES))
        if z is None:
            chosen.setdefault(site["zone"], base_zones[site["zone"]])
            continue
        zdoc = base_zones.get(z, {"id": z}) if isinstance(z, str) else z.model_dump(mode="json")
        if zdoc["id"] in chosen and chosen[zdoc["id"]] != zdoc:
            raise ValueError(f"zone '{zdoc['id']}' is given with two different settings in one assignment")
        chosen[zdoc["id"]] = zdoc
        site["zone"] = zdoc["id"]
    doc["zones"] = list(chosen.values())


def apply_year(doc: dict[str, Any], year: int) -> None:
    """Shift every time of the scenario (time range, power-cap steps, written-out jobs) to the same date and
    time ``year - start year`` years later (or earlier)."""
    tr = doc["time_range"]
    dy = year - tr["start"].year
    if dy == 0:
        return
    tr["start"], tr["end"] = _shift_year(tr["start"], dy), _shift_year(tr["end"], dy)
    for site in doc["sites"]:
        if isinstance(site["power_cap_mw"], list):
            for step in site["power_cap_mw"]:
                step["start"] = _shift_year(step["start"], dy)
    for job in doc["workloads"]["jobs"]:
        job["arrival"] = _shift_year(job["arrival"], dy)
        if job.get("deadline") is not None:
            job["deadline"] = _shift_year(job["deadline"], dy)


def apply_fleet_scale(doc: dict[str, Any], scale: float) -> None:
    """Multiply every pool's count (rounded half up) and every site power cap (constant or steps)."""
    if scale == 1.0:
        return
    for site in doc["sites"]:
        for pool in site["pools"]:
            pool["count"] = math.floor(pool["count"] * scale + 0.5)
        cap = site["power_cap_mw"]
        if isinstance(cap, list):
            for step in cap:
                step["power_cap_mw"] = step["power_cap_mw"] * scale
        else:
            site["power_cap_mw"] = cap * scale


def _one_line(e: Exception) -> str:
    if isinstance(e, ValidationError):
        err = e.errors()[0]
        where = _field_path(_clean_loc(tuple(err["loc"])))
        msg = err["msg"].removeprefix("Value error, ")
        return " ".join(f"field '{where}': {msg}".split()) if where else msg
    return " ".join(str(e).split())


def _check_policies(specs: list[PolicySpec], base: Scenario, source: str | None) -> None:
    from gridshift.plan.registry import make_policy

    for i, spec in enumerate(specs):
        try:
            make_policy(spec, i, objective=base.objective)
        except ScenarioError as e:
            field = (e.field or "").replace("policies[", "axes.policies[", 1) or f"axes.policies[{i}]"
            raise ScenarioError(e.message, file=source, field=field) from e


def expand(spec: SweepSpec, base: Scenario, source: str | None = None) -> list[Cell]:
    """Every cell of the sweep, in a stable order (zones, years, seeds, fleet scales, then policies).

    Raises :class:`ScenarioError` (naming ``source``) when the sweep does not fit the base scenario: a site
    that does not exist, an unknown policy or policy parameter.
    """
    ax = spec.axes
    site_names = {s.name for s in base.sites}
    for i, assignment in enumerate(ax.zones or []):
        for site in assignment:
            if site != ALL_SITES and site not in site_names:
                raise ScenarioError(f"no site '{site}' in the base scenario (sites: {', '.join(sorted(site_names))})",
                                    file=source, field=f"axes.zones[{i}]")
    policies = list(ax.policies) if ax.policies is not None else list(base.policies)
    _check_policies(policies, base, source)
    levels: dict[str, list[Any]] = {
        "zones": list(ax.zones) if ax.zones is not None else [None],
        "years": list(ax.years) if ax.years is not None else [None],
        "seeds": list(ax.seeds) if ax.seeds is not None else [None],
        "fleet_scale": list(ax.fleet_scale) if ax.fleet_scale is not None else [None],
        "policies": policies,
    }
    base_doc = base.model_dump(mode="python")
    cells: list[Cell] = []
    for combo in itertools.product(*levels.values()):
        values = dict(zip(levels, combo))
        variant = {k: None if v is None else _variant_value(k, v) for k, v in values.items()}
        cid = cell_id_of(variant)
        doc = _deep_copy(base_doc)
        pol: PolicySpec = values["policies"]
        axes_row: dict[str, Any] = {"zone": None, "year": base.time_range.start.year,
                                    "seed": values["seeds"] if values["seeds"] is not None else base.seed,
                                    "fleet_scale": float(values["fleet_scale"] or 1.0),
                                    "policy": pol.key, "policy_name": pol.name}
        try:
            if values["zones"] is not None:
                apply_zones(doc, values["zones"], base)
            if values["years"] is not None:
                apply_year(doc, values["years"])
                axes_row["year"] = values["years"]
            if values["seeds"] is not None:
                doc["seed"] = values["seeds"]
            if values["fleet_scale"] is not None:
                apply_fleet_scale(doc, values["fleet_scale"])
            doc["policies"] = [pol.model_dump(mode="python")]
            axes_row["zone"] = _zone_label(doc["sites"])
            sc = Scenario.model_validate(doc)
        except (ValueError, ValidationError) as e:
            axes_row["zone"] = axes_row["zone"] or _zone_label(doc["sites"])
            cells.append(Cell(cid, variant, axes_row, None, error=f"invalid variant: {_one_line(e)}"))
            continue
        cells.append(Cell(cid, variant, axes_row, sc, scenario_sha256=scenario_hash(sc)))
    return cells


def _deep_copy(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _deep_copy(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_deep_copy(v) for v in obj]
    return obj


# -------------------------------------------------------------------------------------- results table
def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, (bool, int, float, str))


def results_table(cells: list[Cell], results: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per cell that has a result: ``cell_id``, the axis columns, ``status``, ``error``, run facts,
    then every scalar metric. ``saving_vs_asap_frac`` and ``oracle_capture_frac`` are computed across the
    cells of one scenario variant (same zone, year, seed and fleet scale) from ``objective_value``, when the
    variant has an ``asap`` (and an ``oracle``) cell."""
    rows = []
    for c in cells:
        r = results.get(c.cell_id)
        if r is None:
            continue
        row: dict[str, Any] = {"cell_id": c.cell_id, **c.axes, "status": r.get("status"), "error": r.get("error"),
                               "wall_s": r.get("wall_s"), "cpu_s": r.get("cpu_s"), "finished_utc": r.get("finished_utc")}
        for k, v in (r.get("metrics") or {}).items():
            if _scalar(v) and k not in row and k not in ("saving_vs_asap_frac", "oracle_capture_frac"):
                row[k] = v
        rows.append(row)
    if not rows:
        return pd.DataFrame(columns=["cell_id", *AXES, "policy_name", "status", "error", "wall_s", "cpu_s",
                                     "finished_utc"])
    df = pd.DataFrame(rows)
    df["finished_utc"] = pd.to_datetime(df["finished_utc"], utc=True, errors="coerce")
    # a metric of mixed types is kept as text (parquet needs one type)
    for c in df.columns[df.dtypes == object]:  # noqa: E721 (a pandas dtype comparison)
        if len({type(v) for v in df[c] if v is not None and not (isinstance(v, float) and math.isnan(v))}) > 1:
            df[c] = df[c].map(lambda v: v if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
    if "objective_value" in df.columns:
        ok = df["status"] == "ok"
        by = [c for c in ("zone", "year", "seed", "fleet_scale")]
        key = df[by].astype(str).agg("|".join, axis=1)
        obj = pd.to_numeric(df["objective_value"], errors="coerce")
        asap = obj[ok & (df["policy"] == "asap")].groupby(key[ok & (df["policy"] == "asap")]).first()
        orc = obj[ok & (df["policy"] == "oracle")].groupby(key[ok & (df["policy"] == "oracle")]).first()
        a = key.map(asap).astype(float)
        o = key.map(orc).astype(float)
        with pd.option_context("mode.chained_assignment", None):
            df["saving_vs_asap_frac"] = ((a - obj) / a).where(ok & (a != 0))
            gap = a - o
            df["oracle_capture_frac"] = ((a - obj) / gap).where(ok & (gap.abs() > 1e-12))
    return df
