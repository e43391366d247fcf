"""Failure isolation for the reconciler: one job or grid event must never stop planning for everyone.

A pass plans every live job under every grid event at once, so a single item the planner cannot take (a row
written around the API's checks, an event for a site the fleet no longer has, a value that overflows a
planner's arrays) would fail every pass. Two steps keep the rest planning:

1. Per-item checks before planning (:func:`bad_event`; a job row must become a
   :class:`~gridshift.model.workload.Job`): an item that fails them is quarantined at once.
2. When planning with the items that passed still fails, :func:`find_culprits` bisects: it looks for the
   shortest prefix of the items (events first, then jobs in submission order) that fails while one item
   fewer plans, quarantines the item at the boundary, and repeats until the rest plans (at most
   ``MAX_CULPRITS`` per pass). If planning fails even with no items, the fault is not an item's (no signals,
   a broken fleet): nothing is quarantined and the pass fails as before.

A quarantined job is failed (``failure_reason`` starts with ``quarantined:``; a running one is stopped), so its
owner sees why. A quarantined grid event stays stored; the reconciler skips it and the API shows it as
``rejected`` with the reason, until the grid sends a changed body (a new revision), which is tried again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from gridshift.model.events import GridEvent
from gridshift.model.scenario import Scenario
from gridshift.model.time import as_utc
from gridshift.service.store import GridEventRow, Store

T = TypeVar("T")
log = logging.getLogger("gridshift.reconciler")

MAX_CULPRITS = 8  # items quarantined by bisection in one pass; more: the pass fails and the next goes on
QUARANTINED_EVENTS_KEY = "quarantined_events"
MAX_QUARANTINED_EVENTS = 1000  # kept in the setting (the oldest go first)
QUARANTINE_PREFIX = "quarantined: "


@dataclass(frozen=True)
class Culprit:
    """An item planning failed with: its kind (``job`` or ``event``), id and the error, as one line."""

    kind: str
    id: str
    reason: str


def one_line(err: BaseException | str, limit: int = 500) -> str:
    text = err if isinstance(err, str) else f"{type(err).__name__}: {err}"
    return " ".join(text.split())[:limit]


def find_culprits(items: Sequence[T], attempt: Callable[[Sequence[T]], Any],
                  max_culprits: int = MAX_CULPRITS) -> tuple[Any, list[tuple[T, BaseException]]]:
    """Run ``attempt(items)``; if it raises, remove culprits until it does not. Returns (the successful
    attempt's result, [(culprit, the error it caused)]).

    A culprit is found by bisection over prefixes: ``items[:lo]`` plans and ``items[:hi]`` fails; the
    boundary item ``items[hi - 1]`` is one the planner fails with, given the items before it. That takes
    about log2(n) attempts per culprit. Raises the first error if even ``attempt([])`` fails (the fault is
    not an item's), and the last error if more than ``max_culprits`` culprits would be needed."""
    rest = list(items)
    try:
        return attempt(rest), []
    except Exception as e:  # noqa: BLE001 (any failure may be an item's)
        err: BaseException = e
    try:
        attempt([])
    except Exception:  # noqa: BLE001
        raise err from None
    found: list[tuple[T, BaseException]] = []
    while True:
        lo, hi = 0, len(rest)  # rest[:lo] plans, rest[:hi] fails with hi_err
        hi_err = err
        while hi - lo > 1:
            mid = (lo + hi) // 2
            try:
                attempt(rest[:mid])
                lo = mid
            except Exception as e:  # noqa: BLE001
                hi, hi_err = mid, e
        found.append((rest.pop(hi - 1), hi_err))
        try:
            return attempt(rest), found
        except Exception as e:  # noqa: BLE001
            if len(found) >= max_culprits:
                raise
            err = e


def bad_event(event: GridEvent, fleet: Scenario) -> str | None:
    """Why the planner cannot take ``event`` on ``fleet`` (None: it can): sites or a zone the fleet lacks."""
    if event.sites is not None:
        known = {s.name for s in fleet.sites}
        missing = [s for s in event.sites if s not in known]
        if missing:
            return f"unknown site '{missing[0][:80]}' (the fleet has: {', '.join(sorted(known))})"
    if event.zone is not None and event.zone not in {z.id for z in fleet.zones}:
        return f"unknown zone '{event.zone[:80]}'"
    return None


def quarantined_events(store: Store) -> dict[str, dict[str, Any]]:
    """Event id -> {revision, reason, at} of the grid events the reconciler set aside."""
    return dict((store.get_setting(QUARANTINED_EVENTS_KEY) or {}).get("events", {}))


def is_quarantined(row: GridEventRow, table: dict[str, dict[str, Any]]) -> bool:
    """The row's revision was set aside (a later revision is tried again)."""
    q = table.get(row.id)
    return q is not None and q.get("revision") == row.revision


def quarantine_events(store: Store, culprits: Sequence[tuple[str, int, str]], now: datetime) -> None:
    """Set aside events ``(id, revision, reason)``; the setting keeps the newest ``MAX_QUARANTINED_EVENTS``."""
    if not culprits:
        return
    table = quarantined_events(store)
    for eid, revision, reason in culprits:
        table.pop(eid, None)
        table[eid] = {"revision": int(revision), "reason": one_line(reason), "at": as_utc(now).isoformat()}
    keep = sorted(table.items(), key=lambda kv: kv[1].get("at", ""))[-MAX_QUARANTINED_EVENTS:]
    store.put_setting(QUARANTINED_EVENTS_KEY, {"events": dict(keep)}, actor=None)


def usable_events(store: Store, fleet: Scenario, t0: datetime
                  ) -> tuple[list[GridEventRow], list[Culprit], dict[str, int]]:
    """(the stored grid events ending after ``t0`` that the planner takes, the ones to quarantine now — an
    unreadable body, a site or zone ``fleet`` lacks —, their revisions). Events quarantined before are left
    out."""
    unreadable: list = []
    grid = store.grid_events(end_after=t0, unreadable=unreadable)
    if not grid and not unreadable:
        return grid, [], {}
    table = quarantined_events(store)
    unreadable = [u for u in unreadable if table.get(u[0], {}).get("revision") != u[1]]
    revisions = {eid: rev for eid, rev, _ in unreadable}
    bad = [Culprit("event", eid, f"the stored event is not a valid event: {one_line(err)}")
           for eid, _, err in unreadable]
    out = []
    for g in grid:
        if is_quarantined(g, table):
            continue
        why = bad_event(g.event, fleet)
        if why is None:
            out.append(g)
        else:
            bad.append(Culprit("event", g.id, why))
            revisions[g.id] = g.revision
    return out, bad, revisions


def quarantine(store: Store, culprits: Sequence[Culprit], now: datetime, revisions: dict[str, int]
               ) -> list[dict[str, Any]]:
    """Fail the culprit jobs (with the reason; a running one is stopped) and set aside the culprit events
    (their revision in ``revisions``). Returns what was done, newest first, for the reconciler's status."""
    for c in culprits:
        log.error("quarantined %s %s: %s", c.kind, c.id, c.reason)
        if c.kind == "job":
            store.quarantine_job(c.id, c.reason)
    quarantine_events(store, [(c.id, revisions.get(c.id, 0), c.reason) for c in culprits if c.kind == "event"], now)
    return [{"kind": c.kind, "id": c.id, "reason": c.reason, "at": as_utc(now).isoformat()} for c in culprits]
