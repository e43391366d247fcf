"""Providers' issued forecasts in the live planner, and the record of which forecast drove each plan.

The reconciler asks its ``forecast_source`` (the service's
:class:`~gridshift.service.provider_forecasts.ProviderForecasts`, or any callable ``now -> {zone: choice}``
whose choices have ``zone``, ``signal``, ``provider``, ``provider_signal``, ``source``, ``reason``,
``issue_time`` and ``table``) at every fresh plan. For ``mpc``, the zones whose choice is ``provider`` plan
on that forecast (:class:`~gridshift.forecast.issued_overlay.IssuedOverlay` over the policy's own model);
the others on the policy's own model, with the reason. Policies that do not forecast (``asap``,
``threshold``) record no forecast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from gridshift.forecast.issued_overlay import IssuedOverlay
from gridshift.forecast.simple import Perfect
from gridshift.plan.base import Policy

FORECAST_SIGNALS = ("carbon_g_per_kwh", "price_usd_per_mwh")


def _own_entry(own: str, reason: str) -> dict[str, Any]:
    return {"forecast": own, "source": "own", "reason": reason}


def use_provider_forecasts(policy: Policy, zones: Iterable[str], source: Callable[[datetime], dict] | None,
                           now: datetime, slot_s: int) -> dict[str, dict[str, dict[str, Any]]]:
    """Point ``policy`` (if it is ``mpc``) at the fresh provider forecasts ``source`` gives at ``now``; return
    ``{zone: {signal: {"forecast", "source", "reason", …}}}`` (empty for a policy that does not forecast). The
    record is kept on the policy as ``forecast_sources`` and completed by :func:`forecast_record`."""
    forecaster = getattr(policy, "forecaster", None)
    if policy.name != "mpc" or forecaster is None:
        policy.forecast_sources = {}
        return policy.forecast_sources
    own = forecaster.name
    choices = source(now) if source is not None else {}
    blocked = None
    if isinstance(forecaster, Perfect):
        blocked = "the policy forecasts with 'perfect'"
    elif getattr(policy, "risk_quantile", None) is not None or getattr(policy, "habit_spread", None) == "quantiles":
        blocked = "the policy needs its own model's quantiles (risk_quantile or habit_spread 'quantiles')"
    out: dict[str, dict[str, dict[str, Any]]] = {}
    tables = {}
    for zone in zones:
        out[zone] = {s: _own_entry(own, "no provider forecast configured for this zone") for s in FORECAST_SIGNALS}
        c = choices.get(zone)
        if c is None:
            continue
        entry = {"provider": c.provider, "provider_signal": c.provider_signal,
                 "issue_time": None if c.issue_time is None else c.issue_time.isoformat()}
        if c.source == "provider" and blocked is None and c.table is not None:
            tables[(zone, c.signal)] = c.table
            entry.update(forecast=f"{c.provider}/{c.provider_signal}", source="provider", reason=c.reason)
        else:
            entry.update(_own_entry(own, blocked or c.reason))
        out[zone][c.signal] = entry
    if tables:
        base = forecaster.base if isinstance(forecaster, IssuedOverlay) else forecaster
        policy.forecaster = IssuedOverlay(base, tables, issue_slack_s=slot_s)
        policy.forecast_key = f"issued@{now.isoformat()}:{getattr(policy, 'forecast_key', own)}"
    policy.forecast_sources = out
    return out


def forecast_record(policy: Policy) -> dict[str, dict[str, dict[str, Any]]]:
    """The policy's ``forecast_sources`` with what its forecaster took: for a provider's forecast, the leads
    it covered in the last plan (``leads`` of ``horizon_slots``); one that covered none falls back to the own
    model, with that reason."""
    rec = getattr(policy, "forecast_sources", None) or {}
    fc = getattr(policy, "forecaster", None)
    used = fc.used if isinstance(fc, IssuedOverlay) else {}
    own = fc.base.name if isinstance(fc, IssuedOverlay) else getattr(fc, "name", None)
    for zone, by_signal in rec.items():
        for signal, e in by_signal.items():
            if e["source"] != "provider":
                continue
            u = used.get((zone, signal))
            if u is None:
                continue  # not forecast yet (no active job): the choice stands
            e.update(leads=u["leads"], horizon_slots=u["horizon"])
            if not u["leads"]:
                e.update(_own_entry(own, "the provider's forecast covers no slot of the horizon"))
    return rec


def labels(rec: dict[str, dict[str, dict[str, Any]]]) -> dict[str, str]:
    """``{zone: label}`` of what forecast each zone's planning signal, for plan items: the provider's
    ``provider/signal`` or the own model's name (price, never from a provider here unless chosen, is the own
    model's)."""
    out = {}
    for zone, by_signal in rec.items():
        chosen = next((e for e in by_signal.values() if e.get("provider")), by_signal.get("carbon_g_per_kwh"))
        if chosen is not None:
            out[zone] = chosen["forecast"]
    return out


def annotate(items: list[dict[str, Any]], policy: Policy, world, obs, job_ids: list[str]) -> None:
    """Add to each plan item what forecast its decision was made on (``why.forecasts``: ``{zone: label}``)
    and, for a job left waiting, the start the plan holds for it (``why.planned_start_at``) where the
    policy says (``mpc``)."""
    rec = forecast_record(policy)
    lab = labels(rec)
    planned = getattr(policy, "planned_start_slot", None)
    row = {jid: i for i, jid in enumerate(job_ids)}
    for it in items:
        why = it.setdefault("why", {})
        if lab:
            why["forecasts"] = lab
        if planned is not None and why.get("action") == "wait" and it["job_id"] in row:
            slot = planned(obs, row[it["job_id"]])
            if slot is not None and 0 <= slot < len(world.slot_starts):
                why["planned_start_at"] = world.slot_starts[slot].isoformat()
