"""A provider's issued forecast laid over the planner's own model, for the zones that have one.

The live service keeps every forecast a grid-signal provider issues (Electricity Maps, WattTime, the GB
Carbon Intensity API …). Where one is fresh, the planner should plan on it rather than on its own
history-only model (``blend``): a provider's forecast uses weather, ours cannot. ``IssuedOverlay`` wraps the
planner's forecaster (``base``) and, for each (zone, signal) with a table (``tables[(zone, signal)]``:
``issue_time``, ``target_time``, ``value``; the signal is the planner's ``carbon_g_per_kwh`` or
``price_usd_per_mwh``), replaces the leads the newest forecast issued by the forecast instant covers; every
other lead, zone and signal is ``base``'s forecast, and lead 0 (the current slot) stays the observed value.

A slot takes the mean of the forecast values whose target times fall inside it (a half-hourly forecast
under hourly slots), else the last value before it while that is less than the forecast's own step old (an
hourly forecast under 5-minute slots). ``issue_slack_s`` lets a forecast issued up to that long after the
slot's start count (the live planner plans during the slot, after the forecast arrived; a backtest keeps 0).

It takes the planner's per-call settings as :class:`~gridshift.forecast.dayahead.DayAhead` does (the signal,
the zones of the rows, the UTC time of series index 0, the slot length), so a planner that tells
``dayahead`` where and when it forecasts tells this too. ``used`` records, per (zone, signal), the forecast taken in
the last call (its issue time and the leads it covered). Pure: it takes tables, never a path.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from gridshift.forecast.dayahead import DayAhead
from gridshift.forecast.interface import Forecaster
from gridshift.model.time import S_PER_H


def _prepare(table: pd.DataFrame) -> list[tuple[int, np.ndarray, np.ndarray, int]]:
    """Per issue time (ascending, ns): (issue, target times ns sorted, values, the forecast's step ns)."""
    t = table.dropna(subset=["issue_time", "target_time", "value"])
    issue = pd.to_datetime(t["issue_time"], utc=True).to_numpy("datetime64[ns]").astype(np.int64)
    target = pd.to_datetime(t["target_time"], utc=True).to_numpy("datetime64[ns]").astype(np.int64)
    value = t["value"].to_numpy(float)
    out = []
    for i in np.unique(issue):
        m = issue == i
        order = np.argsort(target[m], kind="stable")
        tg, v = target[m][order], value[m][order]
        step = int(np.median(np.diff(tg))) if tg.size > 1 else int(S_PER_H * 1e9)
        out.append((int(i), tg, v, max(step, 1)))
    return out


def slot_values(tg: np.ndarray, v: np.ndarray, step_ns: int, starts_ns: np.ndarray, slot_ns: int) -> np.ndarray:
    """The forecast (targets ``tg`` ns, values ``v``) per slot starting at ``starts_ns``: the mean inside the
    slot, else the last value before it if less than ``step_ns`` old, else NaN."""
    lo = np.searchsorted(tg, starts_ns, side="left")
    hi = np.searchsorted(tg, starts_ns + slot_ns, side="left")
    csum = np.concatenate([[0.0], np.cumsum(v)])
    n = hi - lo
    out = np.full(starts_ns.size, np.nan)
    inside = n > 0
    out[inside] = (csum[hi[inside]] - csum[lo[inside]]) / n[inside]
    j = lo - 1
    hold = ~inside & (j >= 0)
    hold[hold] = starts_ns[hold] - tg[j[hold]] < step_ns
    out[hold] = v[j[hold]]
    return out


class IssuedOverlay(DayAhead):
    """``base``'s forecast with the newest issued forecast of ``tables[(zone, signal)]`` laid over it."""

    name = "issued"

    def __init__(self, base: Forecaster, tables: Mapping[tuple[str, str], pd.DataFrame],
                 issue_slack_s: float = 0.0) -> None:  # noqa: D107 (DayAhead's __init__ builds a base by name)
        self.base = base
        self.markets = {}
        self.signal: str | None = None
        self.zones: tuple[str, ...] = ()
        self.t0: pd.Timestamp | None = None
        self.slot_s = 3600
        self.actual: np.ndarray | None = None
        self.published_leads = 0
        self.issue_slack_s = float(issue_slack_s)
        self._tables = {(str(z), str(s)): _prepare(t) for (z, s), t in tables.items()}
        self.used: dict[tuple[str, str], dict] = {}

    def predict(self, history, horizon, *, t_abs, slots_per_h):
        if isinstance(self.base, DayAhead):  # a dayahead base needs the same settings
            self.base.signal, self.base.zones, self.base.t0 = self.signal, self.zones, self.t0
            self.base.slot_s, self.base.actual = self.slot_s, self.actual
        out = np.array(self.base.predict(history, horizon, t_abs=t_abs, slots_per_h=slots_per_h), dtype=float)
        if self.t0 is None or horizon < 2 or not any(s == self.signal for _, s in self._tables):
            return out
        slot_ns = int(self.slot_s * 1e9)
        origin_ns = int(pd.Timestamp(self.t0).value) + int(t_abs) * slot_ns
        cutoff = origin_ns + int(self.issue_slack_s * 1e9)
        starts = origin_ns + np.arange(1, horizon, dtype=np.int64) * slot_ns
        for z, zone in enumerate(self.zones):
            issued = self._tables.get((zone, self.signal))
            if not issued or z >= out.shape[0]:
                continue
            k = int(np.searchsorted([i for i, *_ in issued], cutoff, side="right")) - 1
            if k < 0:
                continue
            issue, tg, v, step = issued[k]
            vals = slot_values(tg, v, step, starts, slot_ns)
            ok = np.isfinite(vals)
            out[z, 1:][ok] = vals[ok]
            self.used[(zone, self.signal)] = {"issue_time": pd.Timestamp(issue, tz="UTC").to_pydatetime(), "leads": int(ok.sum()),
                               "horizon": int(horizon - 1)}
        return out
