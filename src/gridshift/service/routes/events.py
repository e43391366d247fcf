"""Grid events: received (the same id again replaces it), listed by start time, cancelled."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from gridshift.model.events import GridEvent
from gridshift.service.checks import check_known, check_text
from gridshift.service.deps import EventId, GridOrOperator, StateDep, StoreDep, threaded
from gridshift.service.reconciler.isolate import quarantined_events
from gridshift.service.schemas import API_PREFIX, NAME_PATTERN, GridEventOut, error_responses, to_utc
from gridshift.service.state import notify
from gridshift.service.store import InvalidSpec

router = APIRouter(prefix=API_PREFIX, tags=["grid"])


@router.post("/events", response_model=GridEventOut, status_code=201,
             summary="Receive a grid event (the same id again replaces it)",
             responses={200: {"model": GridEventOut, "description": "An event with this id exists: replaced "
                                                                    "if its body changed, else unchanged."},
                        201: {"description": "A new event."}, **error_responses()})
@threaded
def post_event(request: Request, response: Response, body: GridEvent, store: StoreDep, state: StateDep,
               principal: GridOrOperator) -> GridEventOut:
    if not re.match(NAME_PATTERN, body.id):
        raise InvalidSpec("must be 1-200 printable characters without '/'", field="id")
    check_text(body.model_dump(mode="json"))
    if body.sites is not None:
        check_known(body.sites, (s.name for s in state.fleet.sites), "sites", "site")
    if body.zone is not None:
        check_known(body.zone, (z.id for z in state.fleet.zones), "zone", "zone")
    row, created = store.add_grid_event(body, source=f"api:{principal.role}:{principal.token_id}")
    if not created:
        response.status_code = 200
    notify(request.app, "grid event")
    return GridEventOut.of(row, quarantined_events(store).get(row.id))


@router.get("/events", response_model=list[GridEventOut], summary="Grid events by start time",
            responses=error_responses())
@threaded
def list_events(
    store: StoreDep,
    _: GridOrOperator,
    active_at: Annotated[datetime | None, Query(description="Only events in force at this time.")] = None,
    end_after: Annotated[datetime | None, Query(description="Only events ending after this time.")] = None,
    include_cancelled: bool = False,
) -> list[GridEventOut]:
    rows = store.grid_events(to_utc(active_at), end_after=to_utc(end_after), include_cancelled=include_cancelled)
    rejected = quarantined_events(store)
    return [GridEventOut.of(e, rejected.get(e.id)) for e in rows]


@router.delete("/events/{event_id}", response_model=GridEventOut, summary="Cancel a grid event",
               responses=error_responses(404))
@threaded
def cancel_event(request: Request, event_id: EventId, store: StoreDep, _: GridOrOperator) -> GridEventOut:
    row = store.cancel_grid_event(event_id)
    notify(request.app, "grid event cancelled")
    return GridEventOut.of(row)
