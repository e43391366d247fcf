"""Modern-fleet job types (LLM pre-training, fine-tuning, batch inference) and their throughput table.

``fleet_jobs.yaml`` (packaged beside this module) defines each job type by its model (parameters, for
inference its KV-cache geometry and prompt/output lengths) and gang sizes, and the fleet's accelerator
types, a training MFU per accelerator (each cited, or marked ``assumed``) and the accelerators that do not
support a kind. :func:`build_fleet_table` turns that into a :class:`ThroughputTable` in tokens per second
(see the YAML header and docs/guide/heterogeneity.md for the formulas):

* training: ``gang x peak FLOP/s x MFU / (k x params)`` with k = 6 (full) or 4 (LoRA), 0 if the training
  state does not fit in the gang's memory or the accelerator does not train;
* batch inference: a memory/compute step-time model of continuous-batching decode, its single efficiency
  calibrated on one ML.ENERGY measurement per job type; measured ML.ENERGY points are used as measured.

:func:`load_fleet_jobs` reads the packaged (or a given) YAML; every problem is a one-line
:class:`~gridshift.errors.CatalogError` naming the file and the field. :func:`inference_checks` compares the
calibrated inference model with the measured points it was not calibrated on. The file names a measured
point's gang size ``gpus``; it is read as ``gang`` (:attr:`MeasuredPoint.gang`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gridshift.catalog.accelerators import load_yaml
from gridshift.catalog.throughput import ThroughputTable
from gridshift.errors import CatalogError
from gridshift.model.accelerator import AcceleratorType

__all__ = [
    "FLEET_RESOURCE",
    "FleetJob",
    "FleetSpec",
    "MeasuredPoint",
    "build_fleet_table",
    "inference_checks",
    "inference_step",
    "load_fleet_jobs",
    "parse_fleet_spec",
    "read_fleet_spec",
    "training_tokens_per_s",
]

FLEET_RESOURCE = "fleet_jobs.yaml"
SCHEMA_VERSION = 1
TRAINING_KINDS = ("pre-training", "fine-tuning")
KINDS = (*TRAINING_KINDS, "batch-inference")
BASES = ("published", "derived", "assumed")
#: Bytes per KV-cache element: BF16, the model dtype (vLLM's default ``kv_cache_dtype="auto"``).
KV_BYTES_PER_ELEMENT = 2

_TRAIN_FIELDS = ("params_b", "flop_per_token_per_param", "train_bytes_per_param")
_INFER_FIELDS = ("params_b", "layers", "kv_heads", "head_dim", "weight_bytes_per_param", "prompt_tokens",
                 "output_tokens", "max_batch")
_COMMON = ("kind", "description", "gang_sizes", "sources")


# --------------------------------------------------------------------------------------------- spec


@dataclass(frozen=True)
class MeasuredPoint:
    accelerator: str
    gang: int
    tokens_per_s: float
    power_w: float | None  # average power per accelerator, W
    source: str


@dataclass(frozen=True)
class FleetJob:
    """One job type of fleet_jobs.yaml (training fields or inference fields are None for the other kind)."""

    name: str
    kind: str
    description: str
    params_b: float
    gang_sizes: tuple[int, ...]
    sources: Mapping[str, str]
    flop_per_token_per_param: float | None = None
    train_bytes_per_param: float | None = None
    layers: int | None = None
    kv_heads: int | None = None
    head_dim: int | None = None
    weight_bytes_per_param: float | None = None
    prompt_tokens: float | None = None
    output_tokens: float | None = None
    max_batch: int | None = None
    calibrate_on: tuple[str, int] | None = None
    measured: tuple[MeasuredPoint, ...] = ()

    @property
    def params(self) -> float:
        return self.params_b * 1e9

    @property
    def kv_bytes_per_token(self) -> float:
        """K and V for every layer and KV head: 2 x layers x kv_heads x head_dim x bytes per element."""
        if self.layers is None:
            raise ValueError(f"{self.name} is not an inference job type")
        return 2.0 * self.layers * self.kv_heads * self.head_dim * KV_BYTES_PER_ELEMENT

    @property
    def work_unit(self) -> str:
        return "output token" if self.kind == "batch-inference" else "token"


@dataclass(frozen=True)
class FleetSpec:
    accelerators: tuple[str, ...]
    inference_memory_frac: float
    training_memory_frac: float
    training_mfu: Mapping[str, tuple[float, str, str]]  # accelerator -> (mfu, basis, source)
    unsupported: Mapping[str, tuple[frozenset[str], str]]  # accelerator -> (kinds, source)
    jobs: Mapping[str, FleetJob]
    assumption_sources: Mapping[str, str] = field(default_factory=dict)
    label: str = FLEET_RESOURCE


# --------------------------------------------------------------------------------------------- reading


class _V:
    """Validation helpers that raise one-line CatalogErrors naming the file and the field path."""

    def __init__(self, label: str) -> None:
        self.label = label

    def err(self, where: str, msg: str) -> CatalogError:
        return CatalogError(msg, file=self.label, field=where or None)

    def mapping(self, x: Any, where: str) -> dict:
        if not isinstance(x, dict):
            raise self.err(where, f"expected a mapping, got {type(x).__name__}")
        return x

    def keys(self, d: dict, where: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> None:
        missing = [k for k in required if k not in d]
        if missing:
            raise self.err(f"{where}.{missing[0]}" if where else missing[0],
                           f"missing required field(s) {', '.join(missing)}")
        unknown = sorted(str(k) for k in set(d) - set(required) - set(optional))
        if unknown:
            known = ", ".join((*required, *optional))
            raise self.err(f"{where}.{unknown[0]}" if where else unknown[0],
                           f"unknown field(s) {', '.join(unknown)}; expected {known}")

    def number(self, x: Any, where: str, *, lo: float = 0.0, hi: float = math.inf, lo_open: bool = True,
               integer: bool = False) -> float:
        if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
            raise self.err(where, f"expected a number, got {x!r}")
        if integer and int(x) != x:
            raise self.err(where, f"expected a whole number, got {x!r}")
        if (x <= lo if lo_open else x < lo) or x > hi:
            rng = f"{'>' if lo_open else '>='} {lo:g}" + (f" and <= {hi:g}" if math.isfinite(hi) else "")
            raise self.err(where, f"must be {rng}, got {x!r}")
        return int(x) if integer else float(x)

    def text(self, x: Any, where: str) -> str:
        if not isinstance(x, str) or not x.strip():
            raise self.err(where, f"expected non-empty text, got {x!r}")
        return " ".join(x.split())


def _acc_name(v: _V, name: Any, where: str, catalog: Mapping[str, AcceleratorType]) -> str:
    from gridshift.catalog.accelerators import get_accelerator

    if not isinstance(name, str):
        raise v.err(where, f"expected an accelerator name, got {name!r}")
    try:
        return get_accelerator(name, catalog).name
    except CatalogError as e:
        raise v.err(where, e.message) from None


def parse_fleet_spec(text: str, label: str = FLEET_RESOURCE,
                     catalog: Mapping[str, AcceleratorType] | None = None) -> FleetSpec:
    """Validate the YAML text of a fleet job file (no I/O besides the built-in catalog if none given)."""
    from gridshift.catalog.accelerators import load_catalog

    cat = load_catalog() if catalog is None else catalog
    v = _V(label)
    doc = v.mapping(load_yaml(text, label), "")
    v.keys(doc, "", ("accelerators", "assumptions", "training_mfu", "job_types"), ("version", "unsupported"))
    if doc.get("version", SCHEMA_VERSION) != SCHEMA_VERSION:
        raise v.err("version", f"unsupported version {doc.get('version')!r} (expected {SCHEMA_VERSION})")

    accs_raw = doc["accelerators"]
    if not isinstance(accs_raw, list) or not accs_raw:
        raise v.err("accelerators", "expected a non-empty list of accelerator names")
    accs = [_acc_name(v, a, f"accelerators[{i}]", cat) for i, a in enumerate(accs_raw)]
    if len(set(accs)) != len(accs):
        dup = next(a for a in accs if accs.count(a) > 1)
        raise v.err("accelerators", f"accelerator '{dup}' is listed twice")

    asm = v.mapping(doc["assumptions"], "assumptions")
    v.keys(asm, "assumptions", ("inference_memory_frac", "training_memory_frac"))
    asm_vals, asm_src = {}, {}
    for k in ("inference_memory_frac", "training_memory_frac"):
        d = v.mapping(asm[k], f"assumptions.{k}")
        v.keys(d, f"assumptions.{k}", ("value", "source"))
        asm_vals[k] = v.number(d["value"], f"assumptions.{k}.value", hi=1.0)
        asm_src[k] = v.text(d["source"], f"assumptions.{k}.source")

    mfu_raw = v.mapping(doc["training_mfu"], "training_mfu")
    mfu: dict[str, tuple[float, str, str]] = {}
    for key, d in mfu_raw.items():
        where = f"training_mfu.{key}"
        name = _acc_name(v, key, where, cat)
        d = v.mapping(d, where)
        v.keys(d, where, ("mfu", "basis", "source"))
        basis = d["basis"]
        if basis not in BASES:
            raise v.err(f"{where}.basis", f"expected one of {', '.join(BASES)}, got {basis!r}")
        mfu[name] = (v.number(d["mfu"], f"{where}.mfu", hi=1.0), basis, v.text(d["source"], f"{where}.source"))

    unsup: dict[str, tuple[frozenset[str], str]] = {}
    for key, d in v.mapping(doc.get("unsupported") or {}, "unsupported").items():
        where = f"unsupported.{key}"
        name = _acc_name(v, key, where, cat)
        d = v.mapping(d, where)
        v.keys(d, where, ("kinds", "source"))
        kinds = d["kinds"]
        if not isinstance(kinds, list) or not kinds or any(k not in KINDS for k in kinds):
            raise v.err(f"{where}.kinds", f"expected a list drawn from {', '.join(KINDS)}, got {kinds!r}")
        unsup[name] = (frozenset(kinds), v.text(d["source"], f"{where}.source"))

    jobs_raw = v.mapping(doc["job_types"], "job_types")
    if not jobs_raw:
        raise v.err("job_types", "expected at least one job type")
    jobs = {}
    for name, d in jobs_raw.items():
        if not isinstance(name, str) or not name.strip():
            raise v.err("job_types", f"job type names must be non-empty text, got {name!r}")
        jobs[name] = _parse_job(v, name, d, accs, cat)

    needs_mfu = [a for a in accs if a not in mfu
                 and any(j.kind not in unsup.get(a, (frozenset(), ""))[0] for j in jobs.values()
                         if j.kind in TRAINING_KINDS)]
    if needs_mfu:
        raise v.err(f"training_mfu.{needs_mfu[0]}",
                    f"no training MFU for accelerator '{needs_mfu[0]}' (add one, or list it under unsupported)")
    return FleetSpec(accelerators=tuple(accs), inference_memory_frac=asm_vals["inference_memory_frac"],
                     training_memory_frac=asm_vals["training_memory_frac"], training_mfu=mfu, unsupported=unsup,
                     jobs=jobs, assumption_sources=asm_src, label=label)


def _parse_job(v: _V, name: str, d: Any, accs: list[str], cat: Mapping[str, AcceleratorType]) -> FleetJob:
    where = f"job_types.{name}"
    d = v.mapping(d, where)
    kind = d.get("kind")
    if kind not in KINDS:
        raise v.err(f"{where}.kind", f"expected one of {', '.join(KINDS)}, got {kind!r}")
    if kind in TRAINING_KINDS:
        v.keys(d, where, (*_COMMON, *_TRAIN_FIELDS))
        figures = _TRAIN_FIELDS
    else:
        v.keys(d, where, (*_COMMON, *_INFER_FIELDS, "calibrate_on", "measured"))
        figures = _INFER_FIELDS
    desc = v.text(d["description"], f"{where}.description")
    gs = d["gang_sizes"]
    if not isinstance(gs, list) or not gs:
        raise v.err(f"{where}.gang_sizes", f"expected a non-empty list of positive whole numbers, got {gs!r}")
    sizes = [int(v.number(g, f"{where}.gang_sizes[{i}]", integer=True)) for i, g in enumerate(gs)]
    if len(set(sizes)) != len(sizes):
        raise v.err(f"{where}.gang_sizes", f"gang sizes repeat: {sizes}")
    src = v.mapping(d["sources"], f"{where}.sources")
    for k, s in src.items():
        if k not in figures:
            raise v.err(f"{where}.sources.{k}", f"cites unknown field '{k}'; cite one of {', '.join(figures)}")
        v.text(s, f"{where}.sources.{k}")
    uncited = [k for k in figures if k not in src]
    if uncited:
        raise v.err(f"{where}.sources.{uncited[0]}", f"no source for field(s) {', '.join(uncited)}")
    num = {k: v.number(d[k], f"{where}.{k}", integer=k in ("layers", "kv_heads", "head_dim", "max_batch"))
           for k in figures}
    common = {"name": name, "kind": kind, "description": desc, "gang_sizes": tuple(sorted(sizes)),
              "sources": {k: " ".join(s.split()) for k, s in src.items()}}
    if kind in TRAINING_KINDS:
        return FleetJob(**common, **num)
    measured = []
    raw = d["measured"]
    if not isinstance(raw, list) or not raw:
        raise v.err(f"{where}.measured", "expected a non-empty list of measured points")
    for i, m in enumerate(raw):
        w = f"{where}.measured[{i}]"
        m = v.mapping(m, w)
        v.keys(m, w, ("accelerator", "gpus", "tokens_per_s", "source"), ("power_w",))
        acc = _acc_name(v, m["accelerator"], f"{w}.accelerator", cat)
        if acc not in accs:
            raise v.err(f"{w}.accelerator", f"'{acc}' is not in the file's accelerators list")
        g = int(v.number(m["gpus"], f"{w}.gpus", integer=True))
        if g not in sizes:
            raise v.err(f"{w}.gpus", f"{g} is not one of the job's gang_sizes {sorted(sizes)}")
        if any(p.accelerator == acc and p.gang == g for p in measured):
            raise v.err(w, f"a second measured point for {acc} x {g}")
        pw = m.get("power_w")
        measured.append(MeasuredPoint(acc, g, v.number(m["tokens_per_s"], f"{w}.tokens_per_s"),
                                      None if pw is None else v.number(pw, f"{w}.power_w"),
                                      v.text(m["source"], f"{w}.source")))
    cal = v.mapping(d["calibrate_on"], f"{where}.calibrate_on")
    v.keys(cal, f"{where}.calibrate_on", ("accelerator", "gpus"))
    cal_acc = _acc_name(v, cal["accelerator"], f"{where}.calibrate_on.accelerator", cat)
    cal_g = int(v.number(cal["gpus"], f"{where}.calibrate_on.gpus", integer=True))
    if not any(p.accelerator == cal_acc and p.gang == cal_g for p in measured):
        raise v.err(f"{where}.calibrate_on", f"no measured point for {cal_acc} x {cal_g} to calibrate on")
    if num["weight_bytes_per_param"] > 8:
        raise v.err(f"{where}.weight_bytes_per_param", f"implausible: {num['weight_bytes_per_param']} bytes")
    return FleetJob(**common, **num, calibrate_on=(cal_acc, cal_g), measured=tuple(measured))


def read_fleet_spec(path: str | Path | None = None, catalog: Mapping[str, AcceleratorType] | None = None
                    ) -> FleetSpec:
    """Read and validate a fleet job file (default: the packaged ``fleet_jobs.yaml``)."""
    if path is None:
        res = resources.files("gridshift.catalog") / FLEET_RESOURCE
        label = str(res)
        try:
            text = res.read_text(encoding="utf-8")
        except OSError as exc:
            raise CatalogError(f"cannot read the packaged fleet job file: {exc}", file=label) from None
    else:
        p = Path(path)
        label = str(p)
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CatalogError(f"cannot read fleet job file: {getattr(exc, 'strerror', None) or exc}",
                               file=label) from None
    return parse_fleet_spec(text, label, catalog)


# --------------------------------------------------------------------------------------------- models


def training_tokens_per_s(job: FleetJob, acc: AcceleratorType, gang: int, mfu: float,
                          memory_frac: float) -> tuple[float, str | None]:
    """Training tokens/s of ``job`` on ``gang`` x ``acc`` at ``mfu``, or ``(0, reason)`` if the training
    state (train_bytes_per_param x params) does not fit in ``memory_frac`` of the gang's memory."""
    need_gb = job.train_bytes_per_param * job.params / 1e9
    have_gb = memory_frac * gang * acc.hbm_gb
    if need_gb > have_gb:
        return 0.0, (f"does not fit: training state {need_gb:,.0f} GB > {memory_frac:g} x {gang} x "
                     f"{acc.hbm_gb:g} GB = {have_gb:,.0f} GB")
    return gang * acc.peak_bf16_tflops * 1e12 * mfu / (job.flop_per_token_per_param * job.params), None


def inference_step(job: FleetJob, acc: AcceleratorType, gang: int, memory_frac: float
                   ) -> tuple[float, float] | tuple[None, str]:
    """``(batch, step_s at efficiency 1)`` of the decode model for ``job`` on ``gang`` x ``acc``; tokens/s
    at efficiency eta is ``batch x eta / step_s``. ``(None, reason)`` if one full-length sequence's KV cache
    does not fit beside the weights."""
    weights = job.params * job.weight_bytes_per_param
    usable = memory_frac * gang * acc.hbm_gb * 1e9
    kv_tok = job.kv_bytes_per_token
    one_seq = kv_tok * (job.prompt_tokens + job.output_tokens)
    if usable - weights < one_seq:
        return None, (f"does not fit: {weights / 1e9:,.0f} GB of weights + {one_seq / 1e9:.2f} GB KV for one "
                      f"sequence > {memory_frac:g} x {gang} x {acc.hbm_gb:g} GB")
    ctx = job.prompt_tokens + job.output_tokens / 2
    batch = min(float(job.max_batch), (usable - weights) / (kv_tok * ctx))
    mem_s = (weights + batch * kv_tok * ctx) / (gang * acc.hbm_tb_per_s * 1e12)
    flop_s = batch * 2 * job.params * (1 + job.prompt_tokens / job.output_tokens) / (gang * acc.peak_bf16_tflops * 1e12)
    return batch, mem_s + flop_s


def _calibrate(job: FleetJob, cat: Mapping[str, AcceleratorType], memory_frac: float) -> float:
    acc, g = job.calibrate_on
    point = next(p for p in job.measured if p.accelerator == acc and p.gang == g)
    batch, step = inference_step(job, cat[acc], g, memory_frac)
    if batch is None:
        raise CatalogError(f"job type '{job.name}': cannot calibrate on {acc} x {g}: {step}",
                           field=f"job_types.{job.name}.calibrate_on")
    return point.tokens_per_s * step / batch


def inference_entry(job: FleetJob, acc: AcceleratorType, gang: int, eta: float, cal: str,
                    memory_frac: float) -> dict[str, Any]:
    """Table fields (steps_per_s, measured, source, avg_power_w) for one inference cell.

    A measured point is used as is. Otherwise the decode model at ``gang``, with the efficiency
    calibrated on this type's own measured point nearest in gang size if it has one (else ``eta``,
    calibrated on ``cal``), and never less than running ``gang / d`` independent replicas of a smaller
    gang size ``d`` that divides ``gang`` (measured or modelled)."""
    point = next((p for p in job.measured if p.accelerator == acc.name and p.gang == gang), None)
    if point is not None:
        return {"steps_per_s": point.tokens_per_s, "measured": True, "source": f"measured: {point.source}",
                "avg_power_w": point.power_w}
    note = "; same efficiency assumed on this type"
    own = [p for p in job.measured if p.accelerator == acc.name]
    if own:
        near = min(own, key=lambda p: (abs(math.log(p.gang / gang)), p.gang))
        b0, s0 = inference_step(job, acc, near.gang, memory_frac)
        if b0 is not None:
            eta, cal, note = near.tokens_per_s * s0 / b0, f"{acc.name} x {near.gang}", ""
    batch, step = inference_step(job, acc, gang, memory_frac)
    if batch is None:
        best = (0.0, f"estimated: 0, {step}")
    else:
        best = (batch * eta / step, (f"estimated: decode model (batch {batch:,.0f}, efficiency {eta:.3f} "
                                     f"calibrated on measured {cal}{note})"))
    for d in job.gang_sizes:
        if d < gang and gang % d == 0:
            sub = inference_entry(job, acc, d, eta, cal, memory_frac)
            if sub["steps_per_s"] * (gang // d) > best[0]:
                best = (sub["steps_per_s"] * (gang // d),
                        f"estimated: {gang // d} independent replicas of {d} GPU(s), each {sub['source']}")
    return {"steps_per_s": best[0], "measured": False, "source": best[1]}


# --------------------------------------------------------------------------------------------- table


def build_fleet_table(spec: FleetSpec, catalog: Mapping[str, AcceleratorType] | None = None) -> ThroughputTable:
    """The fleet's :class:`ThroughputTable` (tokens per second) from a validated spec."""
    from gridshift.catalog.accelerators import load_catalog

    cat = load_catalog() if catalog is None else catalog
    accs = [cat[a] for a in spec.accelerators]
    recs: list[dict[str, Any]] = []
    etas: dict[str, float] = {}
    for job in spec.jobs.values():
        if job.kind == "batch-inference":
            eta = _calibrate(job, cat, spec.inference_memory_frac)
            etas[job.name] = eta
            cal = f"{job.calibrate_on[0]} x {job.calibrate_on[1]}"
        else:
            eta, cal = math.nan, ""
        for acc in accs:
            for g in job.gang_sizes:
                rec = {"job_type": job.name, "accelerator": acc.name, "gang": g, "measured": False}
                if job.kind in spec.unsupported.get(acc.name, (frozenset(), ""))[0]:
                    src = spec.unsupported[acc.name][1]
                    recs.append({**rec, "steps_per_s": 0.0, "source": f"not supported: {src}"})
                    continue
                if job.kind in TRAINING_KINDS:
                    mfu, basis, msrc = spec.training_mfu[acc.name]
                    val, why = training_tokens_per_s(job, acc, g, mfu, spec.training_memory_frac)
                    if why is not None:
                        src = f"estimated: 0, {why}"
                    else:
                        src = (f"estimated: {job.flop_per_token_per_param:g}N FLOP/token x {acc.peak_bf16_tflops:g} "
                               f"TFLOP/s x MFU {mfu:g} ({basis}: {msrc})")
                    recs.append({**rec, "steps_per_s": val, "source": src})
                    continue
                recs.append({**rec, **inference_entry(job, acc, g, eta, cal, spec.inference_memory_frac)})
    return ThroughputTable.from_records(
        recs, board_power_w={a.name: a.board_power_w for a in accs},
        host_power_w={a.name: a.host_power_w for a in accs},
        kinds={j.name: j.kind for j in spec.jobs.values()},
        work_units={j.name: j.work_unit for j in spec.jobs.values()},
        acc_types=[a.name for a in accs], job_types=list(spec.jobs),
        notes={"source": spec.label, "inference_efficiency": etas})


def load_fleet_jobs(path: str | Path | None = None, catalog: Mapping[str, AcceleratorType] | None = None
                    ) -> ThroughputTable:
    """Read ``fleet_jobs.yaml`` (the packaged one by default) and build its :class:`ThroughputTable`."""
    return build_fleet_table(read_fleet_spec(path, catalog), catalog)


def inference_checks(spec: FleetSpec | None = None, catalog: Mapping[str, AcceleratorType] | None = None
                     ) -> pd.DataFrame:
    """Calibrated decode model vs every measured point (the calibration point reproduces exactly; the others
    are out-of-sample checks). Columns: job_type, accelerator, gang, calibration (bool),
    measured_tokens_per_s, predicted_tokens_per_s, ratio (predicted / measured), batch."""
    from gridshift.catalog.accelerators import load_catalog

    cat = load_catalog() if catalog is None else catalog
    spec = read_fleet_spec(None, cat) if spec is None else spec
    rows = []
    for job in spec.jobs.values():
        if job.kind != "batch-inference":
            continue
        eta = _calibrate(job, cat, spec.inference_memory_frac)
        for p in job.measured:
            batch, step = inference_step(job, cat[p.accelerator], p.gang, spec.inference_memory_frac)
            pred = 0.0 if batch is None else batch * eta / step
            rows.append({"job_type": job.name, "accelerator": p.accelerator, "gang": p.gang,
                         "calibration": (p.accelerator, p.gang) == job.calibrate_on,
                         "measured_tokens_per_s": p.tokens_per_s, "predicted_tokens_per_s": pred,
                         "ratio": pred / p.tokens_per_s, "batch": np.nan if batch is None else batch,
                         "efficiency": eta})
    return pd.DataFrame(rows)
