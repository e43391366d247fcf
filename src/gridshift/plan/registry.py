"""Policies by name. A scenario names policies as ``{name, label, params}``; later planners register here."""

from __future__ import annotations

import inspect

from gridshift.errors import PlanError, ScenarioError
from gridshift.model.scenario import PolicySpec
from gridshift.plan.asap import Asap
from gridshift.plan.base import Policy
from gridshift.plan.threshold import Threshold

POLICIES: dict[str, type[Policy]] = {"asap": Asap, "threshold": Threshold}


def register(cls: type[Policy]) -> type[Policy]:
    """Class decorator: make a policy available to scenarios under ``cls.name``."""
    POLICIES[cls.name] = cls
    return cls


def make_policy(spec: PolicySpec, index: int = 0) -> Policy:
    field = f"policies[{index}]"
    cls = POLICIES.get(spec.name)
    if cls is None:
        raise ScenarioError(f"unknown policy '{spec.name}' (known: {', '.join(sorted(POLICIES))})",
                            field=f"{field}.name")
    sig = inspect.signature(cls.__init__)
    known = {n for n, p in sig.parameters.items() if n != "self" and p.kind != p.VAR_KEYWORD}
    unknown = set(spec.params) - known if not any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()) \
        else set()
    if unknown:
        raise ScenarioError(f"unknown parameter(s) {sorted(unknown)} for policy '{spec.name}' "
                            f"(known: {sorted(known)})", field=f"{field}.params")
    try:
        policy = cls(**spec.params)
    except PlanError as e:
        raise ScenarioError(e.message, field=f"{field}.params") from e
    except (TypeError, ValueError) as e:
        raise ScenarioError(str(e), field=f"{field}.params") from e
    policy.label = spec.key
    return policy
