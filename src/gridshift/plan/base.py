"""The policy interface shared by the simulator and the live service.

A :class:`Policy` sees an :class:`Observation` at the start of each slot (what is known then: the fleet,
the jobs that have arrived and their progress, signals up to now, current demand) and returns a
:class:`Decision` for that slot. Policies do no I/O.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from gridshift.model.events import TIER_MAY_PAUSE
from gridshift.world.arrays import Signals, World


@dataclass(frozen=True)
class Observation:
    """What a policy may know at the start of slot ``t``."""

    t: int
    world: World
    signals: Signals  # use history()/at(): values after slot t are not to be read by online policies
    active: np.ndarray  # int64 job indices that have arrived and are not finished
    remaining_acc_h: np.ndarray  # float [n_jobs] work left, reference accelerator-hours
    running_pool: np.ndarray  # int [n_jobs] pool the job ran on in the previous slot, -1 if none
    running_gang: np.ndarray  # int [n_jobs] accelerators it held, 0 if none
    has_started: np.ndarray  # bool [n_jobs] ran at least once (resuming costs restart overhead)
    last_pool: np.ndarray  # int [n_jobs] pool the job last ran on, -1 if never
    demand_rps: np.ndarray  # [N, R] service demand in this slot

    @property
    def now_s(self) -> float:
        return self.t * self.world.slot_duration_s

    def rigid(self, idx: np.ndarray) -> np.ndarray:
        """Mask over jobs ``idx``: those a policy must not pause or move now — non-interruptible jobs, and
        running jobs of the tiers that may not pause (0: never slowed; 1, 2: only power-capped) at a site
        under a grid event: an event never preempts them."""
        jt = self.world.jobs
        out = ~jt.interruptible[idx]
        under = self.world.sites_under_event(self.t)
        if under is not None and under.any():
            p = self.running_pool[idx]
            no_pause = ~np.asarray(TIER_MAY_PAUSE)[np.clip(jt.tier[idx], 0, len(TIER_MAY_PAUSE) - 1)]
            out |= no_pause & (p >= 0) & under[self.world.fleet.pool_site[np.maximum(p, 0)]]
        return out


@dataclass
class Decision:
    """What runs in one slot.

    Jobs not listed in ``job_idx`` do not run (queued, or paused if they ran before). Each listed job runs
    on pool ``job_pool`` with ``job_gang`` accelerators. ``pool_power_cap_frac`` caps every accelerator of
    a pool at a fraction of its board power (None = uncapped). ``replicas[n, r, p]`` accelerators of pool p
    serve region r of service n. ``job_start_offset_s`` (optional, one per listed job) starts a job that
    was not running in the previous slot that many seconds into the slot (a job shorter than a slot may start
    anywhere inside it); a job never starts before its arrival, whatever the offset says.
    """

    job_idx: np.ndarray
    job_pool: np.ndarray
    job_gang: np.ndarray
    pool_power_cap_frac: np.ndarray | None = None
    replicas: np.ndarray | None = None
    job_start_offset_s: np.ndarray | None = None

    @staticmethod
    def idle(world: World) -> Decision:
        z = np.zeros(0, np.int64)
        return Decision(z, z.astype(np.int32), z.astype(np.int32))


class Policy(ABC):
    """Base class for every policy. Subclasses set ``name`` and implement :meth:`decide`."""

    name: ClassVar[str] = "policy"

    def __init__(self, **params: Any) -> None:
        self.params = params

    def reset(self, world: World, signals: Signals) -> None:
        """Called once before a run. Online policies must not use ``signals`` beyond what observations give;
        offline bounds (an oracle) may."""
        self.world = world

    @abstractmethod
    def decide(self, obs: Observation) -> Decision:
        """Return the decision for slot ``obs.t``."""
