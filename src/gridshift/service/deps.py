"""The routes' dependencies as ``Annotated`` types (``param: StoreDep``, ``_: Operator``): the store, the
shared state, the settings and the reconciler; the caller admitted by role (``TenantOrOperator``,
``Operator``, ``GridOrOperator``; authentication through :mod:`gridshift.service.auth`); and the path
parameters with their patterns. :func:`threaded` runs a route's blocking body in the thread pool."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi import Path as PathParam
from starlette.concurrency import run_in_threadpool

from gridshift.service.auth import require
from gridshift.service.schemas import JOB_ID_PATTERN, NAME_PATTERN, TOKEN_ID_PATTERN
from gridshift.service.settings import ApiSettings
from gridshift.service.state import ApiState
from gridshift.service.store import NotFound, Principal, Store


async def get_state(request: Request) -> ApiState:
    return request.app.state.api


async def get_store(request: Request) -> Store:
    return request.app.state.api.store


async def get_settings(request: Request) -> ApiSettings:
    return request.app.state.settings


async def get_reconciler(request: Request) -> Any:
    """The reconciler the app was built with, or None."""
    return request.app.state.reconciler


StateDep = Annotated[ApiState, Depends(get_state)]
StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
ReconcilerDep = Annotated[Any, Depends(get_reconciler)]

TenantOrOperator = Annotated[Principal, Depends(require("tenant", "operator"))]
Operator = Annotated[Principal, Depends(require("operator"))]
GridOrOperator = Annotated[Principal, Depends(require("grid", "operator"))]

JobId = Annotated[str, PathParam(pattern=JOB_ID_PATTERN, description="Job id: the service's UUID, or the id the "
                                 "job was submitted with (a tenant's own; for an operator, if one tenant uses it).")]
ServiceName = Annotated[str, PathParam(pattern=NAME_PATTERN, description="Service name.")]
EventId = Annotated[str, PathParam(pattern=NAME_PATTERN, description="Grid event id.")]
TokenId = Annotated[str, PathParam(pattern=TOKEN_ID_PATTERN, description="Token id (the part after 'gs_').")]


def live_reconciler(reconciler: Any) -> Any:
    """``reconciler`` if it can switch policies, else :class:`NotFound` (checked in the route, after the body)."""
    if reconciler is None or not callable(getattr(reconciler, "set_policy", None)):
        raise NotFound("no reconciler runs (start gridshift serve with --fleet)")
    return reconciler


def threaded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run a route's (blocking) body in the thread pool: one hop per request; the answer is serialised on
    the event loop."""
    @functools.wraps(fn)
    async def route(*args: Any, **kwargs: Any) -> Any:
        return await run_in_threadpool(fn, *args, **kwargs)

    return route
