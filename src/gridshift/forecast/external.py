"""Issued forecasts from elsewhere (a grid operator's or a vendor's day-ahead forecast), as a model.

File format (CSV, one forecast value per row; JSON: a list of objects with the same keys, or
``{"forecasts": [...]}``):

=================  =========================================================================================
column             meaning
=================  =========================================================================================
``issue_time``     when the forecast was issued (ISO 8601; UTC unless an offset is given)
``target_time``    start of the slot it forecasts (ISO 8601, on a slot boundary)
``value``          the forecast value, in the signal's unit
``zone``           optional: which zone (rows for other zones are ignored)
``q0.1`` …         optional quantiles, one column per level (``q0.1``, ``q0.5``, ``q0.9`` …)
=================  =========================================================================================

At origin ``o`` (the start of slot ``o``) the model uses, for each target slot, the most recently issued value
whose ``issue_time`` is at or before that instant, so a backtest never reads a forecast issued later. Slots
no issued forecast covers fall back to persistence; the current slot is the observed value. When the file
has the 0.1 and 0.9 (…) quantiles the backtest uses them, otherwise conformal intervals like every model.

This is the one module of the forecast package that reads files and URLs; the models themselves take the
parsed table.
"""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd

from gridshift.errors import DataError, PlanError
from gridshift.forecast.interface import (
    DEFAULT_LEVELS,
    Forecast,
    ProbForecaster,
    check_levels,
)

REQUIRED = ("issue_time", "target_time", "value")


def _qcols(columns) -> dict[float, str]:
    out = {}
    for c in columns:
        if isinstance(c, str) and c.startswith("q"):
            try:
                lv = float(c[1:])
            except ValueError:
                continue
            if 0 < lv < 1:
                out[lv] = c
    return dict(sorted(out.items()))


def parse_table(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """Check and normalise an issued-forecast table; errors name the source, line and column."""
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise DataError(f"missing column(s) {', '.join(missing)} (need {', '.join(REQUIRED)}, optional zone and "
                        "quantile columns q0.1, q0.9, …)", file=source, row=1)
    out = pd.DataFrame(index=df.index)
    for c in ("issue_time", "target_time"):
        t = pd.to_datetime(df[c].astype(str), errors="coerce", utc=True, format="ISO8601")
        bad = t.isna().to_numpy()
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(f"'{df[c].iloc[i]}' is not an ISO 8601 time", file=source, row=i + 2, field=c)
        out[c] = t
    for c in ["value", *_qcols(df.columns).values()]:
        v = pd.to_numeric(df[c], errors="coerce")
        bad = (v.isna() | ~np.isfinite(v.astype(float))).to_numpy()
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(f"'{df[c].iloc[i]}' is not a finite number", file=source, row=i + 2, field=c)
        out[c] = v.astype(float)
    q = _qcols(out.columns)
    if len(q) > 1:
        qa = out[list(q.values())].to_numpy()
        bad = (np.diff(qa, axis=1) < 0).any(axis=1)
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError("quantiles must not decrease with their level", file=source, row=i + 2,
                            field=list(q.values())[int(np.argmax(np.diff(qa[i]) < 0)) + 1])
    if "zone" in df.columns:
        out["zone"] = df["zone"].astype(str)
    if len(out) == 0:
        raise DataError("no forecasts in the file", file=source)
    return out


def read_forecasts(path: str | Path) -> pd.DataFrame:
    """Read an issued-forecast CSV or JSON file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise DataError(f"cannot read forecast file: {e.strerror or e}", file=p) from e
    return _parse_text(text, str(p), json_like=p.suffix.lower() == ".json")


def fetch_forecasts(url: str, timeout_s: float = 30.0) -> pd.DataFrame:
    """Fetch issued forecasts (CSV or JSON, by content type or by a leading ``[``/``{``) over HTTP(S)."""
    if not url.startswith(("http://", "https://")):
        raise DataError("forecast URL must start with http:// or https://", file=url)
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as r:
            body = r.read().decode("utf-8")
            ctype = r.headers.get("Content-Type", "")
    except (urllib.error.URLError, OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot fetch forecasts: {getattr(e, 'reason', e)}", file=url) from e
    return _parse_text(body, url, json_like="json" in ctype or body.lstrip()[:1] in ("[", "{"))


def _parse_text(text: str, source: str, *, json_like: bool) -> pd.DataFrame:
    if json_like:
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"not valid JSON: {e.msg}", file=source, row=e.lineno) from e
        if isinstance(obj, dict):
            obj = obj.get("forecasts")
        if not isinstance(obj, list) or not all(isinstance(r, dict) for r in obj):
            raise DataError("JSON must be a list of forecast objects or {\"forecasts\": [...]}", file=source)
        df = pd.DataFrame(obj)
    else:
        try:
            df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
            raise DataError(f"not a readable CSV: {str(e).splitlines()[0]}", file=source) from e
    return parse_table(df, source)


def write_forecasts(df: pd.DataFrame, path: str | Path) -> None:
    """Write an issued-forecast table as CSV (times in UTC ISO 8601), atomically."""
    from gridshift.report.output import write_text_atomic

    out = df.copy()
    for c in ("issue_time", "target_time"):
        out[c] = pd.to_datetime(out[c], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    write_text_atomic(path, out.to_csv(index=False, float_format="%.10g"))


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
    names the zone of each series row when the table has a ``zone`` column."""

    name = "external"

    def __init__(self, table: pd.DataFrame | None = None, *, path: str | None = None, url: str | None = None,
                 start: str | pd.Timestamp = "2023-01-01T00:00:00Z", slot_h: float = 1.0,
                 zones: list[str] | None = None, calib_days: float = 28.0, refit_h: int = 24) -> None:
        if sum(x is not None for x in (table, path, url)) != 1:
            raise PlanError("external forecaster needs exactly one of table, path or url", field="forecast")
        if table is not None:
            self.table = parse_table(table, "forecast table")
        elif path is not None:
            self.table = read_forecasts(path)
        else:
            self.table = fetch_forecasts(url)
        self.source = path or url or "forecast table"
        self.start = pd.Timestamp(start)
        self.start = self.start.tz_localize("UTC") if self.start.tzinfo is None else self.start.tz_convert("UTC")
        self.slot = pd.Timedelta(hours=slot_h)
        self.zones = zones
        self.calib_days, self.refit_h = float(calib_days), int(refit_h)
        self.qlevels = tuple(_qcols(self.table.columns))
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
        vals = np.column_stack([t["value"].to_numpy()] + [t[c].to_numpy() for c in _qcols(t.columns).values()])
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
