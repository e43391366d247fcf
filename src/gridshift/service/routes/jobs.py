"""Batch jobs: submit, list, read (with history and plan) and cancel."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response

from gridshift.service.checks import check_cursor, check_known, check_text
from gridshift.service.commands import resolve_submission
from gridshift.service.deps import JobId, StateDep, StoreDep, TenantOrOperator, threaded
from gridshift.service.schemas import (
    API_PREFIX,
    CURSOR_PATTERN,
    JOB_ID_PATTERN,
    KEY_PATTERN,
    NAME_PATTERN,
    CancelRequest,
    JobEventOut,
    JobOut,
    JobOverview,
    JobPage,
    JobPlanOut,
    JobStatus,
    JobSubmit,
    PlanItemOut,
    error_responses,
)
from gridshift.service.state import notify
from gridshift.service.store import InvalidSpec

router = APIRouter(prefix=API_PREFIX, tags=["jobs"])


@router.post("/jobs", response_model=JobOut, status_code=201, summary="Submit a job",
             responses={200: {"model": JobOut, "description": "A job was already submitted with this "
                                                              "Idempotency-Key: the first one."},
                        201: {"description": "The job was queued."}, **error_responses(409)})
@threaded
def submit_job(
    request: Request,
    response: Response,
    body: JobSubmit,  # type: ignore[valid-type]
    store: StoreDep,
    state: StateDep,
    principal: TenantOrOperator,
    idempotency_key: Annotated[str | None, Header(
        alias="Idempotency-Key", pattern=KEY_PATTERN,
        description="Resubmitting with the same key returns the first job (200).")] = None,
) -> JobOut:
    spec = body.model_dump(mode="json", exclude_unset=True)
    check_text(spec)
    for name in spec.get("throughput") or {}:  # the planner cannot take a type the fleet lacks
        check_known(name, state.fleet.accelerators, f"throughput.{name}", "accelerator type")
    spec = resolve_submission(store, principal, spec)
    job, created = store.submit_job(principal, spec, idempotency_key)
    if created:
        notify(request.app, "job submitted")
    else:
        response.status_code = 200
    response.headers["Location"] = f"{API_PREFIX}/jobs/{job.id}"
    return JobOut.of(job)


@router.get("/jobs", response_model=JobPage, summary="List jobs (oldest first, paginated)",
            responses=error_responses())
@threaded
def list_jobs(
    store: StoreDep,
    principal: TenantOrOperator,
    status: Annotated[list[JobStatus] | None, Query(description="Only jobs in these statuses.")] = None,
    tenant: Annotated[str | None, Query(pattern=NAME_PATTERN, description="Only this tenant's jobs (a "
                                                                         "tenant token: only its own).")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(pattern=CURSOR_PATTERN)] = None,
) -> JobPage:
    check_cursor(cursor)
    rows, nxt = store.list_jobs(principal, status=status, limit=limit, cursor=cursor, tenant=tenant)
    return JobPage(items=[JobOut.of(j) for j in rows], next_cursor=nxt)


@router.get("/queue", response_model=JobOverview, summary="Jobs per status, the newest and the running ones",
            responses=error_responses())
@threaded
def queue(
    store: StoreDep,
    principal: TenantOrOperator,
    newest: Annotated[int, Query(ge=0, le=1000, description="How many of the newest jobs to list.")] = 25,
    active: Annotated[int, Query(ge=0, le=5000, description="At most this many running or paused jobs.")] = 500,
    ids: Annotated[list[str] | None, Query(max_length=100, description="Also these jobs (ids).")] = None,
) -> JobOverview:
    """Counted and limited in the database: as fast with 100,000 jobs as with ten (a tenant sees its own)."""
    for i, job_id in enumerate(ids or ()):
        if not re.match(JOB_ID_PATTERN, job_id):
            raise InvalidSpec("must be a job id", field=f"ids.{i}")
    counts, top, live, picked = store.job_overview(principal, newest=newest, active=active, ids=ids or ())
    running = counts["running"] + counts["paused"]
    return JobOverview(counts=counts, total=sum(counts.values()), newest=[JobOut.of(j) for j in top],
                       active=[JobOut.of(j) for j in live], active_truncated=running > len(live),
                       picked=[JobOut.of(j) for j in picked])


@router.get("/jobs/{job_id}", response_model=JobOut, summary="A job", responses=error_responses(404, 409))
@threaded
def get_job(job_id: JobId, store: StoreDep, principal: TenantOrOperator) -> JobOut:
    return JobOut.of(store.get_job(principal, job_id))


@router.get("/jobs/{job_id}/history", response_model=list[JobEventOut],
            summary="A job's status changes, oldest first", responses=error_responses(404, 409))
@threaded
def job_history(job_id: JobId, store: StoreDep, principal: TenantOrOperator) -> list[JobEventOut]:
    return [JobEventOut.of(e) for e in store.job_history(principal, job_id)]


@router.get("/jobs/{job_id}/plan", response_model=JobPlanOut,
            summary="Where and when the current plan puts a job, and why", responses=error_responses(404, 409))
@threaded
def job_plan(job_id: JobId, store: StoreDep, principal: TenantOrOperator) -> JobPlanOut:
    items = store.job_plan(principal, job_id)
    if job_id not in {i.job_id for i in items}:  # named by its client id, or not in the plan
        job_id = store.get_job(principal, job_id).id
    return JobPlanOut(job_id=job_id, items=[PlanItemOut.of(i) for i in items])


@router.post("/jobs/{job_id}/cancel", response_model=JobOut, summary="Cancel a job",
             responses=error_responses(404, 409))
@threaded
def cancel_job(request: Request, job_id: JobId, store: StoreDep, principal: TenantOrOperator,
               body: CancelRequest | None = None) -> JobOut:
    reason = (body or CancelRequest()).reason
    check_text(reason, "reason")
    before = store.get_job(principal, job_id)
    job = store.cancel_job(principal, job_id, reason)
    if before.status != job.status:
        notify(request.app, "job cancelled")
    return JobOut.of(job)
