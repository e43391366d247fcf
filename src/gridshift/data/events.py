"""Read grid events from a CSV file: one row per event, columns named like :class:`GridEvent`'s fields
(``sites`` lists site names separated by ``;``). Errors name the file, the line and the field.

``start`` and ``end`` are instants: each carries its UTC offset (``2023-08-15T12:00:00Z``, ``...+02:00``), or
the row's ``tz`` column names the IANA zone (or ``UTC``) its local times are in. A local time that does not
exist in that zone (skipped by a daylight-saving change) or exists twice (repeated by one) is refused, as is a
time without an offset and without a ``tz``: a utility's file in local time is never silently read as UTC.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError

from gridshift.errors import ScenarioError
from gridshift.model.events import GridEvent

_NUMERIC = ("notice_s", "limit_mw", "cut_frac", "cut_mw", "baseline_mw", "respond_within_s", "price_usd_per_mwh",
            "carbon_g_per_kwh")


def read_events_csv(path: str | Path) -> list[GridEvent]:
    p = Path(path)
    try:
        with p.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
            header = list(rows[0]) if rows else []
    except FileNotFoundError as e:
        raise ScenarioError("events file not found", file=p) from e
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ScenarioError(f"cannot read events file: {e}", file=p) from e
    known = {*GridEvent.model_fields, "tz"}
    unknown = [c for c in header if c not in known]
    if unknown:
        raise ScenarioError(f"unknown column (known: {', '.join(GridEvent.model_fields)}, tz)", file=p, row=1,
                            field=unknown[0])
    out = []
    for i, row in enumerate(rows, start=2):  # row 1 is the header
        data = {k: v.strip() for k, v in row.items() if k is not None and v is not None and v.strip() != ""}
        tz = data.pop("tz", None)
        for k in ("start", "end"):
            if k in data:
                data[k] = _instant(data[k], tz, p, i, k)
        if "sites" in data:
            data["sites"] = [s.strip() for s in data["sites"].split(";") if s.strip()]
        for k in _NUMERIC:
            if k in data:
                try:
                    data[k] = float(data[k])
                except ValueError:
                    raise ScenarioError(f"'{data[k]}' is not a number", file=p, row=i, field=k) from None
        try:
            out.append(GridEvent.model_validate(data))
        except ValidationError as e:
            err = e.errors()[0]
            field = ".".join(str(x) for x in err["loc"]) or None
            msg = "is required" if err.get("type") == "missing" else err["msg"].removeprefix("Value error, ")
            raise ScenarioError(msg, file=p, row=i, field=field) from e
    return out


def _instant(text: str, tz: str | None, path: Path, line: int, field: str) -> datetime:
    """``text`` (ISO 8601) as a UTC instant: with its own offset, or a local time in zone ``tz``."""
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise ScenarioError(f"'{text[:60]}' is not an ISO 8601 time", file=path, row=line, field=field) from None
    if t.tzinfo is not None:
        return t
    if tz is None:
        raise ScenarioError(f"'{text}' has no UTC offset: write it with 'Z' or an offset (e.g. {t.isoformat()}Z), "
                            "or name its time zone in a 'tz' column", file=path, row=line, field=field)
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScenarioError(f"unknown time zone '{tz[:60]}' (an IANA name such as Europe/Berlin, or UTC)",
                            file=path, row=line, field="tz") from None
    first, second = t.replace(tzinfo=zone, fold=0), t.replace(tzinfo=zone, fold=1)
    if first.astimezone(UTC).astimezone(zone).replace(tzinfo=None, fold=0) != t:
        raise ScenarioError(f"{text} does not exist in {tz} (skipped by the daylight-saving change): give the "
                            "time with its UTC offset", file=path, row=line, field=field)
    if first.utcoffset() != second.utcoffset():
        raise ScenarioError(f"{text} happens twice in {tz} (repeated by the daylight-saving change): give the "
                            "time with its UTC offset", file=path, row=line, field=field)
    return first.astimezone(UTC)
