"""Operator settings: whether tenants may submit free-form commands, and the job templates they may name."""

from __future__ import annotations

import logging

from fastapi import APIRouter

from gridshift.service.commands import job_templates, put_job_templates, put_tenant_commands, tenant_commands
from gridshift.service.deps import Operator, StoreDep, TenantOrOperator, threaded
from gridshift.service.schemas import (
    API_PREFIX,
    JobTemplatesIn,
    JobTemplatesOut,
    TenantCommandsIn,
    TenantCommandsOut,
    error_responses,
)

router = APIRouter(prefix=API_PREFIX, tags=["settings"])
log = logging.getLogger("gridshift.api")


@router.get("/settings/tenant-commands", response_model=TenantCommandsOut,
            summary="Whether tenants may submit free-form commands", responses=error_responses())
@threaded
def get_tenant_commands(store: StoreDep, _: TenantOrOperator) -> TenantCommandsOut:
    return TenantCommandsOut(mode=tenant_commands(store))


@router.put("/settings/tenant-commands", response_model=TenantCommandsOut,
            summary="Allow tenants free-form commands, or only job templates", responses=error_responses())
@threaded
def set_tenant_commands(body: TenantCommandsIn, store: StoreDep, p: Operator) -> TenantCommandsOut:
    mode = put_tenant_commands(store, body.mode, actor=f"token {p.token_id}")
    log.info("tenant_commands set to %s by token %s", mode, p.token_id)
    return TenantCommandsOut(mode=mode)


@router.get("/settings/job-templates", response_model=JobTemplatesOut, summary="The job templates",
            responses=error_responses())
@threaded
def get_job_templates(store: StoreDep, _: TenantOrOperator) -> JobTemplatesOut:
    return JobTemplatesOut(templates=job_templates(store))


@router.put("/settings/job-templates", response_model=JobTemplatesOut,
            summary="Replace the job templates (name -> argv list)", responses=error_responses())
@threaded
def set_job_templates(body: JobTemplatesIn, store: StoreDep, p: Operator) -> JobTemplatesOut:
    templates = put_job_templates(store, body.templates, actor=f"token {p.token_id}")
    log.info("job templates set (%d) by token %s", len(templates), p.token_id)
    return JobTemplatesOut(templates=templates)
