"""Read grid events from a CSV file: one row per event, columns named like :class:`GridEvent`'s fields
(``sites`` lists site names separated by ``;``). Errors name the file, the row and the field."""

from __future__ import annotations

import csv
from pathlib import Path

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
    known = set(GridEvent.model_fields)
    unknown = [c for c in header if c not in known]
    if unknown:
        raise ScenarioError(f"unknown column (known: {', '.join(GridEvent.model_fields)})", file=p, row=1,
                            field=unknown[0])
    out = []
    for i, row in enumerate(rows, start=2):  # row 1 is the header
        data = {k: v.strip() for k, v in row.items() if k is not None and v is not None and v.strip() != ""}
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
