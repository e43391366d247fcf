"""Issued forecasts from elsewhere (a grid operator's or a vendor's day-ahead forecast), replayed as a model.

The table has one forecast value per row: ``issue_time`` (when it was issued), ``target_time`` (start of the
slot it forecasts), ``value``, optionally ``zone`` and quantile columns ``q0.1``, ``q0.9`` … — the format of
:mod:`gridshift.data.issued_forecasts`, which reads such tables from files and URLs (with errors naming the
file, line and column).

At origin ``o`` (the start of slot ``o``) the model uses, for each target slot, the most recently issued value
whose ``issue_time`` is at or before that instant, so a backtest never reads a forecast issued later. Slots
no issued forecast covers fall back to persistence; the current slot is the observed value. When the table
has the 0.1 and 0.9 (…) quantiles the backtest uses them, otherwise conformal intervals like every model.

Pure: the model takes the table, never a path or URL.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gridshift.errors import DataError, PlanError
from gridshift.forecast.interface import (
    DEFAULT_LEVELS,
    Forecast,
    ProbForecaster,
    check_levels,
)
from gridshift.model.issued_forecast import REQUIRED, quantile_columns
from gridshift.model.time import as_utc_timestamp


def as_issued_table(df: pd.DataFrame) -> pd.DataFrame:
    """The columns the model reads, typed: times as UTC timestamps, values and quantiles as floats (a table
    read by :mod:`gridshift.data.issued_forecasts` passes through unchanged)."""
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise PlanError(f"forecast table is missing column(s) {', '.join(missing)} (need {', '.join(REQUIRED)})",
                        field="forecast.table")
    out = pd.DataFrame(index=df.index)
    try:
        for c in ("issue_time", "target_time"):
            t = df[c]
            out[c] = (pd.to_datetime(t, utc=True) if pd.api.types.is_datetime64_any_dtype(t)
                      else pd.to_datetime(t.astype(str), utc=True, format="ISO8601"))
        for c in ["value", *quantile_columns(df.columns).values()]:
            out[c] = df[c].astype(float)
    except (ValueError, TypeError) as e:
        raise PlanError(f"forecast table column '{c}': {e}", field="forecast.table") from e
    if "zone" in df.columns:
        out["zone"] = df["zone"].astype(str)
    return out


def issue_forecasts(fc: Forecast, index: pd.DatetimeIndex, *, zone: str | None = None) -> pd.DataFrame:
    """Turn rolling-origin forecasts (row 0 of ``fc``) into an issued-forecast table: issued at each origin's
    slot start, one row per lead ≥ 1 (for tests and for exporting a model's forecasts)."""
    o = fc.origins
    H = fc.point.shape[2]
    hh = np.arange(1, H)
    tgt = o[:, None] + hh[None, :]
    keep = tgt < len(index)
    rows = {"issue_time": np.repeat(index[o].to_numpy(), H - 1).reshape(o.size, H - 1)[keep],
            "target_time": index.to_numpy()[np.minimum(tgt, len(index) - 1)][keep],
            "value": fc.point[0, :, 1:][keep]}
    for i, lv in enumerate(fc.levels):
        rows[f"q{lv:g}"] = fc.quantiles[0, :, 1:, i][keep]
    df = pd.DataFrame(rows)
    if zone is not None:
        df.insert(0, "zone", zone)
    return df


class ExternalForecaster(ProbForecaster):
    """Issued forecasts as a model. ``start`` is the UTC time of absolute slot 0 (``t_abs = 0``); ``zones``
    names the zone of each series row when the table has a ``zone`` column; ``source`` names the table in
    errors (e.g. the file it was read from)."""

    name = "external"

    def __init__(self, table: pd.DataFrame | None = None, *, start: str | pd.Timestamp = "2023-01-01T00:00:00Z",
                 slot_h: float = 1.0, zones: list[str] | None = None, calib_days: float = 28.0, refit_h: int = 24,
                 source: str = "forecast table", path: str | None = None, url: str | None = None) -> None:
        if path is not None or url is not None:
            raise PlanError("the external forecaster takes a table: read it with gridshift.data.issued_forecasts "
                            "(read_forecasts(path) or fetch_forecasts(url)) and pass table=...", field="forecast")
        if table is None:
            raise PlanError("the external forecaster needs table=... (issued forecasts)", field="forecast")
        self.table = as_issued_table(table)
        self.source = source
        self.start = as_utc_timestamp(start)
        self.slot = pd.Timedelta(hours=slot_h)
        self.zones = zones
        self.calib_days, self.refit_h = float(calib_days), int(refit_h)
        self.qlevels = tuple(quantile_columns(self.table.columns))
        self._prep = {}
        tt = (self.table["target_time"] - self.start) / self.slot
        off = (tt - np.round(tt)).abs() > 1e-6
        if off.any():
            i = int(np.argmax(off.to_numpy()))
            raise DataError("target_time is not on a slot boundary", file=self.source, row=i + 2,
                            field="target_time")

    def _arrays(self, zone: str | None):
        if zone in self._prep:
            return self._prep[zone]
        t = self.table
        if zone is not None and "zone" in t.columns:
            t = t[t["zone"] == zone]
        issue = np.ceil(((t["issue_time"] - self.start) / self.slot).to_numpy() - 1e-9).astype(np.int64)
        target = np.round(((t["target_time"] - self.start) / self.slot).to_numpy()).astype(np.int64)
        key = target * (1 << 32) + (issue + (1 << 31))
        order = np.argsort(key, kind="stable")
        vals = np.column_stack([t["value"].to_numpy()] + [t[c].to_numpy() for c in quantile_columns(t.columns).values()])
        self._prep[zone] = (key[order], target[order], vals[order])
        return self._prep[zone]

    def _lookup(self, z: int, a: np.ndarray, H: int) -> tuple[np.ndarray, np.ndarray]:
        """Values ``[K, H, 1+Q]`` issued at or before absolute slots ``a`` for slots ``a + h``; found mask."""
        zone = self.zones[z] if self.zones is not None else None
        key, target, vals = self._arrays(zone)
        tg = a[:, None] + np.arange(H)[None, :]
        q = tg * (1 << 32) + (a[:, None] + (1 << 31))
        i = np.searchsorted(key, q.ravel(), side="right") - 1
        found = (i >= 0) & (target[np.maximum(i, 0)] == tg.ravel()) if key.size else np.zeros(q.size, bool)
        v = vals[np.maximum(i, 0)] if key.size else np.zeros((q.size, 1))
        return v.reshape(a.size, H, -1), found.reshape(a.size, H)

    def point_origins(self, series, origins, horizon, *, slots_per_h, t0_abs=0, exog=None):
        y = np.asarray(series, dtype=float)
        org = np.asarray(origins, dtype=int)
        out = np.repeat(y[:, org][:, :, None], horizon, axis=2)
        for z in range(y.shape[0]):
            v, found = self._lookup(z, org + t0_abs, horizon)
            out[z] = np.where(found, v[..., 0], out[z])
            out[z, :, 0] = y[z, org]
        return out

    def forecast_origins(self, series, origins, horizon, *, slots_per_h=1, t0_abs=0, levels=DEFAULT_LEVELS,
                         exog=None) -> Forecast:
        fc = super().forecast_origins(series, origins, horizon, slots_per_h=slots_per_h, t0_abs=t0_abs,
                                      levels=levels, exog=exog)
        lv = check_levels(levels)
        have = [round(x, 6) for x in self.qlevels]
        if not all(round(x, 6) in have for x in lv):
            return fc
        for z in range(fc.point.shape[0]):
            v, found = self._lookup(z, fc.origins + t0_abs, horizon)
            qi = [1 + have.index(round(x, 6)) for x in lv]
            fq = v[..., qi]
            fc.quantiles[z] = np.where(found[..., None], fq, fc.quantiles[z])
            fc.quantiles[z, :, 0, :] = fc.point[z, :, 0, None]
        return fc
