"""Grid signal values: pushed by the grid or an operator, read by window, and pulled from the data
registry (or a signal file) on request."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request

from gridshift.service.checks import check_known, check_text, check_window
from gridshift.service.deps import GridOrOperator, Operator, SettingsDep, StateDep, StoreDep, threaded
from gridshift.service.schemas import (
    API_PREFIX,
    SIGNAL_PATTERN,
    ZONE_PATTERN,
    PullOut,
    PullRequest,
    SignalBatch,
    SignalOut,
    SignalsStored,
    error_responses,
    to_utc,
)
from gridshift.service.signal_pull import pull_registry, signal_file
from gridshift.service.state import notify

router = APIRouter(prefix=API_PREFIX, tags=["grid"])


@router.post("/signals", response_model=SignalsStored, summary="Push grid signal values", responses=error_responses())
@threaded
def post_signals(request: Request, body: SignalBatch, store: StoreDep, state: StateDep,
                 principal: GridOrOperator) -> SignalsStored:
    zones = {z.id for z in state.fleet.zones}
    for i, s in enumerate(body.rows):
        check_known(s.zone, zones, f"rows.{i}.zone", "zone")
    rows = [{"zone": s.zone, "signal": s.signal, "at": s.time, "value": s.value, "source": s.source}
            for s in body.rows]
    check_text(rows, "rows")
    n = store.upsert_signals(rows)
    notify(request.app, "signals")
    return SignalsStored(rows=n)


@router.get("/signals", response_model=list[SignalOut], summary="Stored signal values", responses=error_responses())
@threaded
def get_signals(
    zone: Annotated[str, Query(pattern=ZONE_PATTERN)],
    signal: Annotated[str, Query(pattern=SIGNAL_PATTERN)],
    start: Annotated[datetime, Query(description="Window start (UTC).")],
    end: Annotated[datetime, Query(description="Window end (UTC, exclusive).")],
    store: StoreDep,
    _: Operator,
) -> list[SignalOut]:
    start, end = to_utc(start), to_utc(end)
    check_window(start, end)
    pts = store.signals_between(zone, signal, start, end)
    return [SignalOut(zone=p.zone, signal=p.signal, time=p.at, value=p.value, source=p.source) for p in pts]


@router.post("/signals/pull", response_model=PullOut,
             summary="Pull a zone's signals from the data registry into the store", responses=error_responses())
@threaded
def pull_signals(request: Request, body: PullRequest, store: StoreDep, settings: SettingsDep, _: Operator) -> PullOut:
    check_window(body.start, body.end)
    path = None if body.file is None else signal_file(settings, body.file)
    counts = pull_registry(store, body.zone, body.signals, body.start, body.end, body.shift_s, path=path)
    if sum(counts.values()):
        notify(request.app, "signals")
    return PullOut(zone=body.zone, start=body.start, end=body.end, rows=counts)
