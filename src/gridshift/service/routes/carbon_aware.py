"""A Carbon Aware SDK–compatible read API: ``GET /emissions/bylocations``, ``/emissions/bylocations/best``,
``/emissions/forecasts/current`` and ``/emissions/average-carbon-intensity``, with the paths, query
parameters and answer shapes of the Green Software Foundation's Carbon Aware SDK Web API
(``src/CarbonAware.WebApi/src`` in github.com/Green-Software-Foundation/carbon-aware-sdk: the
``CarbonAwareController`` and the ``EmissionsData``, ``EmissionsForecastDTO``, ``EmissionsDataDTO`` and
``CarbonIntensityDTO`` bodies), so tools built on that API can read GridShift's signals.

``location`` is a GridShift zone. Observed values are the stored ``carbon_g_per_kwh`` (the signal that
drives planning in the zone). The current forecast is the newest forecast issued by the provider chosen for
the zone (``planning`` in the providers file) when there is one, else the stored ``carbon_g_per_kwh``
values from now on. Any token may read (the API's usual ``Authorization: Bearer``); with
``ApiSettings.public_carbon_aware`` no token is needed. Bad parameters answer 400 with the SDK's
``ValidationProblemDetails`` shape (``type``, ``title``, ``status``, ``errors``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from gridshift.model.time import utc_in_range
from gridshift.service.auth import require
from gridshift.service.carbon_aware import Point, average_over, best, overlapping, rolling, with_durations
from gridshift.service.deps import threaded
from gridshift.service.schemas import ZONE_PATTERN

router = APIRouter(prefix="/emissions", tags=["carbon-aware"],
                   dependencies=[Depends(require("tenant", "operator", "grid"))])
"""The read API for any token."""
public_router = APIRouter(prefix="/emissions", tags=["carbon-aware"])
"""The read API without a token (``ApiSettings.public_carbon_aware``)."""

SIGNAL = "carbon_g_per_kwh"
LOOKBACK = timedelta(hours=6)  # how far before a range a point may start and still cover it


class EmissionsData(BaseModel):
    """The SDK's ``GSF.CarbonAware.Models.EmissionsData`` as its Web API serialises it."""

    location: str
    time: datetime
    rating: float = Field(description="Carbon intensity, g CO2e/kWh.")
    duration: str = Field(description="How long the value holds, hh:mm:ss.")


class EmissionsDataDTO(BaseModel):
    """The SDK's ``EmissionsDataDTO``."""

    location: str
    timestamp: datetime
    duration: int = Field(description="Minutes.")
    value: float = Field(description="Carbon intensity, g CO2e/kWh.")


class EmissionsForecastDTO(BaseModel):
    """The SDK's ``EmissionsForecastDTO``."""

    generatedAt: datetime  # noqa: N815 (the SDK's field names)
    requestedAt: datetime  # noqa: N815
    location: str
    dataStartAt: datetime  # noqa: N815
    dataEndAt: datetime  # noqa: N815
    windowSize: int  # noqa: N815
    optimalDataPoints: list[EmissionsDataDTO]  # noqa: N815
    forecastData: list[EmissionsDataDTO]  # noqa: N815


class CarbonIntensityDTO(BaseModel):
    """The SDK's ``CarbonIntensityDTO``."""

    location: str
    startTime: datetime  # noqa: N815
    endTime: datetime  # noqa: N815
    carbonIntensity: float  # noqa: N815


class ValidationProblemDetails(BaseModel):
    """ASP.NET Core's ``ValidationProblemDetails``, the SDK's 400 answer."""

    type: str
    title: str
    status: int
    errors: dict[str, list[str]]


BAD = {400: {"model": ValidationProblemDetails, "description": "A parameter is missing or not valid."}}


class Invalid(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


def problem(field: str, message: str) -> JSONResponse:
    """A 400 answer in the SDK's ``ValidationProblemDetails`` shape."""
    return JSONResponse({"type": "https://tools.ietf.org/html/rfc7231#section-6.5.1",
                         "title": "One or more validation errors occurred.", "status": 400,
                         "errors": {field: [message]}}, status_code=400)


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def span_text(d: timedelta) -> str:
    """A duration as .NET serialises a ``TimeSpan`` (``hh:mm:ss``, days as ``d.hh:mm:ss``)."""
    s = int(d.total_seconds())
    days, rest = divmod(s, 86400)
    h, rest = divmod(rest, 3600)
    m, sec = divmod(rest, 60)
    return f"{days}.{h:02d}:{m:02d}:{sec:02d}" if days else f"{h:02d}:{m:02d}:{sec:02d}"


def parse_time(field: str, text: str | None) -> datetime | None:
    """An ISO 8601 time (naive = UTC) from 1970 to 2100, or :class:`Invalid` naming ``field``."""
    if text is None or text == "":
        return None
    try:
        t = pd.Timestamp(text)
        if pd.isna(t):
            raise ValueError(text)
        return utc_in_range(t.to_pydatetime())
    except (ValueError, TypeError, OverflowError):
        raise Invalid(field, f"The value '{text}' is not valid (an ISO 8601 time from 1970 to 2100).") from None


def locations(values: list[str] | None, field: str = "location") -> list[str]:
    import re

    if not values:
        raise Invalid(field, f"The {field} field is required.")
    for v in values:
        if not re.match(ZONE_PATTERN, v):
            raise Invalid(field, f"'{v}' is not a zone")
    return list(dict.fromkeys(values))


def observed(request: Request, zone: str, start: datetime, end: datetime) -> list[Point]:
    store = request.app.state.store
    pts = store.signals_between(zone, SIGNAL, start - LOOKBACK, end + timedelta(seconds=1))
    return with_durations(zone, [(p.at, p.value) for p in pts])


def forecast_as_of(request: Request, zone: str, now: datetime,
                   as_of: datetime | None = None) -> tuple[datetime, list[Point]]:
    """(generated at, points) of the newest forecast for ``zone`` issued by ``as_of`` (None: the newest of
    all; see the module docstring). Past forecasts (``as_of``) exist only as the provider's kept forecasts."""
    puller = getattr(request.app.state, "providers", None)
    chosen = puller.planning.get(zone) if puller is not None else None
    if chosen is not None and puller.forecast_dir is not None:
        path = puller.forecast_dir / chosen[0] / zone / f"{chosen[1]}.csv"
        if path.is_file():
            from gridshift.data.issued_forecasts import read_forecasts

            f = read_forecasts(path)
            if as_of is not None:
                f = f[f["issue_time"] <= pd.Timestamp(as_of)]
            if len(f):
                f = f[f["issue_time"] == f["issue_time"].max()].sort_values("target_time")
                pairs = [(t.to_pydatetime(), float(v)) for t, v in zip(f["target_time"], f["value"])]
                return f["issue_time"].max().to_pydatetime(), with_durations(zone, pairs)
    if as_of is not None:
        return as_of, []
    pts = request.app.state.store.signals_between(zone, SIGNAL, now - LOOKBACK, now + timedelta(days=3))
    points = [p for p in with_durations(zone, [(p.at, p.value) for p in pts]) if p.end > now]
    return now, points


def forecast_dto(request: Request, zone: str, now: datetime, requested: datetime, as_of: datetime | None,
                 start: datetime | None, end: datetime | None, window: timedelta | None) -> dict[str, Any]:
    """One ``EmissionsForecastDTO``; :class:`Invalid` when there is no forecast for ``zone``."""
    generated, pts = forecast_as_of(request, zone, now, as_of)
    if not pts:
        raise Invalid("location", f"no forecast for zone {zone}" + (f" issued by {iso(as_of)}" if as_of else ""))
    data = rolling(pts, window, start, end)
    return {"generatedAt": iso(generated), "requestedAt": iso(requested), "location": zone,
            "dataStartAt": iso(start or pts[0].time), "dataEndAt": iso(end or pts[-1].time),
            "windowSize": int(window.total_seconds() // 60) if window else 0,
            "optimalDataPoints": [dto_point(p) for p in best(data)], "forecastData": [dto_point(p) for p in data]}


def window_minutes(value: Any) -> timedelta | None:
    """``windowSize`` (minutes, 0 … a week; empty or 0: one data point) or :class:`Invalid`."""
    if value in (None, ""):
        return None
    text = str(value)
    if not text.isdigit() or int(text) > 7 * 24 * 60:
        raise Invalid("windowSize", f"The value '{value}' is not valid (minutes, at most a week).")
    return timedelta(minutes=int(text)) if int(text) > 0 else None


def data_point(p: Point) -> dict[str, Any]:
    """The SDK's ``EmissionsData`` (bylocations answers)."""
    return {"location": p.location, "time": iso(p.time), "rating": p.rating, "duration": span_text(p.duration)}


def dto_point(p: Point) -> dict[str, Any]:
    """The SDK's ``EmissionsDataDTO`` (forecast answers; duration in minutes)."""
    return {"location": p.location, "timestamp": iso(p.time), "duration": int(p.duration.total_seconds() // 60),
            "value": p.rating}


def _by_locations(request: Request, location: list[str] | None, time: str | None, to_time: str | None,
                  pick_best: bool) -> Response:
    try:
        zones = locations(location)
        start = parse_time("time", time)
        end = parse_time("toTime", to_time)
        if end is not None and start is None:
            raise Invalid("time", "Start time is required if end time is provided.")
        if start is not None and end is not None and end < start:
            raise Invalid("toTime", "End time must be after start time.")
    except Invalid as e:
        return problem(e.field, e.message)
    start = start or datetime.now(UTC)
    end = end or start
    pts = [p for z in zones for p in overlapping(observed(request, z, start, end), start, end)]
    if pick_best:
        pts = best(pts)
    return JSONResponse([data_point(p) for p in pts]) if pts else Response(status_code=204)


Locations = Annotated[list[str] | None, Query(description="Zone(s), repeatable.")]


@threaded
def by_locations(request: Request, location: Locations = None, time: str | None = None,
                 toTime: str | None = None) -> Response:  # noqa: N803 (the SDK's parameter name)
    return _by_locations(request, location, time, toTime, pick_best=False)


@threaded
def by_locations_best(request: Request, location: Locations = None, time: str | None = None,
                      toTime: str | None = None) -> Response:  # noqa: N803
    return _by_locations(request, location, time, toTime, pick_best=True)


@threaded
def forecasts_current(request: Request, location: Locations = None, dataStartAt: str | None = None,  # noqa: N803
                      dataEndAt: str | None = None, windowSize: str | None = None) -> Response:  # noqa: N803
    now = datetime.now(UTC)
    try:
        zones = locations(location)
        start, end = parse_time("dataStartAt", dataStartAt), parse_time("dataEndAt", dataEndAt)
        if start is not None and end is not None and end < start:
            raise Invalid("dataEndAt", "dataEndAt must be after dataStartAt.")
        window = window_minutes(windowSize)
        out = [forecast_dto(request, z, now, now, None, start, end, window) for z in zones]
    except Invalid as e:
        return problem(e.field, e.message)
    return JSONResponse(out)


def _items(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, list) or not body or not all(isinstance(x, dict) for x in body):
        raise Invalid("requests", "The body must be a non-empty array of request objects.")
    if len(body) > 100:
        raise Invalid("requests", "At most 100 requests in one batch.")
    return body


@threaded
def forecasts_batch(request: Request, body: Annotated[Any, Body()] = None) -> Response:
    """The forecasts that were current at each ``requestedAt`` (the provider's kept forecasts)."""
    now = datetime.now(UTC)
    try:
        out = []
        for item in _items(body):
            zone = locations([item["location"]] if isinstance(item.get("location"), str) else None)[0]
            requested = parse_time("requestedAt", _text(item.get("requestedAt")))
            if requested is None:
                raise Invalid("requestedAt", "The requestedAt field is required.")
            start = parse_time("dataStartAt", _text(item.get("dataStartAt")))
            end = parse_time("dataEndAt", _text(item.get("dataEndAt")))
            if start is not None and end is not None and end < start:
                raise Invalid("dataEndAt", "dataEndAt must be after dataStartAt.")
            out.append(forecast_dto(request, zone, now, requested, requested, start, end,
                                    window_minutes(item.get("windowSize"))))
    except Invalid as e:
        return problem(e.field, e.message)
    return JSONResponse(out)


def _text(v: Any) -> str | None:
    return None if v is None else str(v)


@threaded
def average_batch(request: Request, body: Annotated[Any, Body()] = None) -> Response:
    try:
        out = []
        for item in _items(body):
            zone = locations([item["location"]] if isinstance(item.get("location"), str) else None)[0]
            start, end = parse_time("startTime", _text(item.get("startTime"))), parse_time("endTime", _text(item.get("endTime")))
            out.append(_average(request, zone, start, end))
    except Invalid as e:
        return problem(e.field, e.message)
    return JSONResponse(out)


def _average(request: Request, zone: str, start: datetime | None, end: datetime | None) -> dict[str, Any]:
    if start is None:
        raise Invalid("startTime", "The startTime field is required.")
    if end is None:
        raise Invalid("endTime", "The endTime field is required.")
    try:
        value = average_over(observed(request, zone, start, end), start, end)
    except ValueError as e:
        raise Invalid("location", str(e)) from None
    return {"location": zone, "startTime": iso(start), "endTime": iso(end), "carbonIntensity": value}


@threaded
def average_carbon_intensity(request: Request, location: str | None = None, startTime: str | None = None,  # noqa: N803
                             endTime: str | None = None) -> Response:  # noqa: N803
    try:
        zone = locations([location] if location else None)[0]
        out = _average(request, zone, parse_time("startTime", startTime), parse_time("endTime", endTime))
    except Invalid as e:
        return problem(e.field, e.message)
    return JSONResponse(out)


@threaded
def by_location(request: Request, location: str | None = None, time: str | None = None,
                toTime: str | None = None) -> Response:  # noqa: N803
    return _by_locations(request, [location] if location else None, time, toTime, pick_best=False)


OK_204 = {204: {"description": "No data in the range."}}
for _router in (router, public_router):
    _router.add_api_route("/bylocations", by_locations, methods=["GET"], response_model=list[EmissionsData],
                          responses={**OK_204, **BAD},
                          summary="Observed carbon intensity of zones over a time range (Carbon Aware SDK shape)")
    _router.add_api_route("/bylocations/best", by_locations_best, methods=["GET"], response_model=list[EmissionsData],
                          responses={**OK_204, **BAD},
                          summary="The lowest observed carbon intensity among zones (Carbon Aware SDK shape)")
    _router.add_api_route("/forecasts/current", forecasts_current, methods=["GET"],
                          response_model=list[EmissionsForecastDTO], responses=BAD,
                          summary="The current forecast and its optimal windows (Carbon Aware SDK shape)")
    _router.add_api_route("/average-carbon-intensity", average_carbon_intensity, methods=["GET"],
                          response_model=CarbonIntensityDTO, responses=BAD,
                          summary="Time-weighted average carbon intensity (Carbon Aware SDK shape)")
    _router.add_api_route("/bylocation", by_location, methods=["GET"], response_model=list[EmissionsData],
                          responses={**OK_204, **BAD},
                          summary="Observed carbon intensity of one zone (Carbon Aware SDK shape)")
    _router.add_api_route("/forecasts/batch", forecasts_batch, methods=["POST"],
                          response_model=list[EmissionsForecastDTO], responses=BAD,
                          summary="The forecasts current at past times, from the kept forecasts (Carbon Aware SDK shape)")
    _router.add_api_route("/average-carbon-intensity/batch", average_batch, methods=["POST"],
                          response_model=list[CarbonIntensityDTO], responses=BAD,
                          summary="Time-weighted averages of several windows (Carbon Aware SDK shape)")
