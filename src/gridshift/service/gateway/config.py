"""The gateway's configuration: the backends file (sites, their grid zone, cloud region, power cap, data
residency and OpenAI-compatible backends), tenants (region, residency, quotas) and the routing weights per
SLO class. Read with :func:`load_gateway_config`; a bad file is one :class:`GridShiftError` line naming the
file and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gridshift.data.yaml_doc import read_yaml
from gridshift.errors import GridShiftError

SloClass = Literal["interactive", "offline"]
SLO_CLASSES: tuple[str, ...] = ("interactive", "offline")
SCORE_TERMS: tuple[str, ...] = ("carbon", "price", "headroom", "queue", "latency")


class BackendSpec(BaseModel):
    """One OpenAI-compatible endpoint (vLLM, SGLang, llama.cpp server, TGI, a provider)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    url: str = Field(pattern=r"^https?://", description="Base URL without /v1, e.g. http://10.0.0.5:8000.")
    accelerator: str = Field(min_length=1, description="Accelerator type (catalog name, or e.g. 'cpu').")
    accelerators: int = Field(default=1, ge=1, le=4096, description="Accelerators behind this endpoint.")
    models: list[str] = Field(default_factory=list, description="Models served (empty: read /v1/models).")
    joules_per_token: float | None = Field(default=None, gt=0, le=1e4, description="Energy per output token; "
                                           "default: the catalog's board power over its decode throughput.")
    api_key: str | None = Field(default=None, description="Bearer key the backend expects, if any.")
    max_running: int = Field(default=64, ge=1, le=100_000, description="Requests it runs at once (full load).")


class SiteSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    zone: str | None = Field(default=None, min_length=1, description="Grid zone (its carbon and price signals in "
                             "the store); from the fleet scenario's site of the same name if not given.")
    region: str | None = Field(default=None, description="Cloud region for the latency matrix (e.g. us-east4).")
    residency: str | None = Field(default=None, description="Data-residency area (e.g. 'eu').")
    power_cap_kw: float | None = Field(default=None, gt=0, description="Power the site may draw for inference.")
    carbon_g_per_kwh: float | None = Field(default=None, ge=0, description="Fallback when the store has no signal.")
    price_usd_per_mwh: float | None = Field(default=None, description="Fallback when the store has no signal.")
    shed_ramp_s: float = Field(default=300.0, ge=0, le=86_400, description="A grid event shedding an SLO class "
                               "takes its share of this site's requests from all to none over this many seconds "
                               "(0: at once), one class after the other (see SloSpec.shed_order); not given: from "
                               "the fleet site's ramp_mw_per_min and power_cap_kw where both are known, else 300.")
    backends: list[BackendSpec] = Field(default_factory=list)


class TenantSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    region: str | None = Field(default=None, description="Where the tenant's callers are (latency matrix).")
    residency: list[str] | None = Field(default=None, description="Areas its data may be processed in.")
    rate_per_s: float | None = Field(default=None, gt=0)
    burst: int | None = Field(default=None, ge=1)
    tokens_per_min: float | None = Field(default=None, gt=0)
    slo: SloClass | None = None


class SloSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ttft_ms: float | None = Field(default=None, gt=0, description="Time to first token the class must meet.")
    itl_ms: float | None = Field(default=None, gt=0, description="Inter-token latency the class must meet.")
    weights: dict[str, float] = Field(default_factory=dict)
    sheds_under: list[str] = Field(default_factory=list, description="Grid event kinds that shed this class.")
    shed_order: int = Field(default=0, ge=0, le=9, description="When a grid event sheds several classes, lower "
                            "orders ramp down first; order n ramps over the site's n-th shed_ramp_s.")

    @model_validator(mode="after")
    def _check(self) -> SloSpec:
        bad = sorted(set(self.weights) - set(SCORE_TERMS))
        if bad:
            raise ValueError(f"unknown weight '{bad[0]}' (known: {', '.join(SCORE_TERMS)})")
        if any(w < 0 for w in self.weights.values()):
            raise ValueError("weights must be >= 0")
        return self


DEFAULT_SLOS: dict[str, dict[str, Any]] = {
    "interactive": {"ttft_ms": 2000.0, "itl_ms": 200.0, "sheds_under": ["emergency"], "shed_order": 1,
                    "weights": {"carbon": 0.5, "price": 0.2, "headroom": 0.1, "queue": 0.1, "latency": 0.1}},
    "offline": {"ttft_ms": None, "itl_ms": None, "sheds_under": ["limit", "emergency", "price", "carbon"], "shed_order": 0,
                "weights": {"carbon": 0.6, "price": 0.3, "headroom": 0.1, "queue": 0.0, "latency": 0.0}},
}


class GatewayConfig(BaseModel):
    """The whole backends file."""

    model_config = ConfigDict(extra="forbid")

    sites: list[SiteSpec] = Field(default_factory=list)
    tenants: dict[str, TenantSpec] = Field(default_factory=dict)
    slo: dict[str, SloSpec] = Field(default_factory=dict)
    default_region: str | None = None
    request_timeout_s: float = Field(default=120.0, gt=0, le=3600)
    first_byte_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    stream_idle_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    health_interval_s: float = Field(default=5.0, gt=0, le=3600)
    max_attempts: int = Field(default=3, ge=1, le=10)
    cooldown_s: float = Field(default=5.0, gt=0, le=3600, description="A failed backend rests this long.")
    latency_ms: dict[str, dict[str, float]] | None = Field(
        default=None, description="Round-trip ms from caller region to site region, instead of the shared matrix.")

    @model_validator(mode="after")
    def _check(self) -> GatewayConfig:
        names = [s.name for s in self.sites]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"site '{sorted(dup)[0]}' appears twice")
        ids = [b.id for s in self.sites for b in s.backends]
        dup = {n for n in ids if ids.count(n) > 1}
        if dup:
            raise ValueError(f"backend id '{sorted(dup)[0]}' appears twice")
        bad = sorted(set(self.slo) - set(SLO_CLASSES))
        if bad:
            raise ValueError(f"unknown SLO class '{bad[0]}' (known: {', '.join(SLO_CLASSES)})")
        merged = {}
        for name in SLO_CLASSES:
            base = dict(DEFAULT_SLOS[name])
            given = self.slo.get(name)
            if given is not None:
                over = given.model_dump(exclude_unset=True)
                if "weights" in over:
                    over["weights"] = {**{t: 0.0 for t in SCORE_TERMS}, **over["weights"]}
                base.update(over)
            merged[name] = SloSpec.model_validate(base)
        self.slo = merged
        return self


def with_fleet(config: GatewayConfig, sites: list[Any], label: str = "fleet") -> GatewayConfig:
    """Fill each site's zone, region and power cap from the fleet scenario's site of the same name (what the
    backends file gives wins), and its shedding ramp from the site's ramp limit: ``shed_ramp_s`` = the time the
    site's inference power (``power_cap_kw``) takes to go to zero at ``ramp_mw_per_min`` (each class sheds at
    most that power, so no class's ramp is steeper than the limit). A site with no zone either way is an error
    naming it."""
    by_name = {s.name: s for s in sites}
    for i, spec in enumerate(config.sites):
        fleet_site = by_name.get(spec.name)
        if fleet_site is not None:
            spec.zone = spec.zone or fleet_site.zone
            spec.region = spec.region or getattr(fleet_site, "region", None)
            cap = getattr(fleet_site, "power_cap_mw", None)
            if spec.power_cap_kw is None and isinstance(cap, int | float):
                spec.power_cap_kw = 1000.0 * float(cap)
            ramp = getattr(fleet_site, "ramp_mw_per_min", None)
            if "shed_ramp_s" not in spec.model_fields_set and isinstance(ramp, int | float) and spec.power_cap_kw:
                spec.shed_ramp_s = min(86_400.0, 60.0 * spec.power_cap_kw / (1000.0 * float(ramp)))
        if spec.zone is None:
            raise GridShiftError(f"site '{spec.name}' has no zone (give one, or a --fleet scenario with this site)",
                                 file=label, field=f"sites.{i}.zone")
    return config


def _field(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "file"


def parse_gateway_config(doc: Any, label: str = "gateway config") -> GatewayConfig:
    """Validate a parsed document; errors name ``label`` and the field."""
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise GridShiftError("expected a mapping with 'sites' (and optionally 'tenants', 'slo')", file=label)
    try:
        return GatewayConfig.model_validate(doc)
    except ValidationError as e:
        first = e.errors()[0]
        raise GridShiftError(first["msg"], file=label, field=_field(first["loc"])) from None


def load_gateway_config(path: str | Path | None) -> GatewayConfig:
    """Read the backends file (YAML); None gives an empty configuration (backends added through the API)."""
    if path is None:
        return parse_gateway_config({})
    return parse_gateway_config(read_yaml(path, "backends file"), str(path))


def check_zones(config: GatewayConfig, label: str) -> GatewayConfig:
    """Every site has a zone (without a fleet scenario to take it from)."""
    return with_fleet(config, [], label)
