"""The service's repository: every read and change of the persistent state goes through :class:`Store`.

Each method is one database transaction and returns plain frozen dataclasses, never ORM objects. Job access
is scoped by :class:`Principal`: a tenant sees and changes only its own jobs (another tenant's job is
reported as not found), an operator sees all, the grid role none.

Executor actions follow an intent protocol (``docs/service/service-state.md``): :meth:`Store.record_dispatch_intent`
changes the job and writes a ``pending`` dispatch row in one transaction, the caller then calls the executor
and :meth:`Store.complete_dispatch`. After a crash, :meth:`Store.pending_dispatches` lists the actions
whose outcome is unknown; each is checked against the executor's report, never re-issued blindly.

One module per aggregate (``tokens``, ``jobs``, ``dispatches``, ``signals``, ``grid_events``, ``services``,
``plans``, ``settings``); :class:`Store` (``facade``) combines them. This package face only re-exports.
"""

from gridshift.service.db import ConflictError, DatabaseUnavailable, StateError
from gridshift.service.store.base import (
    DISPATCHES,
    EVENTS,
    GRID_EVENTS,
    JOBS,
    PLAN_ITEMS,
    PLANS,
    SERVICES,
    SETTINGS,
    SIGNALS,
    TOKENS,
    IllegalTransition,
    InvalidSpec,
    NotFound,
    PermissionDenied,
    VersionConflict,
    utcnow,
)
from gridshift.service.store.dispatches import ACTION_FROM, ACTION_TARGET
from gridshift.service.store.facade import Store
from gridshift.service.store.jobs import (
    CLIENT_JOB_ID,
    DEFAULT_MAX_ATTEMPTS,
    MAX_LIST_LIMIT,
    TRANSITIONS,
    aware_utc,
    clean_job_spec,
    client_job_id,
)
from gridshift.service.store.rows import (
    Dispatch,
    GridEventRow,
    JobEvent,
    JobRow,
    Placement,
    Plan,
    PlanItem,
    Principal,
    ServiceRow,
    SignalPoint,
    TokenInfo,
)
from gridshift.service.store.tokens import TOKEN_PREFIX, hash_secret

__all__ = [
    "ACTION_FROM", "ACTION_TARGET", "CLIENT_JOB_ID", "DEFAULT_MAX_ATTEMPTS", "DISPATCHES", "EVENTS", "GRID_EVENTS",
    "JOBS", "MAX_LIST_LIMIT", "PLANS", "PLAN_ITEMS", "SERVICES", "SETTINGS", "SIGNALS", "TOKENS", "TOKEN_PREFIX",
    "TRANSITIONS", "ConflictError", "DatabaseUnavailable", "Dispatch", "GridEventRow", "IllegalTransition",
    "InvalidSpec", "JobEvent", "JobRow", "NotFound", "PermissionDenied", "Placement", "Plan", "PlanItem", "Principal",
    "ServiceRow", "SignalPoint", "StateError", "Store", "TokenInfo", "VersionConflict", "aware_utc", "clean_job_spec",
    "client_job_id", "hash_secret", "utcnow",
]
