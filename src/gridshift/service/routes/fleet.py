"""The fleet, read-only: sites, zones and accelerator pools, and the facility power per site."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter

from gridshift.service.deps import GridOrOperator, Operator, ReconcilerDep, StateDep, threaded
from gridshift.service.schemas import API_PREFIX, FleetOut, PowerOut, SiteOut, error_responses

router = APIRouter(prefix=API_PREFIX, tags=["fleet"])


@router.get("/fleet", response_model=FleetOut, summary="Sites, zones and accelerator pools",
            responses=error_responses())
@threaded
def get_fleet(state: StateDep, _: Operator) -> FleetOut:
    return state.fleet


@router.get("/sites", response_model=list[SiteOut], summary="Sites with their pools", responses=error_responses())
@threaded
def get_sites(state: StateDep, _: Operator) -> list[SiteOut]:
    return state.fleet.sites


@router.get("/power", response_model=PowerOut, summary="Aggregate facility power per site",
            responses=error_responses())
@threaded
def get_power(state: StateDep, reconciler: ReconcilerDep, _: GridOrOperator) -> PowerOut:
    sites, source = state.power(reconciler)
    return PowerOut(at=datetime.now(UTC), source=source, site_power_mw=sites,
                    total_power_mw=float(sum(sites.values())))
