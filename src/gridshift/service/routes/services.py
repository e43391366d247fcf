"""Inference services: list, read, create or replace, delete, and set replica targets."""

from __future__ import annotations

import contextlib

from fastapi import APIRouter, Request, Response

from gridshift.service.checks import check_text
from gridshift.service.deps import Operator, ServiceName, StoreDep, TenantOrOperator, threaded
from gridshift.service.schemas import API_PREFIX, ReplicasIn, ServiceIn, ServiceOut, error_responses
from gridshift.service.state import notify
from gridshift.service.store import InvalidSpec, NotFound

router = APIRouter(prefix=API_PREFIX, tags=["services"])


@router.get("/services", response_model=list[ServiceOut], summary="Inference services",
            responses=error_responses())
@threaded
def list_services(store: StoreDep, principal: TenantOrOperator) -> list[ServiceOut]:
    return [ServiceOut.of(s) for s in store.list_services(principal)]


@router.get("/services/{name}", response_model=ServiceOut, summary="An inference service",
            responses=error_responses(404))
@threaded
def get_service(name: ServiceName, store: StoreDep, principal: TenantOrOperator) -> ServiceOut:
    return ServiceOut.of(store.get_service(principal, name))


@router.put("/services/{name}", response_model=ServiceOut, summary="Create or replace an inference service",
            responses={201: {"model": ServiceOut, "description": "Created."}, **error_responses(409)})
@threaded
def put_service(request: Request, response: Response, name: ServiceName,
                body: ServiceIn,  # type: ignore[valid-type]
                store: StoreDep, principal: TenantOrOperator) -> ServiceOut:
    spec = body.model_dump(mode="json", exclude_unset=True)
    if spec.get("name") not in (None, name):
        raise InvalidSpec(f"body names service '{spec['name']}' but the path names '{name}'", field="name")
    spec["name"] = name
    if spec.get("tenant") is None:
        spec.pop("tenant", None)
    check_text(spec)
    if principal.role == "operator" and "tenant" not in spec:  # replacing a spec keeps its owner
        with contextlib.suppress(NotFound):
            spec["tenant"] = store.get_service(principal, name).tenant
    row = store.put_service(principal, spec)
    if row.version == 1:
        response.status_code = 201
    notify(request.app, "service changed")
    return ServiceOut.of(row)


@router.delete("/services/{name}", status_code=204, summary="Delete an inference service",
               responses=error_responses(404))
@threaded
def delete_service(request: Request, name: ServiceName, store: StoreDep, principal: TenantOrOperator) -> Response:
    if not store.delete_service(principal, name):
        raise NotFound(f"no service '{name}'")
    notify(request.app, "service deleted")
    return Response(status_code=204)


@router.put("/services/{name}/replicas", response_model=ServiceOut, summary="Set a service's replica targets",
            responses=error_responses(404, 409))
@threaded
def put_replicas(request: Request, name: ServiceName, body: ReplicasIn, store: StoreDep, _: Operator) -> ServiceOut:
    check_text(body.replica_targets, "replica_targets")
    row = store.set_replica_targets(name, body.replica_targets, expect_version=body.expect_version)
    notify(request.app, "replica targets changed")
    return ServiceOut.of(row)
