"""Is a provider's forecast better than the project's own? A rolling backtest on what the service kept.

For the newest ``max_forecasts`` forecasts a provider issued for a zone (from the issued-forecast files the
provider clocks write), each forecast's hourly values for the next ``horizon_h`` hours are compared with the
stored actuals of the same signal, and so are the project's own forecaster's (``blend`` by default, through
:func:`gridshift.forecast.make_forecaster`), made from the actuals known at the same issue time (history up to
the last whole hour before it, no look-ahead). Both are scored on the same target hours (mean absolute error,
in the signal's unit). The provider's forecast is *preferred* when it is fresh (issued within its provider's
``stale_after_s``), scored on at least ``min_forecasts`` forecasts, and its error is lower.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from gridshift.forecast import make_forecaster
from gridshift.forecast.registry import DEFAULT_MODEL
from gridshift.model.time import as_utc_timestamp

MIN_HISTORY_H = 48


@dataclass
class Skill:
    """The rolling backtest of one provider's forecast of one signal in one zone."""

    zone: str
    provider: str
    signal: str
    own_model: str
    forecasts_scored: int
    hours_scored: int
    provider_mae: float | None
    own_mae: float | None
    newest_issue_at: datetime | None
    fresh: bool
    preferred: bool

    def as_dict(self) -> dict:
        return asdict(self)


def hourly(actual: pd.Series) -> pd.Series:
    """Values averaged to UTC hours, on a gap-free hourly index (gaps NaN)."""
    s = actual.sort_index()
    s.index = pd.DatetimeIndex(s.index).tz_convert("UTC")
    h = s.groupby(s.index.floor("h")).mean()
    return h.reindex(pd.date_range(h.index[0], h.index[-1], freq="h")) if len(h) else h


def rolling_skill(table: pd.DataFrame, actual: pd.Series, *, zone: str, provider: str, signal: str,
                  now: datetime, stale_after_s: float, own_model: str = DEFAULT_MODEL, horizon_h: int = 24,
                  max_forecasts: int = 48, min_forecasts: int = 3) -> Skill:
    """Score ``table`` (issue_time, target_time, value) against ``actual`` (values by UTC time) and the
    project's ``own_model`` (see the module docstring)."""
    act = hourly(actual) if len(actual) else pd.Series(dtype=float)
    issues = sorted(table["issue_time"].unique())[-max_forecasts:] if len(table) else []
    newest = as_utc_timestamp(issues[-1]).to_pydatetime() if issues else None
    fresh = newest is not None and (as_utc_timestamp(now) - as_utc_timestamp(newest)).total_seconds() <= stale_after_s
    model = make_forecaster(own_model)
    p_err: list[float] = []
    o_err: list[float] = []
    scored = 0
    for issue in issues:
        origin = as_utc_timestamp(issue).floor("h") - pd.Timedelta(hours=1)  # the last whole hour known
        f = table[table["issue_time"] == issue]
        fh = f.groupby(pd.DatetimeIndex(f["target_time"]).floor("h"))["value"].mean()
        fh = fh[(fh.index > origin) & (fh.index <= origin + pd.Timedelta(hours=horizon_h))]
        if not len(act) or origin not in act.index:
            continue
        hist = act.loc[:origin].ffill().dropna()
        if len(hist) < MIN_HISTORY_H or hist.index[-1] != origin:
            continue
        truth = act.reindex(fh.index)
        ok = truth.notna().to_numpy()
        if not ok.any():
            continue
        lead = ((fh.index[ok] - origin) / pd.Timedelta(hours=1)).astype(int).to_numpy()
        own = model.predict(hist.to_numpy()[None, :], int(lead.max()) + 1, t_abs=len(hist) - 1, slots_per_h=1)[0]
        p_err += list(np.abs(fh.to_numpy()[ok] - truth.to_numpy()[ok]))
        o_err += list(np.abs(own[lead] - truth.to_numpy()[ok]))
        scored += 1
    p_mae = float(np.mean(p_err)) if p_err else None
    o_mae = float(np.mean(o_err)) if o_err else None
    preferred = bool(fresh and scored >= min_forecasts and p_mae is not None and o_mae is not None and p_mae < o_mae)
    return Skill(zone, provider, signal, own_model, scored, len(p_err), p_mae, o_mae, newest, fresh, preferred)
