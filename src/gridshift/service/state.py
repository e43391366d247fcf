"""What the routes share: :class:`ApiState` (store, fleet, settings and the power figures), the fleet
description the app is built with, and the reconciler as the API sees it: any object with ``notify(reason)``
and ``status()``."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
from fastapi import FastAPI
from fastapi.encoders import jsonable_encoder

from gridshift.errors import GridShiftError
from gridshift.service.schemas import FleetOut, SiteOut, ZoneOut
from gridshift.service.settings import ApiSettings
from gridshift.service.store import Plan, Store
from gridshift.world import accounting as acc

log = logging.getLogger("gridshift.api")


def fleet_from_sites(sites: list[Any], zones: list[Any] | None = None, at: datetime | None = None) -> dict:
    """A plain fleet description from :class:`~gridshift.model.fleet.Site` (and ``Zone``) objects; a step
    series power cap gives the step in force at ``at`` (default now)."""
    at = at or datetime.now(UTC)
    out_sites = []
    for s in sites:
        cap = s.power_cap_mw
        if isinstance(cap, list):
            in_force = [st for st in cap if st.start <= at]
            cap = (in_force[-1] if in_force else cap[0]).power_cap_mw
        out_sites.append({"name": s.name, "zone": s.zone, "region": s.region, "pue": s.pue,
                          "power_cap_mw": float(cap),
                          "pools": [{"accelerator": p.accelerator, "count": p.count} for p in s.pools]})
    out_zones = [{"id": z.id, "carbon_basis": z.carbon_basis} for z in (zones or [])]
    return {"sites": out_sites, "zones": out_zones}


def fleet_model(fleet: Mapping[str, Any] | None) -> FleetOut:
    data = dict(fleet or {})
    sites = [SiteOut.model_validate(s) for s in data.get("sites", [])]
    zones = data.get("zones")
    if zones is None:
        zones = [{"id": z} for z in dict.fromkeys(s.zone for s in sites)]
    acc: dict[str, int] = {}
    for s in sites:
        for p in s.pools:
            acc[p.accelerator] = acc.get(p.accelerator, 0) + p.count
    return FleetOut(sites=sites, zones=[ZoneOut.model_validate(z) for z in zones], accelerators=acc)


def reconciler_status(reconciler: Any) -> dict[str, Any] | None:
    """The reconciler's status as JSON-ready data (None without a reconciler)."""
    if reconciler is None or not callable(getattr(reconciler, "status", None)):
        return None
    try:
        st = reconciler.status()
        return jsonable_encoder(st if isinstance(st, Mapping) else {"status": st})
    except Exception as exc:  # noqa: BLE001 (the reconciler's failure must not take the API down)
        return {"error": f"status() failed: {type(exc).__name__}: {exc}"}


def notify(app: FastAPI, reason: str) -> None:
    rec = app.state.reconciler
    if rec is None or not callable(getattr(rec, "notify", None)):
        return
    try:
        rec.notify(reason)
    except Exception:  # noqa: BLE001
        log.exception("reconciler.notify(%r) failed", reason)


def first_number(d: Mapping[str, Any] | None, *keys: str) -> float | None:
    for k in keys:
        v = (d or {}).get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            return float(v)
    return None


def _site_map(v: Any) -> dict[str, float] | None:
    if not isinstance(v, Mapping):
        return None
    try:
        return {str(k): float(x) for k, x in v.items()}
    except (TypeError, ValueError):
        return None


class ApiState:
    """What the routes share: store, fleet, reconciler, settings, catalog look-ups."""

    def __init__(self, store: Store, fleet: FleetOut, settings: ApiSettings) -> None:
        self.store = store
        self.fleet = fleet
        self.settings = settings
        self._power_w: dict[str, tuple[float, float]] = {}

    def accelerator_power_w(self, name: str) -> tuple[float, float]:
        """(board power, host power per accelerator) in W; (0, 0) for an unknown type."""
        if name not in self._power_w:
            from gridshift.catalog import get_accelerator

            try:
                a = get_accelerator(name)
                self._power_w[name] = (a.board_power_w, a.host_power_w)
            except GridShiftError:
                self._power_w[name] = (0.0, 0.0)
        return self._power_w[name]

    def plan_power(self, plan: Plan | None, now: datetime) -> dict[str, float]:
        """Facility power per site of the plan items in force at ``now``: the simulator's power formula
        (:func:`gridshift.world.accounting.pool_it_power_w`, board power × cap + host) × PUE."""
        pue = {s.name: s.pue for s in self.fleet.sites}
        out = dict.fromkeys(pue, 0.0)
        if plan is None:
            return out
        items = [i for i in plan.items if i.site and i.accelerator and i.gang
                 and (i.start_at is None or i.start_at <= now)]
        if not items:
            return out
        sites = [i.site for i in items]
        watts = np.array([self.accelerator_power_w(i.accelerator) for i in items]).reshape(-1, 2)
        gang = np.array([i.gang for i in items], dtype=float)
        cap = np.array([1.0 if i.power_cap_frac is None else i.power_cap_frac for i in items])
        site_pue = np.array([pue.get(s, 1.0) for s in sites])
        it_w = acc.pool_it_power_w(gang, gang, np.zeros_like(gang), np.zeros_like(gang), cap, watts[:, 0],
                                   np.zeros_like(gang), watts[:, 1])  # the items' accelerators, all busy
        mw = it_w * site_pue / 1e6
        for s, v in zip(sites, mw):
            out[s] = out.get(s, 0.0) + float(v)
        return out

    def power(self, reconciler: Any, status: dict[str, Any] | None = None,
              plan: Plan | None | Literal[False] = False) -> tuple[dict[str, float], str]:
        """Facility power per site (every fleet site listed) and where it comes from: the reconciler's
        ``site_power_mw``, else the plan summary's, else an estimate from the plan items in force."""
        zeros = {s.name: 0.0 for s in self.fleet.sites}
        st = reconciler_status(reconciler) if status is None else status
        got = _site_map((st or {}).get("site_power_mw"))
        if got is not None:
            return {**zeros, **got}, "reconciler"
        if plan is False:
            plan = self.store.current_plan()
        got = _site_map(plan.summary.get("site_power_mw")) if plan is not None else None
        if got is not None:
            return {**zeros, **got}, "plan"
        return self.plan_power(plan, datetime.now(UTC)), "plan"
