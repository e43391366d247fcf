"""What the reconciler's work has cost so far, and what it would have cost under ``asap``.

:class:`Ledger` keeps two sets of books over the same intervals (each pass's facility power held until the
next pass, priced with the zone's carbon intensity and energy price of the pass's slot):

- **actual**: the placements the reconciler dispatched (the running jobs after each pass);
- **counterfactual**: a shadow of the same jobs as the ``asap`` policy would have run them. At every pass
  the shadow's jobs are put through the very path the reconciler plans with (``build_world`` /
  ``build_observation``, ``make_policy("asap")``, the simulator's ``check_decision``, ``placements``,
  ``site_power_mw``), with the shadow's own progress: which jobs asap would have running, where, and how
  much of each job's work it would have done.

Work is counted in the simulator's units (reference accelerator-hours at the simulator's rate: gang ×
speed × throughput kept at the power cap; checkpoint and restart overheads are left out on both sides).
How much work a job needs is the model's ``work_acc_h`` until reality says better: once the real job has
succeeded, the work the actual schedule gave it; while it runs and reports progress, that work divided by
its progress; before either, ``work_acc_h`` scaled by what finished jobs took against their estimate. A
shadow job is finished when its work done reaches that need. Jobs cancelled or failed in reality leave the
shadow when they leave the real queue.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from gridshift.model.events import GridEvent
from gridshift.model.scenario import PolicySpec, Scenario
from gridshift.model.time import S_PER_H
from gridshift.model.workload import Job
from gridshift.plan.registry import make_policy
from gridshift.service.reconciler.decisions import (
    build_observation,
    checked_caps,
    job_rate,
    placements,
    site_power_mw,
)
from gridshift.service.reconciler.world import LiveJob, build_world
from gridshift.world.arrays import Signals, World

log = logging.getLogger("gridshift.reconciler")

COUNTERFACTUAL_POLICY = "asap"
_EPS = 1e-9


@dataclass
class Totals:
    """Facility energy (MWh), carbon (t CO2e) and energy cost ($) since the start."""

    energy_mwh: float = 0.0
    carbon_t: float = 0.0
    cost_usd: float = 0.0

    def add(self, mw: np.ndarray, dt_h: float, carbon_g_per_kwh: np.ndarray, price_usd_per_mwh: np.ndarray) -> None:
        e = mw * dt_h
        self.energy_mwh += float(e.sum())
        self.carbon_t += float((e * carbon_g_per_kwh).sum() / 1000.0)
        self.cost_usd += float((e * price_usd_per_mwh).sum())


@dataclass
class ShadowJob:
    """One job in the books: its work under asap and under the actual schedule (reference acc-h)."""

    job: Job
    order: tuple  # (submitted_at, id): the reconciler's job order
    done_h: float = 0.0  # work asap would have done
    real_done_h: float = 0.0  # work the actual schedule gave it
    placement: tuple[str, str, int, float] | None = None  # where asap runs it now
    last: tuple[str, str, int, float] | None = None  # where asap last ran it
    need_h: float | None = None  # known: the real job succeeded after this much work
    progress: float | None = None  # the real job's last reported progress


@dataclass
class Hold:
    """What one pass left running until the next: facility MW per site, signals per site, rates per job."""

    at: datetime
    carbon: np.ndarray
    price: np.ndarray
    actual_mw: np.ndarray
    shadow_mw: np.ndarray
    actual_rate: dict[str, float] = field(default_factory=dict)
    shadow_rate: dict[str, float] = field(default_factory=dict)


class Ledger:
    """The actual books and the ``asap`` counterfactual's (see the module docstring)."""

    def __init__(self, fleet: Scenario, slot_s: int, n_slots: int) -> None:
        self.fleet, self.slot_s, self.n_slots = fleet, int(slot_s), int(n_slots)
        self.policy = make_policy(PolicySpec(name=COUNTERFACTUAL_POLICY), 0, objective=fleet.objective)
        self.actual, self.shadow = Totals(), Totals()
        self.jobs: dict[str, ShadowJob] = {}
        self._hold: Hold | None = None
        self._finished_real_h = 0.0  # work finished real jobs took …
        self._finished_est_h = 0.0  # … against their work_acc_h
        self.error: str | None = None

    # ------------------------------------------------------------------------------------ the books

    def accrue(self, now: datetime) -> None:
        """Book the interval since the last pass: energy, carbon and cost of both schedules, and the work
        each gave its jobs."""
        h = self._hold
        if h is None:
            return
        dt_h = max((now - h.at).total_seconds(), 0.0) / S_PER_H
        self.actual.add(h.actual_mw, dt_h, h.carbon, h.price)
        self.shadow.add(h.shadow_mw, dt_h, h.carbon, h.price)
        for jid, r in h.actual_rate.items():
            if jid in self.jobs:
                self.jobs[jid].real_done_h += r * dt_h
        for jid, r in h.shadow_rate.items():
            if jid in self.jobs:
                self.jobs[jid].done_h += r * dt_h

    def need_h(self, j: ShadowJob) -> float:
        """The work the job needs, as well as it is known now (see the module docstring)."""
        if j.need_h is not None:
            return j.need_h
        if j.progress is not None and 0.0 < j.progress < 1.0 and j.real_done_h > 0.0:
            return j.real_done_h / j.progress
        work = float(j.job.work_acc_h)
        if self._finished_est_h > 0.0:
            return work * self._finished_real_h / self._finished_est_h
        return work

    def finished(self, j: ShadowJob) -> bool:
        need = self.need_h(j)
        return j.done_h >= need - _EPS * max(1.0, need)

    def observe(self, live: Sequence[LiveJob], waiting: Sequence[tuple[Job, tuple]],
                order: Mapping[str, tuple], real_status: Callable[[str], str | None]) -> None:
        """Take in the real queue after a pass: ``live`` (the jobs the reconciler planned), ``waiting``
        (jobs waiting for a retry, as (Job, order)), ``order[job id]`` the sort key of each live job, and
        ``real_status(job id)`` for a job that left the queue (None if it no longer exists)."""
        seen = set()
        for lj in live:
            jid = lj.job.job_id
            seen.add(jid)
            j = self.jobs.get(jid)
            if j is None:
                j = self.jobs[jid] = ShadowJob(lj.job, order[jid])
                if lj.status in ("running", "paused") and lj.site is not None:
                    # already under way when the books opened: asap would have it under way too
                    done = float(lj.job.work_acc_h) * float(lj.progress_frac or 0.0)
                    j.done_h = j.real_done_h = done
                    j.last = (lj.site, lj.accelerator, int(lj.gang or 1), lj.power_cap_frac or 1.0)
            j.progress = lj.progress_frac
        for job, key in waiting:
            seen.add(job.job_id)
            if job.job_id not in self.jobs:
                self.jobs[job.job_id] = ShadowJob(job, key)
        for jid in [x for x in self.jobs if x not in seen]:
            j = self.jobs[jid]
            if j.need_h is None:
                status = real_status(jid)
                if status == "succeeded":
                    j.need_h = max(j.real_done_h, _EPS)
                    self._finished_real_h += j.real_done_h
                    self._finished_est_h += float(j.job.work_acc_h)
                else:  # cancelled, failed, gone: it leaves the counterfactual as it left the queue
                    del self.jobs[jid]
                    continue
            if self.finished(j):
                del self.jobs[jid]

    # -------------------------------------------------------------------------------------- asap

    def decide(self, t0: datetime, events: Sequence[GridEvent],
               stored: Mapping[tuple[str, str], Sequence[tuple[datetime, float]]],
               real: tuple[World, Signals, int, list[str]]) -> tuple[np.ndarray, dict[str, float]]:
        """asap's decision for the shadow now: (facility MW per site, rate per running shadow job). The
        world of the real pass (``real``: world, signals, slot, job ids in row order) is reused when it
        holds exactly the shadow's jobs; otherwise one is built for them over the same slots."""
        active = []
        for j in self.jobs.values():
            if self.finished(j):
                j.placement = None
            else:
                active.append(j)
        active.sort(key=lambda j: j.order)
        if not active:
            return site_power_mw(real[0], [])[1], {}
        if real[3] == [j.job.job_id for j in active]:
            world, signals, t = real[0], real[1], real[2]
        else:
            world, signals, _ = build_world(self.fleet, [j.job for j in active], t0, self.slot_s, self.n_slots,
                                            events, stored)
            t = 0
        live = []
        for j in active:
            status = "running" if j.placement is not None else ("paused" if j.last is not None else "queued")
            where = j.placement or j.last or (None, None, None, None)
            need = self.need_h(j)
            progress = min(j.done_h / need, 1.0 - 1e-9) if need > 0 and j.last is not None else None
            live.append(LiveJob(j.job, status, *where, progress_frac=progress))
        obs = build_observation(world, signals, live, t)
        self.policy.reset(world, signals)
        d = self.policy.decide(obs)
        cap = checked_caps(world, obs, d, self.policy.name)
        placed = placements(world, d, cap)
        rates, running = {}, []
        for i, j in enumerate(active):
            j.placement = p = placed.get(i)
            if p is None:
                continue
            j.last = p
            rates[j.job.job_id] = job_rate(world, i, *p)
            running.append(p)
        return site_power_mw(world, running)[1], rates

    @property
    def held(self) -> Hold | None:
        """What the last pass left running."""
        return self._hold

    def hold(self, at: datetime, carbon: np.ndarray, price: np.ndarray, actual_mw: np.ndarray,
             actual_rate: dict[str, float], shadow_mw: np.ndarray, shadow_rate: dict[str, float]) -> None:
        self._hold = Hold(at, carbon.copy(), price.copy(), actual_mw.copy(), shadow_mw.copy(), dict(actual_rate),
                          dict(shadow_rate))

    # ------------------------------------------------------------------------------------ status

    def status(self) -> dict[str, Any]:
        running = sum(1 for j in self.jobs.values() if j.placement is not None)
        out = {"policy": COUNTERFACTUAL_POLICY, "energy_mwh": self.shadow.energy_mwh,
               "carbon_t": self.shadow.carbon_t, "cost_usd": self.shadow.cost_usd, "running_jobs": running,
               "unfinished_jobs": sum(1 for j in self.jobs.values() if not self.finished(j))}
        if self.error:
            out["error"] = self.error
        return out
