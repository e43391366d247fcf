"""Executor actions as intents: the job change and a ``pending`` dispatch row in one transaction before the
executor is called, then the executor's answer (``docs/service/service-state.md``); cancelling a running job is one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, insert, select, update

from gridshift.service.db import ConflictError
from gridshift.service.store.base import DISPATCHES, IllegalTransition, InvalidSpec, NotFound, utcnow
from gridshift.service.store.jobs import JobStore
from gridshift.service.store.rows import (
    Dispatch,
    JobRow,
    Placement,
    Principal,
    _dispatch,
    _placement_values,
    _transition_values,
)
from gridshift.service.tables import DISPATCH_ACTIONS, JOB_STATUSES

# Status a job must move to with each executor action (None: the action leaves the status as it is).
ACTION_TARGET: dict[str, str | None] = {"start": "running", "resume": "running", "pause": "paused",
                                        "set_power_cap": None}
# Statuses a job must be in for the action.
ACTION_FROM: dict[str, frozenset[str]] = {
    "start": frozenset({"queued", "planned"}),
    "resume": frozenset({"paused"}),
    "pause": frozenset({"running"}),
    "stop": frozenset(JOB_STATUSES),
    "set_power_cap": frozenset({"planned", "running", "paused"}),
}


class DispatchStore(JobStore):
    """The intent log of executor actions, and the job changes that write an intent."""

    def cancel_job(self, principal: Principal, job_id: str, reason: str = "cancelled") -> JobRow:
        """Cancel a job. A running or paused job also gets a pending ``stop`` dispatch, in the same
        transaction, for the reconciler to carry out. Cancelling a cancelled job returns it unchanged."""
        with self._tx() as conn:
            job = self._select_job(conn, principal, job_id, lock=True)
            if job.status == "cancelled":
                return job
            was_active = job.status in ("running", "paused")
            job = self._change(conn, job, "cancelled", reason, actor=principal.token_id)
            if was_active:
                self._insert_dispatch(conn, job, "stop", {"reason": reason})
            return job

    def quarantine_job(self, job_id: str, reason: str) -> JobRow | None:
        """Fail a job the planner cannot take, with ``reason`` (``failure_reason`` starts with
        ``quarantined:``); a running or paused job also gets a pending ``stop`` dispatch, in the same
        transaction. None if the job is gone or already final."""
        reason = "quarantined: " + " ".join(str(reason).split())[:1000]
        with self._tx() as conn:
            try:
                job = self._select_job(conn, Principal.system(), job_id, lock=True, by_client_id=False)
            except NotFound:
                return None
            if job.terminal:
                return None
            was_active = job.status in ("running", "paused")
            job = self._change(conn, job, "failed", reason, actor=None, check=False,
                               detail={"quarantined": True},
                               values={"next_attempt_at": None, "failure_reason": reason})
            if was_active:
                self._insert_dispatch(conn, job, "stop", {"reason": reason})
            return job

    def _insert_dispatch(self, conn: Connection, job: JobRow, action: str, args: dict[str, Any] | None) -> Dispatch:
        values = {"job_id": job.id, "action": action, "attempt": job.attempts, "job_version": job.version,
                  "args": args, "state": "pending", "created_at": utcnow(), "completed_at": None,
                  "executor_ref": None, "error": None}
        new_id = conn.execute(insert(DISPATCHES).returning(DISPATCHES.c.id), values).scalar_one()
        return _dispatch({**values, "id": new_id})

    def record_dispatch_intent(self, job_id: str, action: str, *, expect_version: int | None,
                               to_status: str | None = None, reason: str | None = None,
                               placement: Placement | Mapping[str, Any] | None = None,
                               args: dict[str, Any] | None = None, actor: str | None = None) -> tuple[JobRow, Dispatch]:
        """Change the job for an executor action and log the action as ``pending``, in one transaction,
        before the executor is called. Returns (job after the change, dispatch).

        start moves the job to running (``placement`` says where, unless planned) and opens a new attempt
        (``attempts`` + 1); resume moves it to running, pause to paused; stop may move it to ``to_status``
        or leave the status; set_power_cap needs ``args={"power_cap_frac": x}``. Every intent bumps the job
        version, and (job, version) is unique, so a stale or repeated call raises :class:`VersionConflict`
        instead of logging the action twice.
        """
        if action not in DISPATCH_ACTIONS:
            raise InvalidSpec(f"unknown action '{action}' (expected one of {', '.join(DISPATCH_ACTIONS)})",
                              field="action")
        target = ACTION_TARGET.get(action, to_status)
        if action in ACTION_TARGET and to_status not in (None, target):
            raise InvalidSpec(f"action {action} moves a job to {target or 'the same status'}, not {to_status}",
                              field="to_status")
        args = dict(args or {})
        with self._tx() as conn:
            job = self._locked(conn, job_id, expect_version)
            if job.status not in ACTION_FROM[action]:
                raise IllegalTransition(f"job '{job_id}' is {job.status}: cannot {action.replace('_', ' ')}")
            values: dict[str, Any] = {}
            if action == "set_power_cap":
                cap = args.get("power_cap_frac")
                if not isinstance(cap, (int, float)) or not (0 < cap <= 1):
                    raise InvalidSpec("set_power_cap needs args power_cap_frac in (0, 1]", field="power_cap_frac")
                values["power_cap_frac"] = float(cap)
            status = target or job.status
            if target is not None:
                values.update(_transition_values(target, placement))
            elif placement is not None:
                values.update(_placement_values(placement))
            if action == "start":
                if job.placement is None and "site" not in values:
                    raise InvalidSpec(f"starting job '{job_id}' needs a placement", field="placement")
                values["attempts"] = job.attempts + 1  # every start is a new execution attempt
            job = self._change(conn, job, status, reason or action.replace("_", " "), actor=actor, values=values,
                               check=target is not None, detail={"action": action, **({"args": args} if args else {})})
            return job, self._insert_dispatch(conn, job, action, args or None)

    def complete_dispatch(self, dispatch_id: int, *, executor_ref: str | None = None,
                          error: str | None = None) -> Dispatch:
        """Record the executor's answer: done, or failed with ``error``. Repeating the same outcome is a
        no-op; a different outcome for a completed dispatch is a :class:`ConflictError`."""
        state = "failed" if error is not None else "done"
        with self._tx() as conn:
            res = conn.execute(update(DISPATCHES).where(DISPATCHES.c.id == dispatch_id, DISPATCHES.c.state == "pending")
                               .values(state=state, completed_at=utcnow(), executor_ref=executor_ref,
                                       error=None if error is None else " ".join(str(error).split())))
            row = conn.execute(select(DISPATCHES).where(DISPATCHES.c.id == dispatch_id)).mappings().first()
        if row is None:
            raise NotFound(f"no dispatch {dispatch_id}")
        if res.rowcount != 1 and row["state"] != state:
            raise ConflictError(f"dispatch {dispatch_id} is already {row['state']}")
        return _dispatch(row)

    def pending_dispatches(self, job_id: str | None = None) -> list[Dispatch]:
        """Actions logged but not yet confirmed, oldest first."""
        q = select(DISPATCHES).where(DISPATCHES.c.state == "pending")
        if job_id is not None:
            q = q.where(DISPATCHES.c.job_id == job_id)
        with self._tx(readonly=True) as conn:
            return [_dispatch(r) for r in conn.execute(q.order_by(DISPATCHES.c.id)).mappings()]

    def dispatches(self, job_id: str) -> list[Dispatch]:
        """Every action logged for a job, oldest first."""
        with self._tx(readonly=True) as conn:
            rows = conn.execute(select(DISPATCHES).where(DISPATCHES.c.job_id == job_id).order_by(DISPATCHES.c.id))
            return [_dispatch(r) for r in rows.mappings()]
