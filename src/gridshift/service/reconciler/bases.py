"""The live books under both carbon accountings, average and marginal, where the signals exist.

The reconciler's books (:mod:`gridshift.service.reconciler.counterfactual`) price each pass's facility power
with the planner's ``carbon_g_per_kwh`` — the signal that drives the decisions. Where a provider also
delivers the other kind for a zone (stored under its own name by the provider clocks), the same energy is
booked again under each basis, for the actual schedule and the ``asap`` counterfactual:

- **average**: ``carbon_lifecycle_g_per_kwh`` (Electricity Maps, life-cycle), else ``carbon_direct_g_per_kwh``,
  else ``aoer_g_per_kwh`` (WattTime's average operating emissions rate);
- **marginal**: ``moer_g_per_kwh`` (WattTime's marginal operating emissions rate).

Each pass's facility power is held until the next pass (as the main books do) and priced with the newest
stored value of each basis's signal no older than the hold time; intervals without one are left out of that
basis and show as less ``energy_mwh`` covered. Which basis drove the decisions is read from the source of the
planner's newest ``carbon_g_per_kwh`` value (``watttime/moer_g_per_kwh`` → marginal), else from the zone's
``carbon_basis`` (``lca``, ``direct`` → average; ``marginal``). Why both: docs/service/providers.md,
"Average or marginal?".
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from gridshift.model.fleet import Zone
from gridshift.model.time import S_PER_H

BASES: dict[str, tuple[str, ...]] = {
    "average": ("carbon_lifecycle_g_per_kwh", "carbon_direct_g_per_kwh", "aoer_g_per_kwh"),
    "marginal": ("moer_g_per_kwh",),
}
ZONE_BASIS = {"lca": "average", "direct": "average", "marginal": "marginal"}


def basis_of_signal(signal: str) -> str | None:
    """``average`` or ``marginal`` for a stored intensity's name (None: neither)."""
    return next((b for b, names in BASES.items() if signal in names), None)


def newest(store, zone: str, signal: str, now: datetime, hold_s: float):
    """The newest stored point of ``signal`` at most ``hold_s`` old at ``now`` (None: none)."""
    pts = store.signals_between(zone, signal, now - timedelta(seconds=hold_s), now + timedelta(seconds=1))
    pts = [p for p in pts if p.at <= now]
    return pts[-1] if pts else None


class BasisBooks:
    """Carbon of the actual schedule and of the counterfactual per zone and basis (see the module
    docstring). ``site_zones`` names each site's zone, in the fleet's site order."""

    def __init__(self, zones: Sequence[Zone], site_zones: Sequence[str]) -> None:
        self.zones = {z.id: z for z in zones}
        self.site_zones = np.array(list(site_zones), dtype=object)
        self.books: dict[str, dict[str, dict[str, Any]]] = {}
        self.drives: dict[str, dict[str, Any]] = {}
        self._prev: tuple[datetime, np.ndarray, np.ndarray, dict[tuple[str, str], tuple[str, float]]] | None = None

    def _intensities(self, store, now: datetime, hold_s: float) -> dict[tuple[str, str], tuple[str, float]]:
        out = {}
        for zone in self.zones:
            for basis, names in BASES.items():
                for name in names:
                    p = newest(store, zone, name, now, hold_s)
                    if p is not None and np.isfinite(p.value):
                        out[(zone, basis)] = (name, float(p.value))
                        break
        return out

    def _drives(self, store, now: datetime, hold_s: float) -> None:
        for zone, z in self.zones.items():
            p = newest(store, zone, "carbon_g_per_kwh", now, hold_s)
            signal = p.source.partition("/")[2] if p is not None and p.source and "/" in p.source else ""
            basis = basis_of_signal(signal)
            if basis is not None:
                self.drives[zone] = {"basis": basis, "signal": signal, "source": p.source}
            else:
                self.drives[zone] = {"basis": ZONE_BASIS.get(z.carbon_basis, "average"), "signal": "carbon_g_per_kwh",
                                     "source": (p.source if p is not None else None) or
                                     ("constant" if z.carbon_g_per_kwh is not None else f"registry ({z.carbon_basis})")}

    def step(self, store, now: datetime, actual_mw: np.ndarray, shadow_mw: np.ndarray, hold_s: float) -> None:
        """Book the interval since the last step with what it held, then hold this pass's power (MW per
        site, actual and counterfactual) and intensities until the next."""
        if self._prev is not None:
            at, a_mw, s_mw, ints = self._prev
            dt_h = max((now - at).total_seconds(), 0.0) / S_PER_H
            for (zone, basis), (name, g_per_kwh) in ints.items():
                sites = self.site_zones == zone
                e_a, e_s = float(a_mw[sites].sum()) * dt_h, float(s_mw[sites].sum()) * dt_h
                b = self.books.setdefault(zone, {}).setdefault(basis, {
                    "signal": name, "carbon_t": 0.0, "counterfactual_carbon_t": 0.0, "energy_mwh": 0.0})
                b["signal"] = name
                b["carbon_t"] += e_a * g_per_kwh / 1000.0
                b["counterfactual_carbon_t"] += e_s * g_per_kwh / 1000.0
                b["energy_mwh"] += e_a
        self._drives(store, now, hold_s)
        self._prev = (now, np.asarray(actual_mw, float).copy(), np.asarray(shadow_mw, float).copy(),
                      self._intensities(store, now, hold_s))

    def status(self) -> dict[str, dict[str, Any]]:
        """``{zone: {"drives": {basis, signal, source}, "average": {signal, carbon_t, counterfactual_carbon_t,
        energy_mwh}, "marginal": {…}}}`` for the zones with a stored average or marginal signal."""
        held = {z for z, _ in (self._prev[3] if self._prev else {})}
        return {zone: {"drives": self.drives.get(zone), **{b: dict(v) for b, v in self.books.get(zone, {}).items()}}
                for zone in self.zones if zone in self.books or zone in held}
