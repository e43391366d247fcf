"""The reconciler: keeps the executor's jobs where the policy wants them (see docs/service/reconciler.md).

Each pass (:meth:`Reconciler.tick`) settles pending dispatch intents (after a restart: against the
executor's ``recover()``), takes in what the executor reports (finished, failed, lost jobs), builds the
simulator's world and slot-0 observation from the live state, asks the same :class:`~gridshift.plan.base.
Policy` the simulator uses for a decision, and carries out the difference as executor actions, each one
logged as an intent before the call and completed after it. Passes run on a clock and when
:meth:`Reconciler.notify` is called (new job, signal update, grid event, executor report).

A plan is kept for the planner's epoch (``mpc``: ``epoch_h``; other policies: one slot) and decided from
again at later passes until something changes (a trigger, other jobs, grid events or stored signals); the
books of energy, carbon and cost, and of the ``asap`` counterfactual, are in
:mod:`gridshift.service.reconciler.counterfactual`.
"""

from __future__ import annotations

import logging
import math
import shlex
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from gridshift.model.scenario import ALLOWED_SLOT_S, PolicySpec, Scenario
from gridshift.model.time import S_PER_H, as_utc, floor_time
from gridshift.plan.base import Policy
from gridshift.plan.registry import make_policy
from gridshift.service.executors.base import ExecStatus, Executor, ExecutorError, JobLaunch
from gridshift.service.executors.base import Placement as ExecPlacement
from gridshift.service.reconciler.bases import BasisBooks
from gridshift.service.reconciler.counterfactual import Ledger
from gridshift.service.reconciler.decisions import (
    Action,
    build_observation,
    checked_caps,
    diff_actions,
    explain,
    job_rate,
    placements,
    site_power_mw,
)
from gridshift.service.reconciler.demand import (
    planning_fleet,
    replica_targets,
    service_replicas,
    write_replica_targets,
)
from gridshift.service.reconciler.forecasts import annotate, forecast_record, use_provider_forecasts
from gridshift.service.reconciler.isolate import Culprit, find_culprits, one_line, quarantine, usable_events
from gridshift.service.reconciler.nodes import node_power_step
from gridshift.service.reconciler.policies import check_live_policy
from gridshift.service.reconciler.world import (
    SIGNAL_HOLD_S,
    SIGNAL_NAMES,
    WAITING,
    LiveJob,
    build_world,
)
from gridshift.service.store import (
    ConflictError,
    Dispatch,
    GridEventRow,
    JobRow,
    NotFound,
    Placement,
    Principal,
    StateError,
    Store,
    utcnow,
)

log = logging.getLogger("gridshift.reconciler")

SYSTEM = Principal.system()
LIVE_STATUSES = ("queued", "planned", "running", "paused")
EXEC_KNOWN = ("running", "paused", "succeeded", "failed")  # states that prove a start took effect
LOOKBACK_S = 168 * 3600


def _iso(t: datetime | None) -> str | None:
    return None if t is None else as_utc(t).isoformat()


@dataclass
class KeptPlan:
    """A plan the reconciler keeps between passes: the policy (for ``mpc``, with its solved LP) and the
    world and signals it was made for, from slot ``t0``, for the live jobs ``job_ids`` (the world's rows),
    with the grid events and stored signals it saw. Valid for ``epoch_s`` from ``t0``."""

    t0: datetime
    epoch_s: float
    job_ids: tuple[str, ...]
    events: tuple
    stored: dict
    world: Any
    signals: Any
    policy: Policy
    solved_at: datetime


def _events_key(rows: Iterable[GridEventRow]) -> tuple:
    return tuple((g.id, g.revision, g.status, as_utc(g.updated_at)) for g in rows)


class Reconciler:
    """Plans with ``policy`` every ``interval_s`` seconds (or at once on :meth:`notify`) over slots of
    ``slot_s`` seconds and a horizon of ``horizon_s``, and drives ``executor`` to match.

    ``fleet_scenario`` gives the sites, pools, zones, objective and inference services (its batch
    workloads are ignored: jobs come from ``store``). ``clock`` returns the current time (UTC).
    A failed attempt is retried after ``backoff_s`` × 2^(attempt − 1) (at most ``max_backoff_s``); a job
    fails after its own ``max_attempts`` or after ``max_attempts`` given here, whichever is fewer.
    """

    def __init__(self, store: Store, executor: Executor, fleet_scenario: Scenario, *,
                 policy: str | PolicySpec = "asap", slot_s: int = 3600, interval_s: float = 10.0,
                 horizon_s: float = 48 * 3600, clock: Callable[[], datetime] = utcnow,
                 max_attempts: int | None = None, backoff_s: float = 30.0, max_backoff_s: float = 3600.0,
                 signal_hold_s: float = SIGNAL_HOLD_S, plan_keep: int = 100,
                 forecast_source: Callable[[datetime], dict] | None = None) -> None:
        if slot_s not in ALLOWED_SLOT_S:
            raise ValueError(f"slot_s must be one of {ALLOWED_SLOT_S}")
        if horizon_s < slot_s or interval_s <= 0 or backoff_s < 0:
            raise ValueError("horizon_s must be >= slot_s, interval_s > 0 and backoff_s >= 0")
        if max_attempts is not None and max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        self.store, self.executor, self.fleet = store, executor, fleet_scenario
        self.policy_spec = PolicySpec(name=policy) if isinstance(policy, str) else policy
        make_policy(self.policy_spec, 0, objective=fleet_scenario.objective)  # bad names and params fail here
        self.slot_s, self.interval_s, self.horizon_s = int(slot_s), float(interval_s), float(horizon_s)
        self.n_slots = int(math.ceil(horizon_s / slot_s))
        self.clock = clock
        self.max_attempts, self.backoff_s, self.max_backoff_s = max_attempts, float(backoff_s), float(max_backoff_s)
        self.signal_hold_s, self.plan_keep = float(signal_hold_s), plan_keep
        self.forecast_source = forecast_source  # providers' issued forecasts for mpc (reconciler/forecasts.py)
        self._recovered = False
        self._kept_background: dict = {}
        self._tick_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._wake, self._halt = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None
        self._plan_saved_nonempty = False
        self._ledger = Ledger(fleet_scenario, self.slot_s, self.n_slots)
        self._bases = BasisBooks(fleet_scenario.zones, [x.zone for x in fleet_scenario.sites])  # average and marginal
        self._kept: KeptPlan | None = None
        self._replicas = None  # the services' replicas of the last decision
        self._trigger: str | None = None  # a change since the last pass that the kept plan did not see
        self._st: dict[str, Any] = {"ticks": 0, "passes": 0, "plans_solved": 0, "plans_kept": 0, "lp_solves": 0,
                                    "last_plan_reason": None, "plan_solved_at": None,
                                    "errors": 0, "last_tick_at": None, "last_tick_s": None,
                                    "plan_time_s": None, "slot_start": None, "site_power_mw": {},
                                    "site_it_power_mw": {}, "energy_mwh": 0.0, "carbon_t": 0.0, "cost_usd": 0.0,
                                    "counterfactual": self._ledger.status(), "queue": {},
                                    "pending_dispatches": 0, "last_actions": {}, "last_error": None,
                                    "last_error_at": None, "last_trigger": None, "last_trigger_at": None,
                                    "quarantined": 0, "last_quarantined": [], "observed_demand": {},
                                    "replica_targets": {}, "node_power": []}

    # ---------------------------------------------------------------------------------------- loop

    def notify(self, reason: str) -> None:
        """Ask for a pass now (a new job, a signal update, a grid event, an executor report)."""
        with self._state_lock:
            self._st["last_trigger"], self._st["last_trigger_at"] = str(reason), _iso(utcnow())
            self._trigger = str(reason)  # the next pass plans afresh
        self._wake.set()

    def set_policy(self, policy: str | PolicySpec, *, actor: str | None = None) -> PolicySpec:
        """Switch the planning policy. It is validated first (an unknown name or parameter raises
        ``ScenarioError`` and nothing changes), then stored as the ``policy`` setting (so a restart keeps
        it; a database error leaves the policy unchanged); the switch waits for a running pass to end, and
        the next pass plans afresh with the new policy."""
        spec = check_live_policy(PolicySpec(name=policy) if isinstance(policy, str) else policy, self.fleet.objective)
        self.store.put_setting("policy", spec.model_dump(), actor=actor)
        with self._tick_lock:  # never between a pass's plan and its dispatches
            self.policy_spec = spec
            self._kept = None
        self.notify(f"policy changed to {spec.key}")
        return spec

    def start(self) -> None:
        """Run passes in a daemon thread until :meth:`stop`."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._halt.clear()
        self._thread = threading.Thread(target=self._run, name="gridshift-reconciler", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float | None = 30.0) -> None:
        """Stop the loop after the pass in progress and wait for it."""
        self._halt.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _run(self) -> None:
        while not self._halt.is_set():
            self._wake.clear()
            try:
                self.tick()
            except Exception:  # noted in status(); the next pass tries again
                log.exception("reconciler pass failed")
            if self._halt.is_set():
                break
            self._wake.wait(self.interval_s)

    def status(self) -> dict[str, Any]:
        """Loop state and metrics: last pass time and duration, policy time, estimated power per site (MW),
        energy (MWh), carbon (t) and cost ($) since start and the same under the ``asap`` counterfactual,
        jobs per status, last error."""
        with self._state_lock:
            out = dict(self._st)
            out["counterfactual"] = dict(out["counterfactual"])
        out.update(running=self._thread is not None and self._thread.is_alive(), policy=self.policy_spec.key,
                   policy_params=dict(self.policy_spec.params), interval_s=self.interval_s, slot_s=self.slot_s, horizon_s=self.horizon_s)
        return out

    def _note_error(self, message: str) -> None:
        log.warning("%s", message)
        with self._state_lock:
            self._st["last_error"], self._st["last_error_at"] = message, _iso(utcnow())
            self._st["errors"] += 1

    # ---------------------------------------------------------------------------------------- pass

    def tick(self) -> dict[str, Any]:
        """One pass: settle intents, take in reports, plan, dispatch, save the plan. Returns its summary."""
        with self._tick_lock:
            t_wall = time.perf_counter()
            now = as_utc(self.clock())
            with self._state_lock:
                trigger, self._trigger = self._trigger, None
            try:
                recovered = None
                if not self._recovered:
                    recovered = {st.job_id: st for st in self.executor.recover()}
                self._settle(recovered)
                self._recovered = True
                reports = {st.job_id: st for st in self.executor.report()}
                if self._ingest(reports):
                    trigger = trigger or "executor report"
                summary = self._plan(now, reports, trigger)
                queue = self.store.queue_stats()
                pending = len(self.store.pending_dispatches())
            except Exception as e:
                self._kept = None  # the next pass plans afresh
                self._note_error(f"reconciler pass: {type(e).__name__}: {e}")
                raise
            with self._state_lock:
                self._st.update(ticks=self._st["ticks"] + 1, passes=self._st["ticks"] + 1, last_tick_at=_iso(now),
                                last_tick_s=time.perf_counter() - t_wall, queue=queue, pending_dispatches=pending,
                                last_actions=summary.get("actions", {}))
            return summary

    # ------------------------------------------------------------------------- intents and executor

    def _settle(self, recovered: dict[str, ExecStatus] | None) -> None:
        """Carry out every pending intent: left by a crash, by a failed pass, or a stop the API logged."""
        for d in self.store.pending_dispatches():
            try:
                job = self.store.get_job(SYSTEM, d.job_id)
            except NotFound:
                self.store.complete_dispatch(d.id, error="the job no longer exists")
                continue
            if d.action == "start":
                st = (recovered or {}).get(d.job_id) or self.executor.status(d.job_id)
                if st.attempt == d.attempt and st.state in EXEC_KNOWN:
                    self.store.complete_dispatch(d.id, executor_ref=st.ref)  # it took effect: not re-issued
                    continue
                if job.terminal:
                    self.store.complete_dispatch(d.id, error=f"the job was {job.status} before it started")
                    continue
                if job.attempts != d.attempt:
                    self.store.complete_dispatch(d.id, error=f"superseded by attempt {job.attempts}")
                    continue
            self._execute(d, job)

    def _call(self, d: Dispatch, job: JobRow) -> str | None:
        ex = self.executor
        if d.action == "start":
            try:
                command = shlex.split(job.command) if job.command else None
            except ValueError as e:
                raise ExecutorError(f"cannot parse the command: {e}", job_id=job.id, retryable=False) from None
            launch = JobLaunch(job.id, command, env={}, placement=_exec_placement(job.placement),
                               work_acc_h=float(job.spec.get("work_acc_h", 1.0)), attempt=d.attempt,
                               tenant=job.tenant)
            return ex.start(launch)
        if d.action == "pause":
            return ex.pause(job.id).ref
        if d.action == "resume":
            return ex.resume(job.id, _exec_placement(job.placement)).ref
        if d.action == "stop":
            st = ex.status(job.id)
            return st.ref if st.state == "unknown" or st.finished else ex.stop(job.id).ref
        if d.action == "set_power_cap":
            return ex.set_power_cap(job.id, float((d.args or {})["power_cap_frac"])).ref
        raise ExecutorError(f"unknown action '{d.action}'", job_id=job.id, retryable=False)

    def _execute(self, d: Dispatch, job: JobRow) -> bool:
        """Call the executor for intent ``d`` and record the outcome; True if it succeeded."""
        try:
            ref = self._call(d, job)
        except Exception as e:  # an executor may fail in ways it did not foresee: treat as retryable
            err = e if isinstance(e, ExecutorError) else ExecutorError(f"{type(e).__name__}: {e}", job_id=job.id)
            self._on_error(d, job, err)
            return False
        self.store.complete_dispatch(d.id, executor_ref=ref)
        return True

    def _on_error(self, d: Dispatch, job: JobRow, err: ExecutorError) -> None:
        msg = err.message
        self._note_error(f"{d.action} of job {job.id} failed: {msg}")
        self._replan_next(f"{d.action} failed")
        if d.action == "stop" and err.retryable:
            return  # stays pending: the next pass tries again
        self.store.complete_dispatch(d.id, error=msg)
        job = self.store.get_job(SYSTEM, job.id)
        if job.terminal:
            return
        try:
            if d.action == "start":
                self._fail_attempt(job, msg, retry=err.retryable)
            elif d.action == "pause" and job.status == "paused":
                self.store.transition(job.id, "running", f"pause failed: {msg}", expect_version=job.version)
            elif d.action == "resume" and job.status == "running":
                if err.retryable:
                    self.store.transition(job.id, "paused", f"resume failed: {msg}", expect_version=job.version)
                else:
                    try:
                        self.executor.stop(job.id)
                    except ExecutorError:
                        pass
                    self._fail_attempt(job, f"resume failed: {msg}", retry=True)
        except ConflictError as e:  # the job changed meanwhile; the next pass sees it
            log.info("job %s changed while handling an error: %s", job.id, e)

    def _fail_attempt(self, job: JobRow, error: str, *, retry: bool = True) -> None:
        if self.max_attempts is not None and max(job.attempts, 1) >= self.max_attempts:
            retry = False
        try:
            again = self.store.mark_attempt_failed(job.id, error, self.backoff_s, max_backoff_s=self.max_backoff_s,
                                                   expect_version=job.version, retry=retry)
        except ConflictError as e:
            log.info("job %s changed before its failure was recorded: %s", job.id, e)
            return
        log.info("job %s attempt %d failed (%s); %s", job.id, job.attempts, error,
                 "retry after backoff" if again else "job failed")

    # ------------------------------------------------------------------------------------- reports

    def _jobs(self, statuses: Iterable[str]) -> list[JobRow]:
        out, cursor = [], None
        while True:
            page, cursor = self.store.list_jobs(SYSTEM, status=list(statuses), limit=1000, cursor=cursor)
            out.extend(page)
            if cursor is None:
                return out

    def _ingest(self, reports: dict[str, ExecStatus]) -> bool:
        """Finished attempts: succeeded, or failed / lost (retried with backoff, failed after N). True if a
        report changed a job."""
        changed = False
        for job in self._jobs(("running", "paused")):
            st = reports.get(job.id)
            try:
                if st is None or st.state == "unknown":
                    if job.status == "running":
                        changed = True
                        self._fail_attempt(job, "lost: the executor has no record of this job")
                elif st.attempt is not None and st.attempt != job.attempts:
                    changed = True
                    self._fail_attempt(job, f"lost: the executor knows attempt {st.attempt}, not {job.attempts}")
                elif st.state in ("succeeded", "failed", "lost"):
                    changed = True
                    self._finish_attempt(job, st)
            except ConflictError as e:
                log.info("job %s changed while its report was taken in: %s", job.id, e)
        return changed

    def _finish_attempt(self, job: Any, st: ExecStatus) -> None:
        """Take in an attempt that ended: succeeded, failed or lost."""
        if st.state == "succeeded":
            if job.status == "paused":
                job = self.store.transition(job.id, "running", "finished while being paused",
                                            expect_version=job.version)
            self.store.transition(job.id, "succeeded", "finished (exit code 0)", expect_version=job.version)
        elif st.state == "failed":
            self._fail_attempt(job, st.reason or f"exit code {st.exit_code}")
        else:
            self._fail_attempt(job, f"lost: {st.reason or 'the process is gone'}")

    # ---------------------------------------------------------------------------------------- plan

    def _stored_signals(self, t0: datetime) -> dict[tuple[str, str], list[tuple[datetime, float]]]:
        start = t0 - timedelta(seconds=LOOKBACK_S + self.signal_hold_s)
        end = t0 + timedelta(seconds=self.n_slots * self.slot_s)
        out = {}
        for z in self.fleet.zones:
            for name in SIGNAL_NAMES:
                pts = self.store.signals_between(z.id, name, start, end)
                if pts:
                    out[(z.id, name)] = [(p.at, p.value) for p in pts]
        return out

    def live_jobs(self, now: datetime, reports: dict[str, ExecStatus]
                  ) -> tuple[list[LiveJob], list[JobRow], dict[str, JobRow]]:
        """(jobs to plan, in submission order; queued jobs waiting for a retry; rows by job id)."""
        rows = sorted(self._jobs(LIVE_STATUSES), key=lambda r: (as_utc(r.submitted_at), r.id))
        live, later, bad = [], [], []
        for r in rows:
            try:  # a row written around the API's checks: quarantined, the others planned
                job = r.to_job()
            except Exception as e:  # noqa: BLE001
                bad.append(Culprit("job", r.id, f"the stored job is not a valid job: {one_line(e)}"))
                continue
            if r.status in WAITING and r.next_attempt_at is not None and as_utc(r.next_attempt_at) > now:
                later.append(r)
                continue
            job = job.model_copy(update={"arrival": min(as_utc(job.arrival), now)})
            st = reports.get(r.id)
            progress = st.progress_frac if st is not None and st.attempt == r.attempts else None
            pl = r.placement
            live.append(LiveJob(job, r.status, pl.site if pl else None, pl.accelerator if pl else None,
                                pl.gang if pl else None, pl.power_cap_frac if pl else None, progress, True))
        self._quarantine(bad, now)
        gone = {c.id for c in bad}
        return live, later, {r.id: r for r in rows if r.id not in gone}

    def _replan_next(self, reason: str) -> None:
        """Make the next pass plan afresh."""
        with self._state_lock:
            self._trigger = self._trigger or reason

    def _epoch_s(self, policy: Policy) -> float:
        """How long a plan is kept: the planner's epoch (``mpc``: ``epoch_h``), else one slot; never beyond
        the horizon."""
        epoch_h = getattr(policy, "epoch_h", None)
        epoch_s = float(epoch_h) * S_PER_H if isinstance(epoch_h, (int, float)) and epoch_h > 0 else self.slot_s
        return min(max(epoch_s, float(self.slot_s)), self.n_slots * float(self.slot_s))

    def _why_replan(self, trigger: str | None, t0: datetime, job_ids: tuple[str, ...], events: tuple) -> str | None:
        """Why the kept plan cannot serve this pass (None: it can). Besides the triggers (notify, an
        executor report that changed a job, a failed dispatch): a new epoch, other jobs to plan (submitted,
        finished, cancelled, waiting for a retry), changed grid events or stored signals."""
        kept = self._kept
        if kept is None:
            return "first plan"
        if trigger:
            return trigger
        dt = (t0 - kept.t0).total_seconds()
        if dt < 0 or dt >= kept.epoch_s:
            return "new epoch"
        if job_ids != kept.job_ids:
            return "jobs changed"
        if events != kept.events:
            return "grid events changed"
        if self._stored_signals(kept.t0) != kept.stored:
            return "signals changed"
        return None

    def _background_busy(self) -> dict:
        """Accelerators busy with jobs outside GridShift per (site, type), from an executor that reports them
        (the Slurm executor's ``background_load()``, as of this pass's ``report``); planned around."""
        fn = getattr(self.executor, "background_load", None)
        if fn is None:
            return {}
        try:
            return {k: int(v) for k, v in fn().busy.items() if v}
        except Exception as e:  # noqa: BLE001 (a report the planner can do without)
            log.warning("background load unavailable: %s", e)
            return {}

    def _plan(self, now: datetime, reports: dict[str, ExecStatus], trigger: str | None = None) -> dict[str, Any]:
        t0 = floor_time(now, self.slot_s)
        live, later, rows = self.live_jobs(now, reports)
        order = {r.id: (as_utc(r.submitted_at), r.id) for r in rows.values()}  # rows changes as we dispatch
        grid = self._grid_events(t0, now)
        events = [_known_by(g.event, now) for g in grid]
        job_ids = tuple(lj.job.job_id for lj in live)
        events_key = _events_key(grid)
        why = self._why_replan(trigger, t0, job_ids, events_key)
        background = self._background_busy()
        if why is None and background != self._kept_background:
            why = "background load changed"
        decided = None
        if why is None:  # keep the plan: its world, from its slot, and the policy with what it solved
            kept = self._kept
            world, signals, stored, policy = kept.world, kept.signals, kept.stored, kept.policy
            k = int(round((t0 - kept.t0).total_seconds() / self.slot_s))  # the world's slot this pass plans
            try:
                decided = self._decide(world, signals, policy, live, k, fresh=False)
            except Exception as e:  # noqa: BLE001 (planned afresh below, with failure isolation)
                why = f"the kept plan failed: {one_line(e, 200)}"
        if decided is None:
            stored, k = self._stored_signals(t0), 0
            fleet, seen = planning_fleet(self.store, self.fleet, now, self.horizon_s / S_PER_H)  # observed demand
            with self._state_lock:
                self._st["observed_demand"] = seen
            items_in = [("event", i) for i in range(len(grid))] + [("job", i) for i in range(len(live))]

            def attempt(sub):
                lv = [live[i] for kind, i in sub if kind == "job"]
                world, signals, _ = build_world(fleet, [lj.job for lj in lv], t0, self.slot_s, self.n_slots,
                                                [events[i] for kind, i in sub if kind == "event"], stored,
                                                background)
                policy = make_policy(self.policy_spec, 0, objective=self.fleet.objective)
                use_provider_forecasts(policy, [z.id for z in self.fleet.zones], self.forecast_source, now, self.slot_s)
                return world, signals, policy, self._decide(world, signals, policy, lv, k, fresh=True)

            (world, signals, policy, decided), culprits = find_culprits(items_in, attempt)
            if culprits:
                out = {(kind, i) for (kind, i), _ in culprits}
                self._quarantine([Culprit(kind, grid[i].id if kind == "event" else live[i].job.job_id,
                                          f"planning failed with it: {one_line(e)}") for (kind, i), e in culprits],
                                 now, revisions={grid[i].id: grid[i].revision for kind, i in out if kind == "event"})
                for lj in (live[i] for kind, i in out if kind == "job"):
                    rows.pop(lj.job.job_id, None)
                live = [lj for i, lj in enumerate(live) if ("job", i) not in out]
                keep = [i for i in range(len(grid)) if ("event", i) not in out]
                grid, events = [grid[i] for i in keep], [events[i] for i in keep]
                job_ids, events_key = tuple(lj.job.job_id for lj in live), _events_key(grid)
            self._kept = KeptPlan(t0, self._epoch_s(policy), job_ids, events_key, stored, world, signals,
                                  policy, now)
            self._kept_background = background
        obs, actions, items, warnings, plan_time_s, solves = decided
        self._set_replica_targets(world, signals, k)
        if obs.active.size:
            with self._state_lock:
                st = self._st
                if why is not None:
                    st.update(plans_solved=st["plans_solved"] + 1, last_plan_reason=why, plan_solved_at=_iso(now))
                else:
                    st["plans_kept"] += 1
                st["lp_solves"] += solves
        done = Counter()
        for a in actions:
            if self._dispatch(a, rows):
                done[a.kind] += 1
        items += [{"job_id": r.id, "why": {"policy": self.policy_spec.key, "action": "wait", "bound": "retry_backoff",
                                           "retry_at": _iso(r.next_attempt_at), "last_error": r.failure_reason}}
                  for r in later]
        running = {r.id: (r.placement.site, r.placement.accelerator, r.placement.gang, r.placement.power_cap_frac)
                   for r in self._jobs(("running",)) if r.placement is not None}
        it_mw, fac_mw = site_power_mw(world, list(running.values()))
        row = {lj.job.job_id: i for i, lj in enumerate(live)}
        rates = {jid: job_rate(world, row[jid], *p) for jid, p in running.items() if jid in row}
        self._account(now, t0, world, signals, k, live, later, order, events, stored, fac_mw, rates)
        names = world.fleet.site_names
        summary = {"now": _iso(now), "slot_start": _iso(t0), "active_jobs": int(obs.active.size),
                   "placed": sum(1 for it in items if it.get("site")), "waiting_for_retry": len(later),
                   "actions": dict(done), "plan_time_s": round(plan_time_s, 6),
                   "plan": "kept" if why is None else "solved", "plan_reason": why,
                   "plan_solved_at": _iso(self._kept.solved_at) if self._kept else None,
                   "site_power_mw": {n: round(float(v), 6) for n, v in zip(names, fac_mw)}}
        forecasts = forecast_record(policy)
        node_power = node_power_step(self.executor, self.fleet, [g.event for g in grid], now, self._note_error)
        summary.update({k: v for k, v in dict(warnings=warnings, forecasts=forecasts, node_power=node_power).items() if v})
        if items or node_power or self._plan_saved_nonempty:
            self.store.save_plan(self.policy_spec.key, items, summary, horizon_s=self.horizon_s, keep=self.plan_keep)
            self._plan_saved_nonempty = bool(items)
        with self._state_lock:
            self._st["node_power"] = (node_power + self._st["node_power"])[:20]
            self._st.update(plan_time_s=plan_time_s, slot_start=_iso(t0), forecasts=forecasts,
                            site_power_mw={n: float(v) for n, v in zip(names, fac_mw)},
                            site_it_power_mw={n: float(v) for n, v in zip(names, it_mw)})
        return summary

    def _set_replica_targets(self, world, signals, k: int) -> None:
        """The services' replicas in this pass (the decision's, else those placed before any job) as the stored
        services' replica targets (``reconciler.demand``); a failure is noted, never fatal to the pass."""
        if not world.services.n:
            return
        reps = self._replicas if self._replicas is not None else service_replicas(world, signals, k)
        targets = replica_targets(world, reps)
        try:
            write_replica_targets(self.store, targets)
        except StateError as e:
            self._note_error(f"replica targets: {e}")
        with self._state_lock:
            self._st["replica_targets"] = targets

    def _decide(self, world, signals, policy: Policy, live: list[LiveJob], k: int, *, fresh: bool) -> tuple:
        """The policy's decision at the world's slot ``k`` (``fresh``: reset it with the world first) as
        (observation, executor actions, plan items, warnings, policy time in s, LP solves)."""
        self._replicas = None
        obs = build_observation(world, signals, live, k)
        if not obs.active.size:
            return obs, [], [], [], 0.0, 0
        solves = getattr(policy, "n_solves", 0)
        t = time.perf_counter()
        if fresh:
            policy.reset(world, signals)
        d = policy.decide(obs)
        self._replicas = d.replicas
        plan_time_s = time.perf_counter() - t
        cap = checked_caps(world, obs, d, policy.name)
        placed = placements(world, d, cap)
        actions = diff_actions(world, live, placed)
        items = explain(world, signals, obs, d, cap, live, placed, self.policy_spec.key, k)
        annotate(items, policy, world, obs, [lj.job.job_id for lj in live])
        warnings = list(getattr(policy, "plan_warnings", lambda: [])())
        return obs, actions, items, warnings, plan_time_s, getattr(policy, "n_solves", 0) - solves

    def _grid_events(self, t0: datetime, now: datetime) -> list[GridEventRow]:
        """The stored grid events ending after ``t0`` that the planner takes (others are quarantined)."""
        grid, bad, revisions = usable_events(self.store, self.fleet, t0)
        self._quarantine(bad, now, revisions=revisions)
        return grid

    def _quarantine(self, culprits: list[Culprit], now: datetime, *, revisions: dict[str, int] | None = None) -> None:
        """Set aside jobs and grid events planning cannot take, and note them in :meth:`status`."""
        if culprits:
            noted = quarantine(self.store, culprits, now, revisions or {})
            with self._state_lock:
                self._st["quarantined"] += len(noted)
                self._st["last_quarantined"] = (noted + self._st["last_quarantined"])[:20]

    def _dispatch(self, a: Action, rows: dict[str, JobRow | None]) -> bool:
        """Log the intent, call the executor, record the outcome. False if the job changed meanwhile or the
        executor failed (handled: retry, failure or revert)."""
        job = rows.get(a.job_id)
        if job is None:
            return False
        placement = Placement(a.site, a.accelerator, a.gang, a.power_cap_frac) if a.site else None
        args = {"power_cap_frac": a.power_cap_frac} if a.kind == "set_power_cap" else None
        where = f" on {a.site}/{a.accelerator} x{a.gang} at cap {a.power_cap_frac:.2f}" if a.site else ""
        try:
            job, d = self.store.record_dispatch_intent(job.id, a.kind, expect_version=job.version,
                                                       placement=placement, args=args,
                                                       reason=f"{self.policy_spec.key}: {a.kind}{where}")
        except ConflictError as e:  # changed since it was read (cancelled, …): the next pass re-plans
            log.info("skipped %s of job %s: %s", a.kind, a.job_id, e)
            rows[a.job_id] = None
            self._replan_next("a job changed while it was dispatched")
            self._wake.set()
            return False
        ok = self._execute(d, job)
        rows[a.job_id] = job if ok else None
        return ok

    def _account(self, now: datetime, t0: datetime, world, signals, t: int, live: list[LiveJob],
                 later: list[JobRow], order: dict[str, tuple], events, stored, fac_mw: np.ndarray,
                 rates: dict[str, float]) -> None:
        """The books (``gridshift.service.reconciler.counterfactual``): the previous pass's facility power held until
        now, for the dispatched placements and for the ``asap`` shadow; then asap's decision for now."""
        led = self._ledger
        led.accrue(now)
        waiting = []
        for r in later:
            job = r.to_job()
            waiting.append((job.model_copy(update={"arrival": min(as_utc(job.arrival), now)}), order[r.id]))
        led.observe(live, waiting, order, self._real_status)
        try:
            cf_mw, cf_rates = led.decide(t0, events, stored, (world, signals, t, [lj.job.job_id for lj in live]))
            led.error = None
        except Exception as e:  # the counterfactual never stops the real pass
            led.error = f"{type(e).__name__}: {e}"
            log.warning("asap counterfactual: %s", led.error)
            prev = led.held
            cf_mw = prev.shadow_mw if prev is not None else site_power_mw(world, [])[1]
            cf_rates = prev.shadow_rate if prev is not None else {}
        zone = world.fleet.site_zone
        led.hold(now, signals.at("carbon_g_per_kwh", t)[zone], signals.at("price_usd_per_mwh", t)[zone], fac_mw,
                 rates, cf_mw, cf_rates)
        try:
            self._bases.step(self.store, now, fac_mw, cf_mw, self.signal_hold_s)
        except Exception as e:  # noqa: BLE001 (the second accounting never stops the real pass)
            log.warning("carbon by basis: %s", one_line(e))
        with self._state_lock:
            self._st.update(energy_mwh=led.actual.energy_mwh, carbon_t=led.actual.carbon_t,
                            cost_usd=led.actual.cost_usd, counterfactual=led.status(),
                            carbon_by_basis=self._bases.status())

    def _real_status(self, job_id: str) -> str | None:
        try:
            return self.store.get_job(SYSTEM, job_id).status
        except NotFound:
            return None


def _known_by(e, now: datetime):
    """The event as issued no later than ``now``: once it is in the store, the planners may use it."""
    early_s = (as_utc(e.start) - now).total_seconds()
    return e.model_copy(update={"notice_s": early_s}) if early_s > e.notice_s else e


def _exec_placement(p: Placement | None) -> ExecPlacement:
    if p is None:
        raise ExecutorError("the job has no placement", retryable=False)
    return ExecPlacement(p.site, p.accelerator, int(p.gang), 1.0 if p.power_cap_frac is None else p.power_cap_frac)

