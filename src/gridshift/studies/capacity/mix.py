"""Mixes of accelerator types: parsing a mix, and sizing each of its parts for its share of a demand."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from gridshift.studies.capacity.common import CapacityError
from gridshift.studies.capacity.demand import Demand
from gridshift.studies.capacity.profile import AcceleratorProfile, Params
from gridshift.studies.capacity.sizing import Sizing, size_for_demand, usd_per_million_tokens_of


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
                  usd_per_million_tokens=usd_per_million_tokens_of(add["inference_cost_usd_per_yr"], demand.tokens_per_day),
                  min_accelerators_per_replica=None,
                  throughput_estimated=any(s.throughput_estimated for s in parts),
                  price_estimated=any(s.price_estimated for s in parts))
