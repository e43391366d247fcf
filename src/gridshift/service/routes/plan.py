"""The current plan, and the reconciler's planning policy (read and switched at run time)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter
from fastapi.encoders import jsonable_encoder

from gridshift.errors import GridShiftError
from gridshift.model.scenario import PolicySpec
from gridshift.service.deps import Operator, ReconcilerDep, StoreDep, live_reconciler, threaded
from gridshift.service.reconciler.policies import LIVE_POLICIES
from gridshift.service.schemas import API_PREFIX, PlanOut, PolicyIn, PolicyOut, error_responses
from gridshift.service.store import InvalidSpec, NotFound

log = logging.getLogger("gridshift.api")

router = APIRouter(prefix=API_PREFIX, tags=["plan"])


@router.get("/plan", response_model=PlanOut, summary="The current plan, with why per job",
            responses=error_responses(404))
@threaded
def get_plan(store: StoreDep, _: Operator) -> PlanOut:
    plan = store.current_plan()
    if plan is None:
        raise NotFound("no plan has been made yet")
    return PlanOut.of(plan)


def policy_out(rec: Any) -> PolicyOut:
    spec = rec.policy_spec
    return PolicyOut(name=spec.name, label=spec.key, params=jsonable_encoder(spec.params),
                     available=list(LIVE_POLICIES))


@router.get("/policy", response_model=PolicyOut, summary="The reconciler's planning policy",
            responses=error_responses(404))
@threaded
def get_policy(reconciler: ReconcilerDep, _: Operator) -> PolicyOut:
    return policy_out(live_reconciler(reconciler))


@router.put("/policy", response_model=PolicyOut,
            summary="Switch the planning policy (the next pass plans afresh with it)", responses=error_responses(404))
@threaded
def put_policy(body: PolicyIn, reconciler: ReconcilerDep, p: Operator) -> PolicyOut:
    rec = live_reconciler(reconciler)
    try:
        rec.set_policy(PolicySpec(name=body.name, label=body.label, params=body.params), actor=f"token {p.token_id}")
    except GridShiftError:
        raise
    except Exception as exc:  # noqa: BLE001 (a policy's own checks may raise anything on odd parameters)
        raise InvalidSpec(f"policy '{body.name}' rejected its parameters: {exc}", field="params") from exc
    log.info("policy set to %s by token %s", rec.policy_spec.key, p.token_id)
    return policy_out(rec)
