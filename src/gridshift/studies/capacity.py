"""Capacity arithmetic: what a demand needs, and what a power budget buys, per accelerator type.

Pure functions and frozen dataclasses (the only file read is the packaged ``capacity_assumptions.yaml``, by
:func:`load_assumptions`). Units are in the names: ``_w`` watts, ``_mw`` megawatts, ``_mwh`` megawatt-hours,
``_per_s`` per second, ``_per_day`` per day (86,400 s), ``_per_month`` per month (730 h = 8,760 h / 12),
``_per_yr`` per year (8,760 h), ``_frac`` a 0-1 fraction, ``_usd`` US dollars, ``carbon_g_per_kwh`` grams
CO2-eq per kWh, ``carbon_t`` tonnes CO2-eq. ``tokens`` are generated (output) tokens.

Forward (demand -> fleet), for one accelerator type serving a share of the demand:

* inference accelerators ``N_i = ceil(tokens_per_day * peak_to_mean / 86,400 / (tokens_per_s * u))``: the
  fleet serves the busiest window of the year at utilisation ``u`` of its measured maximum throughput;
* training accelerators ``N_t = ceil(F / (peak_bf16_flop_per_s * mfu * u * 2,628,000 s))``;
* provisioned IT power ``it_mw = N * (board_power_w + host_power_w) / 1e6`` (every accelerator at board
  power), facility power ``facility_mw = it_mw * pue``;
* average IT power per accelerator ``idle_w + (active_w - idle_w) * load_frac + host_w``, where
  ``active_w`` is the measured board draw while serving (or training) and ``load_frac`` the share of the
  fleet's maximum throughput the demand uses on average; ``annual_mwh = avg_facility_mw * 8,760``;
* ``carbon_t_per_yr = annual_mwh * carbon_g_per_kwh / 1,000``; cost per year = capex
  ``N * price_usd * (1 + server_capex_frac) / amortisation_years`` + ``annual_mwh * energy_price_usd_per_mwh``.

Inverse (budget -> capacity): ``N = floor(budget_w / (pue * (board_power_w + host_power_w)))`` for a
facility budget (without ``pue`` for an IT budget); ``tokens_per_day = N * tokens_per_s * u * 86,400 /
peak_to_mean`` and, alternatively, ``training_flop_per_month = N * peak_bf16_flop_per_s * mfu * u *
2,628,000``. Sizing a demand and then asking what its facility power buys gives back the same fleet.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from importlib import resources
from typing import Any, Literal

import numpy as np
import yaml

from gridshift.errors import GridShiftError

SECONDS_PER_DAY = 86_400.0
HOURS_PER_YEAR = 8_760.0
DAYS_PER_YEAR = HOURS_PER_YEAR / 24.0  # 365
SECONDS_PER_MONTH = HOURS_PER_YEAR / 12.0 * 3_600.0  # 730 h = 2,628,000 s

ASSUMPTIONS_RESOURCE = "capacity_assumptions.yaml"


class CapacityError(GridShiftError):
    """A capacity study input is invalid (negative, out of range, unknown name)."""


# ------------------------------------------------------------------------------------------ assumptions


@dataclass(frozen=True)
class Assumption:
    """One input value with where it comes from."""

    key: str
    value: Any
    unit: str
    source: str
    estimated: bool


@dataclass(frozen=True)
class ServingPoint:
    """A measured serving configuration, per accelerator (ML.ENERGY v3)."""

    tokens_per_s: float  # output tokens/s per accelerator
    gpu_power_w: float  # average board draw per accelerator
    num_gpus: int
    max_num_seqs: float
    median_itl_ms: float


@dataclass(frozen=True)
class ModelClass:
    name: str
    description: str
    mlenergy_model: str
    weights_gb: float
    weights_source: str
    measured: Mapping[str, ServingPoint]


@dataclass(frozen=True)
class Assumptions:
    """The parsed ``capacity_assumptions.yaml``."""

    defaults: Mapping[str, Assumption]
    itl_slo_ms: float
    itl_slo_source: str
    reference_accelerator: str
    scaling_source: str
    mlenergy_task: str
    model_classes: Mapping[str, ModelClass]
    prices: Mapping[str, Assumption]

    def default(self, key: str) -> Any:
        return self.defaults[key].value


def parse_assumptions(text: str, label: str = ASSUMPTIONS_RESOURCE) -> Assumptions:
    """Parse and check an assumptions document (the packaged file's schema)."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CapacityError(f"not valid YAML: {exc}", file=label) from None
    try:
        defaults = {}
        for key, d in doc["defaults"].items():
            _need_source(d, label, f"defaults.{key}")
            defaults[key] = Assumption(key, d["value"], str(d.get("unit", "")), str(d["source"]),
                                       bool(d.get("estimated", False)))
        s = doc["serving"]
        classes = {}
        for name, c in doc["model_classes"].items():
            measured = {gpu: ServingPoint(float(m["tokens_per_s"]), float(m["gpu_power_w"]), int(m["num_gpus"]),
                                          float(m["max_num_seqs"]), float(m["median_itl_ms"]))
                        for gpu, m in c["measured"].items()}
            classes[name] = ModelClass(name, str(c["description"]), str(c["mlenergy_model"]),
                                       float(c["weights_gb"]), str(c["weights_source"]), measured)
        prices = {}
        for acc, p in doc["accelerator_price_usd"].items():
            _need_source(p, label, f"accelerator_price_usd.{acc}")
            prices[acc] = Assumption(f"price_usd.{acc}", float(p["value"]), "USD per accelerator", str(p["source"]),
                                     bool(p.get("estimated", False)))
        return Assumptions(defaults, float(s["itl_slo_ms"]), str(s["itl_slo_source"]), str(s["reference_accelerator"]),
                           str(s["scaling_source"]), str(s["mlenergy_task"]), classes, prices)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CapacityError(f"malformed assumptions file: {type(exc).__name__} {exc}", file=label) from None


def _need_source(d: Any, label: str, where: str) -> None:
    if not isinstance(d, Mapping) or "value" not in d or not str(d.get("source", "")).strip():
        raise CapacityError("every assumption needs a value and a source", file=label, field=where)


@functools.lru_cache(maxsize=1)
def load_assumptions() -> Assumptions:
    """The packaged assumptions (``gridshift/studies/capacity_assumptions.yaml``), parsed once."""
    res = resources.files("gridshift.studies") / ASSUMPTIONS_RESOURCE
    return parse_assumptions(res.read_text(encoding="utf-8"), str(res))


def best_serving_point(frame, model: str, task: str, gpu: str, itl_slo_ms: float) -> ServingPoint | None:
    """The ML.ENERGY configuration with the most output tokens/s per GPU within a median-ITL bound.

    ``frame`` is :func:`gridshift.data.load_mlenergy`'s table. ``None`` if no configuration qualifies.
    """
    d = frame[(frame["model"] == model) & (frame["task"] == task) & (frame["gpu_model"] == gpu)
              & (frame["median_itl_ms"] <= itl_slo_ms) & frame["output_tokens_per_s"].notna()]
    if d.empty:
        return None
    per_gpu = d["output_tokens_per_s"] / d["num_gpus"]
    r = d.loc[per_gpu.idxmax()]
    n = int(r["num_gpus"])
    return ServingPoint(round(float(r["output_tokens_per_s"]) / n, 1), round(float(r["avg_power_w"]) / n, 1), n,
                        float(r["max_num_seqs"]), round(float(r["median_itl_ms"]), 1))


# ------------------------------------------------------------------------------------------ demand shape


@dataclass(frozen=True)
class TraceShape:
    """How a day of inference demand is shaped, from an (hour-long) request trace plus a weekly cycle."""

    trace: str
    requests: int
    duration_s: float
    mean_generated_tokens: float  # per request
    mean_context_tokens: float  # per request
    window_s: float
    burst_peak_to_mean: float  # busiest window / mean, generated tokens, within the trace
    diurnal_amplitude_frac: float
    weekend_factor: float

    @property
    def weekly_peak_to_mean(self) -> float:
        """Busiest hour of the week / mean of the week: ``(1 + A) * max(1, w) * 7 / (5 + 2 w)``."""
        w = self.weekend_factor
        return (1.0 + self.diurnal_amplitude_frac) * max(1.0, w) * 7.0 / (5.0 + 2.0 * w)

    @property
    def peak_to_mean(self) -> float:
        return self.burst_peak_to_mean * self.weekly_peak_to_mean


def trace_shape(trace: str, times_s: np.ndarray, generated_tokens: np.ndarray, context_tokens: np.ndarray, *,
                window_s: float, diurnal_amplitude_frac: float, weekend_factor: float) -> TraceShape:
    """Peak-to-mean of a trace's generated-token rate over full windows of ``window_s``, plus its token mix.

    ``times_s``: request arrival times in seconds (any origin). A trace shorter than two windows has a
    burst factor of 1.
    """
    t = np.asarray(times_s, dtype=float)
    g = np.asarray(generated_tokens, dtype=float)
    c = np.asarray(context_tokens, dtype=float)
    if t.size == 0:
        raise CapacityError(f"trace '{trace}' has no requests")
    if window_s <= 0:
        raise CapacityError("burst window must be positive", field="burst_window_min")
    if not 0 <= diurnal_amplitude_frac < 1 or weekend_factor <= 0:
        raise CapacityError("diurnal amplitude must be in [0, 1) and the weekend factor positive")
    t = t - t.min()
    n = int(t.max() // window_s)
    if n >= 2:
        per = np.bincount((t // window_s).astype(np.int64), weights=g, minlength=n)[:n]
        burst = float(per.max() / per.mean()) if per.mean() > 0 else 1.0
    else:
        burst = 1.0
    return TraceShape(trace, int(t.size), float(t.max()), float(g.mean()), float(c.mean()), float(window_s), burst,
                      float(diurnal_amplitude_frac), float(weekend_factor))


# ------------------------------------------------------------------------------------------ inputs


@dataclass(frozen=True)
class AcceleratorProfile:
    """Everything the arithmetic needs about one accelerator type for one model class."""

    name: str
    tokens_per_s: float  # maximum output tokens/s per accelerator within the latency bound
    inference_power_w: float  # board draw while serving at that point
    training_power_w: float  # board draw while training
    board_power_w: float
    idle_power_w: float
    host_power_w: float
    peak_bf16_flop_per_s: float
    price_usd: float
    hbm_gb: float = 0.0
    weights_gb: float = 0.0
    throughput_estimated: bool = False
    throughput_source: str = ""
    price_estimated: bool = False
    price_source: str = ""

    @property
    def provisioned_w(self) -> float:
        """All-in IT power an accelerator is provisioned for: board power plus its share of the host."""
        return self.board_power_w + self.host_power_w

    @property
    def min_accelerators_per_replica(self) -> int:
        """Accelerators whose HBM holds the model weights alone (a lower bound; KV cache needs more)."""
        return max(1, math.ceil(self.weights_gb / self.hbm_gb)) if self.hbm_gb > 0 else 1

    def check(self) -> None:
        for f in ("tokens_per_s", "inference_power_w", "training_power_w", "board_power_w", "idle_power_w",
                  "host_power_w", "peak_bf16_flop_per_s", "price_usd", "hbm_gb", "weights_gb"):
            v = getattr(self, f)
            if not math.isfinite(v) or v < 0:
                raise CapacityError(f"accelerator '{self.name}': {f} must be a non-negative number (got {v})",
                                    field=f)
        if self.board_power_w <= 0:
            raise CapacityError(f"accelerator '{self.name}': board power must be positive", field="board_power_w")


@dataclass(frozen=True)
class Params:
    """Planning parameters shared by all accelerator types."""

    utilisation_frac: float
    pue: float
    peak_to_mean: float
    mfu_frac: float
    carbon_g_per_kwh: float
    energy_price_usd_per_mwh: float
    amortisation_years: float
    server_capex_frac: float

    def check(self) -> None:
        _in_range("utilisation_frac", self.utilisation_frac, 0.0, 1.0, low_open=True)
        _in_range("mfu_frac", self.mfu_frac, 0.0, 1.0, low_open=True)
        _at_least("pue", self.pue, 1.0)
        _at_least("peak_to_mean", self.peak_to_mean, 1.0)
        _at_least("carbon_g_per_kwh", self.carbon_g_per_kwh, 0.0)
        _at_least("energy_price_usd_per_mwh", self.energy_price_usd_per_mwh, 0.0)
        _at_least("server_capex_frac", self.server_capex_frac, 0.0)
        _in_range("amortisation_years", self.amortisation_years, 0.0, math.inf, low_open=True)


@dataclass(frozen=True)
class Demand:
    tokens_per_day: float = 0.0  # generated tokens per day, averaged over a year
    training_flop_per_month: float = 0.0

    def check(self) -> None:
        _at_least("tokens_per_day", self.tokens_per_day, 0.0)
        _at_least("training_flop_per_month", self.training_flop_per_month, 0.0)
        if self.tokens_per_day == 0 and self.training_flop_per_month == 0:
            raise CapacityError("demand is zero: give tokens per day and/or training FLOP per month")


def _finite(name: str, v: float) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise CapacityError(f"{name} must be a finite number (got {v!r})", field=name)


def _at_least(name: str, v: float, lo: float) -> None:
    _finite(name, v)
    if v < lo:
        raise CapacityError(f"{name} must be at least {lo:g} (got {v:g})", field=name)


def _in_range(name: str, v: float, lo: float, hi: float, *, low_open: bool = False) -> None:
    _finite(name, v)
    if (v <= lo if low_open else v < lo) or v > hi:
        lo_s = f"above {lo:g}" if low_open else f"at least {lo:g}"
        hi_s = "" if math.isinf(hi) else f" and at most {hi:g}"
        raise CapacityError(f"{name} must be {lo_s}{hi_s} (got {v:g})", field=name)


def build_profile(acc, reference, assumptions: Assumptions, model_class: str, *,
                  training_board_power_frac: float | None = None) -> AcceleratorProfile:
    """Profile of catalog entry ``acc`` (an :class:`~gridshift.model.accelerator.AcceleratorType`).

    Measured serving throughput and power (ML.ENERGY) where the model class has them for ``acc``; otherwise
    the ``reference`` type's measurement scaled by HBM bandwidth, at the reference's board-power fraction.
    """
    mc = assumptions.model_classes.get(model_class)
    if mc is None:
        raise CapacityError(f"unknown model class '{model_class}'; known: {', '.join(assumptions.model_classes)}",
                            field="model_class")
    frac = assumptions.default("training_board_power_frac") if training_board_power_frac is None \
        else training_board_power_frac
    m = mc.measured.get(acc.name)
    if m is not None:
        tps, power_w, est = m.tokens_per_s, m.gpu_power_w, False
        src = (f"ML.ENERGY v3 measured: {mc.mlenergy_model}, {assumptions.mlenergy_task}, {m.num_gpus} x {acc.name}, "
               f"max_num_seqs {m.max_num_seqs:g}, median ITL {m.median_itl_ms:g} ms")
    else:
        ref = mc.measured.get(reference.name)
        if ref is None:
            raise CapacityError(f"model class '{model_class}' has no measurement on the reference "
                                f"'{reference.name}'", field="model_class")
        tps = ref.tokens_per_s * acc.hbm_tb_per_s / reference.hbm_tb_per_s
        power_w = min(acc.board_power_w, acc.board_power_w * ref.gpu_power_w / reference.board_power_w)
        est = True
        src = (f"ESTIMATE: {reference.name} measured {ref.tokens_per_s:g} tokens/s x HBM bandwidth ratio "
               f"{acc.hbm_tb_per_s:g}/{reference.hbm_tb_per_s:g} TB/s")
    price = assumptions.prices.get(acc.name)
    if price is None:
        raise CapacityError(f"no price assumption for accelerator '{acc.name}'", field="accelerators")
    prof = AcceleratorProfile(
        name=acc.name, tokens_per_s=float(tps), inference_power_w=float(power_w),
        training_power_w=float(acc.board_power_w * frac), board_power_w=float(acc.board_power_w),
        idle_power_w=float(acc.idle_power_w), host_power_w=float(acc.host_power_w),
        peak_bf16_flop_per_s=float(acc.peak_bf16_tflops) * 1e12, price_usd=float(price.value),
        hbm_gb=float(acc.hbm_gb), weights_gb=mc.weights_gb, throughput_estimated=est, throughput_source=src,
        price_estimated=price.estimated, price_source=price.source)
    prof.check()
    return prof


# ------------------------------------------------------------------------------------------ forward


_REL_TOL = 1e-12  # ratios within this of a whole number are that number (float noise, not demand)


def _ceil(x: float) -> int:
    return math.ceil(x * (1.0 - _REL_TOL))


def _floor(x: float) -> int:
    return math.floor(x * (1.0 + _REL_TOL))


def tokens_per_day_per_accelerator(p: AcceleratorProfile, params: Params) -> float:
    """Mean daily generated tokens one accelerator serves when the busiest window runs at ``u``."""
    return p.tokens_per_s * params.utilisation_frac * SECONDS_PER_DAY / params.peak_to_mean


def training_flop_per_month_per_accelerator(p: AcceleratorProfile, params: Params) -> float:
    return p.peak_bf16_flop_per_s * params.mfu_frac * params.utilisation_frac * SECONDS_PER_MONTH


def inference_accelerators(p: AcceleratorProfile, tokens_per_day: float, params: Params) -> int:
    if tokens_per_day <= 0:
        return 0
    per = tokens_per_day_per_accelerator(p, params)
    if per <= 0:
        raise CapacityError(f"accelerator '{p.name}' has no serving throughput", field="tokens_per_s")
    return _ceil(tokens_per_day / per)


def training_accelerators(p: AcceleratorProfile, flop_per_month: float, params: Params) -> int:
    if flop_per_month <= 0:
        return 0
    return _ceil(flop_per_month / training_flop_per_month_per_accelerator(p, params))


def average_power_w(idle_w: float, active_w: float, host_w: float, load_frac: float) -> float:
    """IT power of one accelerator and its host share at a load (0 idle .. 1 its maximum throughput)."""
    return idle_w + (active_w - idle_w) * min(max(load_frac, 0.0), 1.0) + host_w


@dataclass(frozen=True)
class Sizing:
    """A fleet of one accelerator type (or the total of a mix) and what it costs to run for a year."""

    accelerator: str
    tokens_per_day: float
    training_flop_per_month: float
    inference_accelerators: int
    training_accelerators: int
    accelerators: int
    it_mw: float  # provisioned: every accelerator at board power, plus host
    facility_mw: float  # it_mw x PUE: the grid connection to ask for
    avg_facility_mw: float
    annual_mwh: float
    carbon_t_per_yr: float
    capex_usd_per_yr: float
    energy_usd_per_yr: float
    cost_usd_per_yr: float
    inference_cost_usd_per_yr: float
    usd_per_million_tokens: float | None
    min_accelerators_per_replica: int | None = None
    throughput_estimated: bool = False
    price_estimated: bool = False

    def row(self) -> dict[str, Any]:
        return asdict(self)


SIZING_COLUMNS = tuple(f.name for f in fields(Sizing))


def _role_costs(p: AcceleratorProfile, n: int, active_w: float, load_frac: float, params: Params) -> dict[str, float]:
    it_w = n * p.provisioned_w
    avg_it_w = n * average_power_w(p.idle_power_w, active_w, p.host_power_w, load_frac)
    avg_fac_mw = avg_it_w * params.pue / 1e6
    mwh = avg_fac_mw * HOURS_PER_YEAR
    capex = n * p.price_usd * (1.0 + params.server_capex_frac) / params.amortisation_years
    energy = mwh * params.energy_price_usd_per_mwh
    return {"it_mw": it_w / 1e6, "avg_facility_mw": avg_fac_mw, "annual_mwh": mwh,
            "carbon_t_per_yr": mwh * params.carbon_g_per_kwh / 1000.0, "capex_usd_per_yr": capex,
            "energy_usd_per_yr": energy, "cost_usd_per_yr": capex + energy}


def size_for_demand(p: AcceleratorProfile, demand: Demand, params: Params) -> Sizing:
    """Fleet of type ``p`` that serves ``demand`` (both inference and training on this type)."""
    params.check()
    _at_least("tokens_per_day", demand.tokens_per_day, 0.0)
    _at_least("training_flop_per_month", demand.training_flop_per_month, 0.0)
    n_i = inference_accelerators(p, demand.tokens_per_day, params)
    n_t = training_accelerators(p, demand.training_flop_per_month, params)
    # load = demand's mean rate / the fleet's maximum rate (<= u / peak_to_mean because N is rounded up)
    load_i = demand.tokens_per_day / SECONDS_PER_DAY / (n_i * p.tokens_per_s) if n_i else 0.0
    load_t = (demand.training_flop_per_month / SECONDS_PER_MONTH / (n_t * p.peak_bf16_flop_per_s * params.mfu_frac)
              if n_t else 0.0)
    inf = _role_costs(p, n_i, p.inference_power_w, load_i, params)
    trn = _role_costs(p, n_t, p.training_power_w, load_t, params)
    tot = {k: inf[k] + trn[k] for k in inf}
    return Sizing(
        accelerator=p.name, tokens_per_day=float(demand.tokens_per_day),
        training_flop_per_month=float(demand.training_flop_per_month),
        inference_accelerators=n_i, training_accelerators=n_t, accelerators=n_i + n_t,
        it_mw=tot["it_mw"], facility_mw=tot["it_mw"] * params.pue, avg_facility_mw=tot["avg_facility_mw"],
        annual_mwh=tot["annual_mwh"], carbon_t_per_yr=tot["carbon_t_per_yr"],
        capex_usd_per_yr=tot["capex_usd_per_yr"], energy_usd_per_yr=tot["energy_usd_per_yr"],
        cost_usd_per_yr=tot["cost_usd_per_yr"], inference_cost_usd_per_yr=inf["cost_usd_per_yr"],
        usd_per_million_tokens=_per_mtok(inf["cost_usd_per_yr"], demand.tokens_per_day),
        min_accelerators_per_replica=p.min_accelerators_per_replica if n_i else None,
        throughput_estimated=p.throughput_estimated and n_i > 0, price_estimated=p.price_estimated)


def _per_mtok(cost_usd_per_yr: float, tokens_per_day: float) -> float | None:
    if tokens_per_day <= 0:
        return None
    return cost_usd_per_yr / (tokens_per_day * DAYS_PER_YEAR / 1e6)


# ------------------------------------------------------------------------------------------ mixes


@dataclass(frozen=True)
class MixPart:
    accelerator: str
    inference_share: float
    training_share: float


@dataclass(frozen=True)
class Mix:
    name: str
    parts: tuple[MixPart, ...]


def _parse_alloc(text: str, resolve: Callable[[str], str], spec: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in text.split("+"):
        item = item.strip()
        if not item:
            raise CapacityError(f"mix '{spec}': empty accelerator entry", field="mix")
        name, _, share = item.partition(":")
        acc = resolve(name.strip())
        try:
            w = float(share) if share.strip() else 1.0
        except ValueError:
            raise CapacityError(f"mix '{spec}': share '{share}' of {acc} is not a number", field="mix") from None
        if not math.isfinite(w) or w <= 0:
            raise CapacityError(f"mix '{spec}': share of {acc} must be positive (got {share})", field="mix")
        out[acc] = out.get(acc, 0.0) + w
    total = sum(out.values())
    return {k: v / total for k, v in out.items()}


def parse_mix(spec: str, resolve: Callable[[str], str]) -> Mix:
    """Parse a mix.

    ``H100:0.6,B200:0.4`` splits inference and training alike by share; ``inference=B200,training=Trainium2``
    assigns each workload to a type; ``inference=H100:1+B200:1,training=TPU-v5p`` combines both (``+``
    separates types within a workload; shares are normalised, a missing share counts 1). ``resolve`` maps
    a user-typed name to a canonical accelerator name (raising on unknown names).
    """
    s = spec.strip()
    if not s:
        raise CapacityError("empty mix", field="mix")
    roles: dict[str, dict[str, float]] = {}
    plain: list[str] = []
    for piece in s.split(","):
        piece = piece.strip()
        if "=" in piece:
            role, _, alloc = piece.partition("=")
            role = role.strip().lower()
            if role not in ("inference", "training"):
                raise CapacityError(f"mix '{spec}': unknown workload '{role}' (use inference= or training=)",
                                    field="mix")
            if role in roles:
                raise CapacityError(f"mix '{spec}': {role} given twice", field="mix")
            roles[role] = _parse_alloc(alloc, resolve, spec)
        else:
            plain.append(piece)
    if plain and roles:
        raise CapacityError(f"mix '{spec}': use either TYPE:SHARE,... or inference=...,training=..., not both",
                            field="mix")
    if plain:
        both = _parse_alloc("+".join(plain), resolve, spec)
        roles = {"inference": both, "training": both}
    names = list(dict.fromkeys([*roles.get("inference", {}), *roles.get("training", {})]))
    parts = tuple(MixPart(n, roles.get("inference", {}).get(n, 0.0), roles.get("training", {}).get(n, 0.0))
                  for n in names)
    return Mix(name=_mix_name(roles, bool(plain)), parts=parts)


def _mix_name(roles: Mapping[str, Mapping[str, float]], plain: bool) -> str:
    def alloc(a: Mapping[str, float]) -> str:
        return "+".join(n if math.isclose(w, 1.0) else f"{n}:{w:.2g}" for n, w in a.items())

    if plain:
        return alloc(roles["inference"])
    return ",".join(f"{r}={alloc(a)}" for r, a in roles.items())


@dataclass(frozen=True)
class MixResult:
    mix: Mix
    parts: tuple[Sizing, ...]
    total: Sizing


def size_mix(mix: Mix, profiles: Mapping[str, AcceleratorProfile], demand: Demand, params: Params) -> MixResult:
    """Size each part of ``mix`` for its shares of ``demand`` and add them up.

    A workload the mix assigns to no type (e.g. training in ``inference=B200``) is not served: its demand
    must be zero.
    """
    for role, need in (("inference", demand.tokens_per_day), ("training", demand.training_flop_per_month)):
        share = sum(getattr(pt, f"{role}_share") for pt in mix.parts)
        if need > 0 and share <= 0:
            raise CapacityError(f"{mix.name}: assigns no accelerator to the {role} demand", field="mix")
    parts = []
    for pt in mix.parts:
        sub = Demand(demand.tokens_per_day * pt.inference_share, demand.training_flop_per_month * pt.training_share)
        parts.append(size_for_demand(profiles[pt.accelerator], sub, params))
    return MixResult(mix, tuple(parts), _total(mix.name, parts, demand))


def _total(name: str, parts: list[Sizing], demand: Demand) -> Sizing:
    add = {k: sum(getattr(s, k) for s in parts) for k in (
        "inference_accelerators", "training_accelerators", "accelerators", "it_mw", "facility_mw",
        "avg_facility_mw", "annual_mwh", "carbon_t_per_yr", "capex_usd_per_yr", "energy_usd_per_yr",
        "cost_usd_per_yr", "inference_cost_usd_per_yr")}
    return Sizing(accelerator=name, tokens_per_day=float(demand.tokens_per_day),
                  training_flop_per_month=float(demand.training_flop_per_month), **add,
                  usd_per_million_tokens=_per_mtok(add["inference_cost_usd_per_yr"], demand.tokens_per_day),
                  min_accelerators_per_replica=None,
                  throughput_estimated=any(s.throughput_estimated for s in parts),
                  price_estimated=any(s.price_estimated for s in parts))


# ------------------------------------------------------------------------------------------ inverse


BudgetBasis = Literal["facility", "it"]


@dataclass(frozen=True)
class BudgetCapacity:
    """What a power budget buys of one accelerator type: the fleet, and what it delivers either as
    inference (tokens per day) or as training (FLOP per month)."""

    accelerator: str
    budget_mw: float
    basis: str  # "facility" (metered, includes PUE) or "it"
    accelerators: int
    all_in_w_per_accelerator: float  # provisioned IT power per accelerator (board + host)
    it_mw: float
    facility_mw: float
    tokens_per_s_per_accelerator: float
    tokens_per_day: float
    training_flop_per_month: float
    inference_annual_mwh: float
    inference_carbon_t_per_yr: float
    training_annual_mwh: float
    training_carbon_t_per_yr: float
    capex_usd_per_yr: float
    inference_cost_usd_per_yr: float
    training_cost_usd_per_yr: float
    usd_per_million_tokens: float | None
    min_accelerators_per_replica: int
    throughput_estimated: bool
    price_estimated: bool

    def row(self) -> dict[str, Any]:
        return asdict(self)


BUDGET_COLUMNS = tuple(f.name for f in fields(BudgetCapacity))


def accelerators_for_budget(p: AcceleratorProfile, budget_mw: float, params: Params,
                            basis: BudgetBasis = "facility") -> int:
    """``floor(budget_w / (pue * all-in W))`` for a facility budget, ``floor(budget_w / all-in W)`` for IT."""
    _at_least("budget_mw", budget_mw, 0.0)
    if basis not in ("facility", "it"):
        raise CapacityError(f"budget basis must be 'facility' or 'it' (got {basis!r})", field="budget_basis")
    per_w = p.provisioned_w * (params.pue if basis == "facility" else 1.0)
    return _floor(budget_mw * 1e6 / per_w)


def capacity_for_budget(p: AcceleratorProfile, budget_mw: float, params: Params,
                        basis: BudgetBasis = "facility") -> BudgetCapacity:
    """Accelerators of type ``p`` that fit a power budget, and their inference or training output."""
    params.check()
    n = accelerators_for_budget(p, budget_mw, params, basis)
    u = params.utilisation_frac
    inf = _role_costs(p, n, p.inference_power_w, u / params.peak_to_mean, params)
    trn = _role_costs(p, n, p.training_power_w, u, params)
    tokens = n * tokens_per_day_per_accelerator(p, params)
    it_mw = n * p.provisioned_w / 1e6
    return BudgetCapacity(
        accelerator=p.name, budget_mw=float(budget_mw), basis=basis, accelerators=n,
        all_in_w_per_accelerator=p.provisioned_w, it_mw=it_mw, facility_mw=it_mw * params.pue,
        tokens_per_s_per_accelerator=p.tokens_per_s, tokens_per_day=tokens,
        training_flop_per_month=n * training_flop_per_month_per_accelerator(p, params),
        inference_annual_mwh=inf["annual_mwh"], inference_carbon_t_per_yr=inf["carbon_t_per_yr"],
        training_annual_mwh=trn["annual_mwh"], training_carbon_t_per_yr=trn["carbon_t_per_yr"],
        capex_usd_per_yr=inf["capex_usd_per_yr"], inference_cost_usd_per_yr=inf["cost_usd_per_yr"],
        training_cost_usd_per_yr=trn["cost_usd_per_yr"], usd_per_million_tokens=_per_mtok(inf["cost_usd_per_yr"], tokens),
        min_accelerators_per_replica=p.min_accelerators_per_replica,
        throughput_estimated=p.throughput_estimated, price_estimated=p.price_estimated)


# ------------------------------------------------------------------------------------------ sensitivity


# input key -> label; every input is scaled by a factor (power_w scales board, idle, host and draw alike)
SENSITIVITY_INPUTS: dict[str, str] = {
    "pue": "PUE",
    "utilisation_frac": "utilisation",
    "tokens_per_s": "throughput per accelerator",
    "power_w": "power per accelerator",
    "peak_to_mean": "peak-to-mean of demand",
    "mfu_frac": "model FLOP utilisation",
    "carbon_g_per_kwh": "grid carbon intensity",
    "energy_price_usd_per_mwh": "electricity price",
    "price_usd": "accelerator price (capex)",
    "amortisation_years": "amortisation period",
}
_BOUNDS = {"pue": (1.0, math.inf), "utilisation_frac": (0.0, 1.0), "peak_to_mean": (1.0, math.inf),
           "mfu_frac": (0.0, 1.0)}
_POWER_FIELDS = ("inference_power_w", "training_power_w", "board_power_w", "idle_power_w", "host_power_w")


def perturb(profiles: Mapping[str, AcceleratorProfile], params: Params, key: str,
            factor: float) -> tuple[dict[str, AcceleratorProfile], Params, float]:
    """Scale input ``key`` by ``factor`` (in every profile, or in ``params``), clipped to its valid range.

    Returns the new profiles, params, and the factor actually applied (after clipping; for an accelerator
    input, the first profile's).
    """
    if key not in SENSITIVITY_INPUTS:
        raise CapacityError(f"unknown sensitivity input '{key}'", field="sensitivity")
    if key in ("tokens_per_s", "price_usd"):
        return ({n: replace(p, **{key: getattr(p, key) * factor}) for n, p in profiles.items()}, params, factor)
    if key == "power_w":
        return ({n: replace(p, **{f: getattr(p, f) * factor for f in _POWER_FIELDS}) for n, p in profiles.items()},
                params, factor)
    base = getattr(params, key)
    lo, hi = _BOUNDS.get(key, (0.0, math.inf))
    new = min(max(base * factor, lo), hi)
    return dict(profiles), replace(params, **{key: new}), (new / base if base else 1.0)


@dataclass(frozen=True)
class TornadoBar:
    input: str
    label: str
    output: str
    base: float
    low: float  # output with the input at its low value
    high: float  # output with the input at its high value
    low_factor: float  # applied factors (after clipping)
    high_factor: float

    @property
    def swing(self) -> float:
        return abs(self.high - self.low)


def tornado(evaluate: Callable[[Mapping[str, AcceleratorProfile], Params], Mapping[str, float]],
            profiles: Mapping[str, AcceleratorProfile], params: Params, frac: float,
            inputs: Iterable[str] = tuple(SENSITIVITY_INPUTS)) -> list[TornadoBar]:
    """Re-run ``evaluate`` with each input at ``1 - frac`` and ``1 + frac`` of its value.

    Returns one bar per (input, output) whose output moves, ordered by output, then by swing (largest first).
    """
    _in_range("sensitivity", frac, 0.0, 0.95, low_open=True)
    base = evaluate(profiles, params)
    bars: list[TornadoBar] = []
    for key in inputs:
        lp, lpar, lf = perturb(profiles, params, key, 1.0 - frac)
        hp, hpar, hf = perturb(profiles, params, key, 1.0 + frac)
        lo, hi = evaluate(lp, lpar), evaluate(hp, hpar)
        for out, b in base.items():
            if b is None or lo[out] is None or hi[out] is None:
                continue
            if math.isclose(lo[out], b, rel_tol=1e-12, abs_tol=0.0) and math.isclose(hi[out], b, rel_tol=1e-12,
                                                                                    abs_tol=0.0):
                continue
            bars.append(TornadoBar(key, SENSITIVITY_INPUTS[key], out, float(b), float(lo[out]), float(hi[out]),
                                   lf, hf))
    order = {o: i for i, o in enumerate(base)}
    bars.sort(key=lambda t: (order[t.output], -t.swing))
    return bars


DEMAND_OUTPUTS = ("accelerators", "facility_mw", "cost_usd_per_yr", "carbon_t_per_yr")
BUDGET_OUTPUTS = ("accelerators", "tokens_per_day", "training_flop_per_month", "usd_per_million_tokens")


def demand_evaluator(subject: str | Mix, demand: Demand) -> Callable[[Mapping[str, AcceleratorProfile], Params],
                                                                     dict[str, float]]:
    """``evaluate`` for :func:`tornado`: the main outputs of sizing one type or one mix for ``demand``."""

    def run(profiles: Mapping[str, AcceleratorProfile], params: Params) -> dict[str, float]:
        s = (size_mix(subject, profiles, demand, params).total if isinstance(subject, Mix)
             else size_for_demand(profiles[subject], demand, params))
        return {k: getattr(s, k) for k in DEMAND_OUTPUTS}

    return run


def budget_evaluator(subject: str, budget_mw: float, basis: BudgetBasis = "facility"):
    """``evaluate`` for :func:`tornado`: the main outputs of a power budget spent on one type."""

    def run(profiles: Mapping[str, AcceleratorProfile], params: Params) -> dict[str, float]:
        b = capacity_for_budget(profiles[subject], budget_mw, params, basis)
        return {k: getattr(b, k) for k in BUDGET_OUTPUTS}

    return run


# ------------------------------------------------------------------------------------------ names


def canonical_model_class(name: str, assumptions: Assumptions) -> str:
    key = re.sub(r"[^0-9a-z]", "", name.lower())
    for n in assumptions.model_classes:
        if re.sub(r"[^0-9a-z]", "", n.lower()) == key:
            return n
    raise CapacityError(f"unknown model class '{name}'; known: {', '.join(assumptions.model_classes)}",
                        field="model_class")
