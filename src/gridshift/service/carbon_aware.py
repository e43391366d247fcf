"""The arithmetic of the Carbon Aware SDK–compatible read API (routes in
:mod:`gridshift.service.routes.carbon_aware`), as the Green Software Foundation's Carbon Aware SDK defines it
(``src/CarbonAware/src/Extensions/EmissionsDataExtensions.cs`` and ``GSF.CarbonAware/src/Handlers`` in
github.com/Green-Software-Foundation/carbon-aware-sdk):

- a data point ``(time, duration, rating)`` holds for ``[time, time + duration)``; points "in" a range
  ``[start, end]`` are those that overlap it (the one covering ``start`` when ``start == end``);
- *best*: every point with the lowest rating;
- *average over a period*: the time-weighted mean of the overlapping points, which must cover both ends;
- *rolling average* (``forecasts/current``): windows of ``windowSize`` starting at ``dataStartAt`` (or the
  first point) and moving by one point's duration, kept while the data cover the window and it ends by
  ``dataEndAt``; the optimal windows are those with the lowest mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Point:
    """One carbon-intensity value (g CO2e/kWh) of ``location`` for ``[time, time + duration)``."""

    location: str
    time: datetime
    duration: timedelta
    rating: float

    @property
    def end(self) -> datetime:
        return self.time + self.duration


def with_durations(location: str, times_values: list[tuple[datetime, float]],
                   default: timedelta = timedelta(hours=1)) -> list[Point]:
    """Points from stored ``(time, value)`` pairs in time order: each lasts until the next one (the last as
    long as the one before it, or ``default``)."""
    out = []
    for i, (t, v) in enumerate(times_values):
        if i + 1 < len(times_values):
            d = times_values[i + 1][0] - t
        else:
            d = out[-1].duration if out else default
        out.append(Point(location, t, d, float(v)))
    return out


def overlapping(points: list[Point], start: datetime, end: datetime) -> list[Point]:
    """The points that overlap ``[start, end]`` (the one covering ``start`` when ``start == end``)."""
    if start == end:
        return [p for p in points if p.time <= start < p.end]
    return [p for p in points if p.end > start and p.time < end]


def best(points: list[Point]) -> list[Point]:
    """Every point with the lowest rating."""
    if not points:
        return []
    low = min(p.rating for p in points)
    return [p for p in points if p.rating == low]


def average_over(points: list[Point], start: datetime, end: datetime) -> float:
    """The time-weighted mean rating over ``[start, end]``; ValueError when the points do not cover it."""
    if end <= start:
        raise ValueError("endTime must be after startTime")
    pts = overlapping(points, start, end)
    if not pts or pts[0].time > start or pts[-1].end < end:
        raise ValueError(f"Period out of range. Data points did not cover the requested average period: "
                         f"{start.isoformat()} through {end.isoformat()}")
    total = (end - start).total_seconds()
    return sum(p.rating * ((min(end, p.end) - max(start, p.time)).total_seconds() / total) for p in pts)


def rolling(points: list[Point], window: timedelta | None, start: datetime | None,
            end: datetime | None) -> list[Point]:
    """The forecast's points (or windows of ``window`` length and their mean) within ``[start, end]``."""
    if not points:
        return []
    if not window:
        lo = start or points[0].time
        hi = end or points[-1].end
        return [p for p in points if p.end > lo and p.time < hi] if lo != hi else overlapping(points, lo, hi)
    tick = points[0].duration
    w0 = max(start or points[0].time, points[0].time)
    last_end = points[-1].end
    out = []
    while w0 + window <= last_end and (end is None or w0 + window <= end):
        out.append(Point(points[0].location, w0, window, average_over(points, w0, w0 + window)))
        w0 += tick
    return out
