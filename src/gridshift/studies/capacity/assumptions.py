"""The capacity study's assumptions: the packaged ``capacity_assumptions.yaml`` (every value with its
source), measured serving points per model class, and model-class names.

The only file read is the packaged YAML, by :func:`load_assumptions`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from gridshift.studies.capacity.common import CapacityError

ASSUMPTIONS_RESOURCE = "capacity_assumptions.yaml"


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


def canonical_model_class(name: str, assumptions: Assumptions) -> str:
    key = re.sub(r"[^0-9a-z]", "", name.lower())
    for n in assumptions.model_classes:
        if re.sub(r"[^0-9a-z]", "", n.lower()) == key:
            return n
    raise CapacityError(f"unknown model class '{name}'; known: {', '.join(assumptions.model_classes)}",
                        field="model_class")
