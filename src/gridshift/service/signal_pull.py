"""The signal puller: copies a zone's grid signals from the data registry (or a CSV file in the server's
signal files directory) into the store, once on request or on a clock (``pull_interval_s``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from fastapi import FastAPI

from gridshift.service.schemas import PULL_SIGNALS
from gridshift.service.settings import ApiSettings
from gridshift.service.state import notify
from gridshift.service.store import InvalidSpec, Store

log = logging.getLogger("gridshift.api")


def signal_file(settings: ApiSettings, name: str) -> Path:
    """``name`` inside ``settings.signal_files_dir`` (422 if reading files is off or it points outside)."""
    if settings.signal_files_dir is None:
        raise InvalidSpec("reading signal files is not enabled on this server (signal_files_dir)", field="file")
    base = Path(settings.signal_files_dir).resolve()
    path = (base / name).resolve()
    if base not in path.parents:
        raise InvalidSpec("must name a file inside the signal files directory", field="file")
    if not path.is_file():
        raise InvalidSpec(f"no file '{name}' in the signal files directory", field="file")
    return path


def pull_registry(store: Store, zone: str, signals: list[str] | tuple[str, ...], start: datetime, end: datetime,
                  shift_s: float = 0.0, *, path: Path | None = None) -> dict[str, int]:
    """Copy ``zone``'s registry values (or those of the CSV at ``path``) with data time in
    ``[start - shift, end - shift)`` into the store, timestamped ``data time + shift``; returns rows stored
    per signal (one transaction)."""
    if path is not None and len({PULL_SIGNALS.get(s) for s in signals}) > 1:
        raise InvalidSpec("a file holds either carbon or price signals: ask for one kind", field="signals")

    try:
        shift = pd.Timedelta(seconds=float(shift_s))
        lo, hi = pd.Timestamp(start) - shift, pd.Timestamp(end) - shift
        (pd.Timestamp(start) + shift, pd.Timestamp(end) + shift)  # noqa: B018 (both ends must be representable)
    except (OverflowError, pd.errors.OutOfBoundsDatetime, pd.errors.OutOfBoundsTimedelta):
        raise InvalidSpec(f"window {start.isoformat()} .. {end.isoformat()} shifted by {shift_s:g} s lies outside "
                          "the years 1678-2261", field="start") from None
    frames: dict[str, pd.DataFrame] = {}
    rows: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    for sig in dict.fromkeys(signals):
        kind = PULL_SIGNALS.get(sig)
        if kind is None:
            raise InvalidSpec(f"unknown signal '{sig}' (known: {', '.join(PULL_SIGNALS)})", field="signals")
        if kind not in frames:
            frames[kind] = _registry_frame(kind, zone, path, lo, hi)
        df = frames[kind]
        sel = df.loc[(df.index >= lo) & (df.index < hi), sig]
        times = (sel.index + shift).to_pydatetime()
        values = sel.to_numpy(dtype=float)
        keep = np.isfinite(values)
        source = f"registry:{kind}/{zone}" if path is None else f"file:{path.name}"
        rows += [{"zone": zone, "signal": sig, "at": t, "value": float(v), "source": source}
                 for t, v in zip(times[keep], values[keep])]
        counts[sig] = int(keep.sum())
    store.upsert_signals(rows)
    return counts


def _registry_frame(kind: str, zone: str, path: Path | None, lo: pd.Timestamp, hi: pd.Timestamp) -> pd.DataFrame:
    """The zone's carbon or price frame covering ``[lo, hi)``: the file at ``path``, or the registry's years
    of data the window touches (any of 2021–2023, joined across New Year; none: the default year's file,
    which then has no rows in the window)."""
    from gridshift.data.grid import carbon_years, load_carbon, load_price, price_years

    load = load_carbon if kind == "carbon" else load_price
    if path is not None:
        return load(zone, path=path)
    have = (carbon_years if kind == "carbon" else price_years)(zone)
    years = [y for y in range(lo.year, (hi - pd.Timedelta(microseconds=1)).year + 1) if y in have]
    return load(zone, years=years) if years else load(zone)


def pull_window(store: Store, s: ApiSettings, now: datetime,
                warn: Callable[..., None] | None = None) -> int:
    """Pull the configured zones' registry signals for ``[now - pull_interval_s, now + pull_horizon_s)``
    (shifted by ``pull_shift_s``) into the store; returns the rows stored. A zone or signal that fails is
    reported through ``warn(kind, zone, signal, message, *args)`` and the others go on."""
    start = now - timedelta(seconds=s.pull_interval_s or 0)
    end = now + timedelta(seconds=s.pull_horizon_s)
    stored = 0
    for zone in s.pull_zones:
        for signal in s.pull_signals:
            try:
                counts = pull_registry(store, zone, [signal], start, end, s.pull_shift_s)
                stored += sum(counts.values())
                if not sum(counts.values()) and warn is not None:
                    warn("empty", zone, signal, "signal pull: no %s for zone %s in %s .. %s (shifted by %g s)",
                         signal, zone, start.isoformat(), end.isoformat(), s.pull_shift_s)
            except Exception as exc:  # noqa: BLE001 (keep the clock running; the next pull may succeed)
                if warn is not None:
                    warn("failed", zone, signal, "signal pull of %s for zone %s failed: %s", signal, zone, exc)
    return stored


async def pull_clock(app: FastAPI) -> None:
    """Pull the configured zones' signals every ``pull_interval_s``."""
    s: ApiSettings = app.state.settings
    warned: set[tuple[str, str, str]] = set()

    def warn(kind: str, zone: str, signal: str, message: str, *args: Any) -> None:
        """Log a problem once per zone and signal (then at debug level), so each interval does not repeat it."""
        key = (kind, zone, signal)
        log.log(logging.DEBUG if key in warned else logging.WARNING, message, *args)
        warned.add(key)

    if getattr(app.state, "pulled_at_start", False):  # `gridshift serve` pulled once before the first plan
        await asyncio.sleep(s.pull_interval_s or 60.0)
    while True:
        stored = await asyncio.to_thread(pull_window, app.state.store, s, datetime.now(UTC), warn)
        if stored:
            notify(app, "signals")
        await asyncio.sleep(s.pull_interval_s or 60.0)
