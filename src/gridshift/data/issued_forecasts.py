"""Issued forecasts from elsewhere (a grid operator's or a vendor's day-ahead forecast): the file format, its
reader (files and HTTP(S) URLs) and its CSV form.

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

``read_forecasts(path)`` and ``fetch_forecasts(url)`` return the checked table (errors name the file, line
and column) that :class:`gridshift.forecast.external.ExternalForecaster` replays as a model;
``forecasts_csv`` is the CSV text of such a table (times in UTC ISO 8601).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd

from gridshift.data.http import get
from gridshift.errors import DataError
from gridshift.model.issued_forecast import REQUIRED, quantile_columns


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
    for c in ["value", *quantile_columns(df.columns).values()]:
        v = pd.to_numeric(df[c], errors="coerce")
        bad = (v.isna() | ~np.isfinite(v.astype(float))).to_numpy()
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(f"'{df[c].iloc[i]}' is not a finite number", file=source, row=i + 2, field=c)
        out[c] = v.astype(float)
    q = quantile_columns(out.columns)
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
    """Fetch issued forecasts (CSV or JSON, by content type or by a leading ``[``/``{``) over HTTP(S), through
    the shared client (:mod:`gridshift.data.http`: timeouts, retries)."""
    if not url.startswith(("http://", "https://")):
        raise DataError("forecast URL must start with http:// or https://", file=url)
    try:
        got = get(url, timeout_s=timeout_s)
        text = got.body.decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot fetch forecasts: {getattr(e, 'reason', e)}", file=url) from e
    return _parse_text(text, url, json_like="json" in got.content_type or text.lstrip()[:1] in ("[", "{"))


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


def forecasts_csv(df: pd.DataFrame) -> str:
    """An issued-forecast table as CSV text (times in UTC ISO 8601)."""
    out = df.copy()
    for c in ("issue_time", "target_time"):
        out[c] = pd.to_datetime(out[c], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return out.to_csv(index=False, float_format="%.10g")
