"""``nominal``: the habit as a policy. A job with a habitual start (``JobTable.nominal_start_s``, e.g. a
recurring job's 01:00) waits until that start (to the second) and then runs like ``asap`` (first fit, full
power, never paused); a job without one runs as ``asap``. It is the reference of the savings "vs nominal"
(:mod:`gridshift.sim.attribution`): what the jobs would have drawn, and emitted, had nobody shifted them."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from gridshift.plan.asap import Asap
from gridshift.plan.base import Decision, Observation


def nominal_slot(nominal_start_s: np.ndarray, slot_duration_s: float) -> np.ndarray:
    """Per job: the slot that holds its nominal start (NaN where it has none)."""
    return np.floor(np.asarray(nominal_start_s, float) / float(slot_duration_s))


class Nominal(Asap):
    name = "nominal"

    def decide(self, obs: Observation) -> Decision:
        act = obs.active
        slot = nominal_slot(obs.world.jobs.nominal_start_s[act], obs.world.slot_duration_s)
        ready = obs.has_started[act] | ~(slot > obs.t)  # NaN (no habit) compares False: ready at arrival
        dec = super().decide(replace(obs, active=act[ready]))
        # a job whose nominal start falls inside this slot starts then, to the second
        nom = obs.world.jobs.nominal_start_s[dec.job_idx] - obs.now_s
        fresh = ~obs.has_started[dec.job_idx] & (nom > 0) & (nom < obs.world.slot_duration_s)
        if fresh.any():
            dec.job_start_offset_s = np.where(fresh, nom, 0.0)
        return dec
