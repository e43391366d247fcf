"""DR shedding of whole idle nodes, for executors that offer it (the Slurm executor with ``power_save``:
Slurm's power saving): which sites a grid event asks for less power now, and the executor's node step, made
once a pass after the jobs' actions; its decisions go into the pass's plan summary (``node_power``) and the
reconciler's status. A failing step is noted, never fatal to the pass."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from gridshift.model.events import GridEvent
from gridshift.model.scenario import Scenario
from gridshift.model.time import as_utc
from gridshift.service.executors.base import Executor, ExecutorError


def shedding_sites(fleet: Scenario, events: Sequence[GridEvent], now: datetime) -> dict[str, str]:
    """``{site: event id}`` of the sites a power request (``limit``, ``cut``, ``emergency``; not a price or
    carbon event) covers at ``now`` (several: the first id in order)."""
    out: dict[str, str] = {}
    for e in sorted(events, key=lambda e: e.id):
        if e.is_power_request and as_utc(e.start) <= now < as_utc(e.end):
            for site in e.sites or [s.name for s in fleet.sites if s.zone == e.zone]:
                out.setdefault(site, e.id)
    return out


def node_power_step(executor: Executor, fleet: Scenario, events: Sequence[GridEvent], now: datetime,
                    on_error: Callable[[str], None]) -> list[dict[str, Any]]:
    """The executor's node step for the events in force (none for an executor without one)."""
    step = getattr(executor, "shed_idle_nodes", None)
    if step is None:
        return []
    try:
        return list(step(shedding_sites(fleet, events, now), now))
    except ExecutorError as e:
        on_error(f"node power: {e}")
        return []


__all__ = ["node_power_step", "shedding_sites"]
