"""Policies by name. A scenario names policies as ``{name, label, params}``; later planners register here."""

from __future__ import annotations

import inspect

from gridshift.errors import PlanError, ScenarioError
from gridshift.model.scenario import Objective, PolicySpec
from gridshift.plan.asap import Asap
from gridshift.plan.base import Policy
from gridshift.plan.las import LeastAttainedService
from gridshift.plan.mpc import Mpc, Oracle
from gridshift.plan.nominal import Nominal
from gridshift.plan.per_job import PerJob
from gridshift.plan.threshold import Threshold

POLICIES: dict[str, type[Policy]] = {"asap": Asap, "threshold": Threshold, "mpc": Mpc, "oracle": Oracle,
                                     "las": LeastAttainedService, "nominal": Nominal, "per-job": PerJob}


def register(cls: type[Policy]) -> type[Policy]:
    """Class decorator: make a policy available to scenarios under ``cls.name``."""
    POLICIES[cls.name] = cls
    return cls


def make_policy(spec: PolicySpec, index: int = 0, objective: Objective | None = None) -> Policy:
    """Build the policy a scenario names; planners that take an ``objective`` get the scenario's unless
    their params set one."""
    field = f"policies[{index}]"
    cls = POLICIES.get(spec.name)
    if cls is None:
        raise ScenarioError(f"unknown policy '{spec.name}' (known: {', '.join(sorted(POLICIES))})",
                            field=f"{field}.name")
    known: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is Policy:
            continue
        known |= {n for n, p in inspect.signature(init).parameters.items()
                  if n != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    unknown = set(spec.params) - known
    if unknown:
        raise ScenarioError(f"unknown parameter(s) {sorted(unknown)} for policy '{spec.name}' "
                            f"(known: {sorted(known)})", field=f"{field}.params")
    params = dict(spec.params)
    if objective is not None and "objective" in known and "objective" not in params:
        params["objective"] = objective
    try:
        policy = cls(**params)
    except PlanError as e:
        raise ScenarioError(e.message, field=f"{field}.params") from e
    except (TypeError, ValueError) as e:
        raise ScenarioError(str(e), field=f"{field}.params") from e
    policy.label = spec.key
    return policy
