"""Grid events (curtailment, power caps, signal overrides) as received: stored, replaced by id, cancelled."""

from __future__ import annotations

import logging
from datetime import datetime

from pydantic import ValidationError
from sqlalchemy import insert, select, update

from gridshift.model.events import GridEvent
from gridshift.service.store.base import GRID_EVENTS, NotFound, StoreBase, _utc, _validation_error, utcnow
from gridshift.service.store.rows import GridEventRow, _grid_event

log = logging.getLogger("gridshift.store")


class GridEventStore(StoreBase):
    """Grid events: :meth:`add_grid_event`, :meth:`cancel_grid_event`, :meth:`grid_events`."""

    def add_grid_event(self, event: GridEvent, source: str) -> tuple[GridEventRow, bool]:
        """Store a grid event; returns (row, created). The same id again replaces the event if its body
        changed (``revision`` + 1, active again) and is a no-op otherwise."""
        if not isinstance(event, GridEvent):
            try:
                event = GridEvent.model_validate(event)
            except ValidationError as exc:
                raise _validation_error("grid event", exc) from None
        body = event.model_dump(mode="json")
        now = utcnow()
        with self._tx() as conn:
            row = conn.execute(select(GRID_EVENTS).where(GRID_EVENTS.c.id == event.id).with_for_update()
                               ).mappings().first()
            if row is None:
                values = {"id": event.id, "body": body, "start_at": event.start, "end_at": event.end,
                          "received_at": now, "updated_at": now, "source": source, "status": "active",
                          "revision": 1}
                conn.execute(insert(GRID_EVENTS), values)
                return _grid_event(values), True
            if row["body"] == body and row["status"] == "active":
                return _grid_event(row), False
            values = {"body": body, "start_at": event.start, "end_at": event.end, "updated_at": now,
                      "source": source, "status": "active", "revision": row["revision"] + 1}
            conn.execute(update(GRID_EVENTS).where(GRID_EVENTS.c.id == event.id).values(**values))
            return _grid_event({**row, **values}), False

    def cancel_grid_event(self, event_id: str) -> GridEventRow:
        with self._tx() as conn:
            res = conn.execute(update(GRID_EVENTS).where(GRID_EVENTS.c.id == event_id)
                               .values(status="cancelled", updated_at=utcnow()))
            if res.rowcount != 1:
                raise NotFound(f"no grid event '{event_id}'")
            return _grid_event(conn.execute(select(GRID_EVENTS).where(GRID_EVENTS.c.id == event_id)).mappings().one())

    def grid_events(self, active_at: datetime | None = None, *, end_after: datetime | None = None,
                    include_cancelled: bool = False, unreadable: list | None = None) -> list[GridEventRow]:
        """Grid events by start time: those in force at ``active_at`` (start <= t < end), and/or those
        ending after ``end_after`` (in force or upcoming); cancelled ones only if asked. A stored body that
        is no longer a valid event (written around the API) is left out, and ``(id, revision, error)`` added
        to ``unreadable`` if given."""
        q = select(GRID_EVENTS)
        if not include_cancelled:
            q = q.where(GRID_EVENTS.c.status == "active")
        if active_at is not None:
            t = _utc(active_at, "active_at")
            q = q.where(GRID_EVENTS.c.start_at <= t, GRID_EVENTS.c.end_at > t)
        if end_after is not None:
            q = q.where(GRID_EVENTS.c.end_at > _utc(end_after, "end_after"))
        with self._tx(readonly=True) as conn:
            rows = conn.execute(q.order_by(GRID_EVENTS.c.start_at, GRID_EVENTS.c.id)).mappings().all()
        out = []
        for r in rows:
            try:
                out.append(_grid_event(r))
            except (ValidationError, TypeError, ValueError) as exc:
                log.warning("grid event %r: stored body unreadable: %s", r["id"], exc)
                if unreadable is not None:
                    unreadable.append((r["id"], r["revision"], f"{type(exc).__name__}: {exc}"))
        return out
