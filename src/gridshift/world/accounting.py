"""Power, energy, carbon and cost accounting for one slot. Pure array functions shared by the engine and
by anyone who needs the same numbers (the live service, tests).

Units: power in W per accelerator and MW per site; energy MWh; carbon intensity g/kWh; price $/MWh.
carbon_t = energy_mwh × carbon_g_per_kwh / 1000 (1 MWh × 1 g/kWh = 1 kg).
"""

from __future__ import annotations

import numpy as np


def pool_it_power_w(
    count: np.ndarray,
    busy_acc: np.ndarray,
    serving_acc: np.ndarray,
    serving_w: np.ndarray,
    cap_frac: np.ndarray,
    board_w: np.ndarray,
    idle_w: np.ndarray,
    host_w: np.ndarray,
) -> np.ndarray:
    """IT power per pool, W.

    ``busy_acc`` are accelerator-slot-fractions running batch work (each drawing board power × cap),
    ``serving_acc`` accelerators serving inference drawing ``serving_w`` in total; the rest idle. Every
    accelerator adds ``host_w`` of server overhead.
    """
    idle_acc = np.maximum(count - busy_acc - serving_acc, 0.0)
    return busy_acc * board_w * cap_frac + serving_w + idle_acc * idle_w + count * host_w


def site_power_mw(pool_w: np.ndarray, pool_site: np.ndarray, n_sites: int, pue: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(IT MW, facility MW) per site from IT W per pool."""
    it_mw = np.bincount(pool_site, weights=pool_w, minlength=n_sites) / 1e6
    return it_mw, it_mw * pue


def energy_mwh(power_mw: np.ndarray, slot_h: float) -> np.ndarray:
    return power_mw * slot_h


def carbon_t(energy: np.ndarray, carbon_g_per_kwh: np.ndarray) -> np.ndarray:
    return energy * carbon_g_per_kwh / 1000.0


def cost_usd(energy: np.ndarray, price_usd_per_mwh: np.ndarray) -> np.ndarray:
    return energy * price_usd_per_mwh


def cap_violation_mwh(facility_mw: np.ndarray, cap_mw: np.ndarray, slot_h: float) -> np.ndarray:
    """Energy drawn above the site's power cap in the slot."""
    return np.maximum(facility_mw - cap_mw, 0.0) * slot_h


def serve(demand_rps: np.ndarray, capacity_rps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Route demand [N, R] over replica capacity [N, R, P]: served [N, R] = min(demand, capacity), and the
    load [N, R, P] each pool carries, split in proportion to capacity."""
    total = capacity_rps.sum(axis=2)
    served = np.minimum(demand_rps, total)
    share = np.divide(served, total, out=np.zeros_like(served), where=total > 0)
    return served, capacity_rps * share[:, :, None]
