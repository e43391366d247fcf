"""Which planning policies the live service can run, and the check of a policy before it is used."""

from __future__ import annotations

from typing import Any

from gridshift.errors import ScenarioError
from gridshift.model.scenario import PolicySpec
from gridshift.plan.registry import make_policy

LIVE_POLICIES = ("asap", "threshold", "mpc")  # policies that plan from what is known now (not `oracle`)


def check_live_policy(spec: PolicySpec, objective: Any = None, *, name_field: str = "name") -> PolicySpec:
    """``spec`` if a live fleet can be planned with it; else ``ScenarioError`` naming the field."""
    if spec.name not in LIVE_POLICIES:
        raise ScenarioError(f"policy '{spec.name}' cannot plan a live fleet (it needs the future); use one of "
                            f"{', '.join(LIVE_POLICIES)}", field=name_field)
    make_policy(spec, 0, objective=objective)
    return spec
