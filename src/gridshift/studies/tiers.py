"""A scenario's flexibility-tier mix, as shares of the energy its work would draw: batch jobs weighted by
their work and the board power of the type they run fastest on, inference services by their mean demand
and the power it takes. Used to join a site's workload with grid headroom."""

from __future__ import annotations

import numpy as np

from gridshift.model.events import N_TIERS
from gridshift.world.arrays import World


def tier_energy_shares(world: World) -> np.ndarray:
    """[4] share of the scenario's work energy in each flexibility tier (sums to 1)."""
    f, jt, svc = world.fleet, world.jobs, world.services
    out = np.zeros(N_TIERS)
    if len(jt):
        k = f.pool_type
        per_work_w = np.where(jt.speed[:, k] > 0, f.board_power_w[k][None, :] / np.maximum(jt.speed[:, k], 1e-12),
                              np.inf).min(axis=1)  # W per reference accelerator on the job's best pool type
        np.add.at(out, jt.tier, jt.work_acc_h * np.where(np.isfinite(per_work_w), per_work_w, 0.0))
    if svc.n:
        w_per_rps = np.where(svc.capacity_rps > 0, svc.power_w / np.maximum(svc.capacity_rps, 1e-12), np.inf).min(axis=1)
        energy = svc.demand_rps.sum(axis=1).mean(axis=1) * np.where(np.isfinite(w_per_rps), w_per_rps, 0.0)
        tiers = np.ones(svc.n, np.int64) if svc.tier is None else svc.tier
        np.add.at(out, tiers, energy * world.n_slots * world.slot_h)
    total = out.sum()
    return out / total if total > 0 else out


def main_accelerator(world: World) -> str:
    """The accelerator type with the most units in the fleet."""
    f = world.fleet
    counts = np.bincount(f.pool_type, weights=f.pool_count, minlength=len(f.type_names))
    return f.type_names[int(np.argmax(counts))]
