"""Live grid signals from the configured providers (:mod:`gridshift.data.providers`), each on its own clock.

Every ``interval_s`` a provider's zones are pulled in a worker thread (the event loop and the reconciler
are never blocked): actuals for the last six hours (or ``interval_s`` or ``stale_after_s``, if longer, so
late corrections and lagging publications land) go into the store as signals named as the provider's
(``carbon_lifecycle_g_per_kwh``, ``moer_g_per_kwh`` …, source ``provider``); every issued forecast is appended, with its issue time, to
``<forecast_dir>/<provider>/<zone>/<signal>.csv`` in the issued-forecast format that
``gridshift forecast backtest --external FILE`` replays. The signal an operator chose to drive planning
for a zone (``planning`` in the providers file) is also stored as the planner's ``carbon_g_per_kwh`` (or
``price_usd_per_mwh``), source ``provider/signal``.

A provider that fails, or whose last good pull or newest data are older than its ``stale_after_s``, is
reported (log, ``GET /api/v1/health``, ``/metrics``, the dashboard) and nothing else changes: the planner keeps the last good values for
as long as it holds stored values, then falls back to the registry's data and its own forecaster.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from fastapi import FastAPI

from gridshift.data.files import write_text_atomic
from gridshift.data.issued_forecasts import forecasts_csv
from gridshift.data.providers import Batch, Provider, ProviderConfig, make_provider
from gridshift.errors import GridShiftError
from gridshift.model.time import as_utc, utcnow
from gridshift.service.state import notify
from gridshift.service.store import Store

log = logging.getLogger("gridshift.providers")
MIN_LOOKBACK_S = 6 * 3600.0
SKILL_HISTORY_DAYS = 10  # actuals read before the oldest kept forecast, for the own forecaster's history
PLANNING_TARGET = {"price_usd_per_mwh": "price_usd_per_mwh", "lmp_da_usd_per_mwh": "price_usd_per_mwh",
                   "lmp_rt_usd_per_mwh": "price_usd_per_mwh"}  # any other planning signal is a g/kWh intensity
PLANNING_SIGNALS = ("carbon_lifecycle_g_per_kwh", "carbon_direct_g_per_kwh", "moer_g_per_kwh", "aoer_g_per_kwh",
                    "price_usd_per_mwh", "lmp_da_usd_per_mwh", "lmp_rt_usd_per_mwh")


def planning_target(signal: str) -> str:
    """The planner's signal a chosen provider signal is stored as."""
    return PLANNING_TARGET.get(signal, "carbon_g_per_kwh")


def parse_planning(obj: Any, source: str) -> dict[str, tuple[str, str]]:
    """``planning: {zone: "provider/signal"}`` → ``{zone: (provider, signal)}``; errors name the zone."""
    items = obj.get("planning") if isinstance(obj, dict) else None
    if items is None:
        return {}
    if not isinstance(items, dict):
        raise GridShiftError("'planning' must map zones to provider/signal", file=source, field="planning")
    out = {}
    for zone, spec in items.items():
        provider, _, signal = str(spec).partition("/")
        if signal not in PLANNING_SIGNALS:
            raise GridShiftError(f"planning signal of zone {zone} must be provider/signal with signal one of "
                                 f"{', '.join(PLANNING_SIGNALS)}, got '{spec}'", file=source, field="planning")
        out[str(zone)] = (provider, signal)
    return out


@dataclass
class ZoneStatus:
    """How one provider's pulls for one zone went."""

    provider: str
    zone: str
    stale_after_s: float
    last_attempt_at: datetime | None = None
    last_ok_at: datetime | None = None
    last_data_at: datetime | None = None
    last_error: str | None = None
    rows_stored: int = 0
    forecasts_stored: int = 0
    problems: list[str] = field(default_factory=list)

    def stale(self, now: datetime) -> bool:
        """No good pull within ``stale_after_s``, or the newest data older than that."""
        return (self.last_ok_at is None or (now - self.last_ok_at).total_seconds() > self.stale_after_s
                or self.last_data_at is None or (now - self.last_data_at).total_seconds() > self.stale_after_s)

    def as_dict(self, now: datetime) -> dict[str, Any]:
        age = None if self.last_ok_at is None else (now - self.last_ok_at).total_seconds()
        return {"provider": self.provider, "zone": self.zone, "stale": self.stale(now), "age_s": age,
                "last_attempt_at": self.last_attempt_at, "last_ok_at": self.last_ok_at,
                "last_data_at": self.last_data_at, "last_error": self.last_error, "rows_stored": self.rows_stored,
                "forecasts_stored": self.forecasts_stored, "problems": self.problems[-5:]}


def append_forecasts(forecast_dir: Path, batch: Batch) -> int:
    """Append ``batch``'s forecast rows to ``<dir>/<provider>/<zone>/<signal>.csv`` (issue_time, target_time,
    value, zone), keeping each (issue_time, target_time) once; returns the rows new to the files."""
    new = 0
    for signal, rows in batch.rows.groupby("signal"):
        path = forecast_dir / batch.provider / batch.zone / f"{signal}.csv"
        add = pd.DataFrame({"issue_time": rows["issue_time"], "target_time": rows["at"], "value": rows["value"],
                            "zone": batch.zone})
        old = None
        if path.is_file():
            old = pd.read_csv(path, dtype={"zone": str})
            for c in ("issue_time", "target_time"):
                old[c] = pd.to_datetime(old[c], utc=True, format="ISO8601")
        both = add if old is None else pd.concat([old, add], ignore_index=True)
        both = both.drop_duplicates(["issue_time", "target_time"], keep="first")
        new += len(both) - (0 if old is None else len(old))
        if old is None or len(both) > len(old):
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(path, forecasts_csv(both.sort_values(["issue_time", "target_time"])))
    return new


class ProviderPuller:
    """The providers of one service and their per-zone status (thread-safe reads for health and metrics)."""

    def __init__(self, configs: list[ProviderConfig], planning: dict[str, tuple[str, str]] | None = None,
                 forecast_dir: str | Path | None = None, forecast_use: str = "preferred") -> None:
        self.configs = configs
        self.forecast_use = forecast_use  # when mpc plans on a provider's forecast (service/provider_forecasts.py)
        self.providers: dict[str, Provider] = {c.name: make_provider(c) for c in configs}
        self.planning = planning or {}
        self.forecast_dir = Path(forecast_dir) if forecast_dir is not None else None
        self._lock = threading.Lock()
        self._status = {(c.name, z): ZoneStatus(c.name, z, c.stale_after_s) for c in configs for z in c.zones}
        self._skill: dict[str, dict[str, Any]] = {}

    def status(self, now: datetime | None = None) -> list[dict[str, Any]]:
        now = now or utcnow()
        with self._lock:
            return [s.as_dict(now) for s in self._status.values()]

    def forecast_skill(self) -> dict[str, dict[str, Any]]:
        """Per zone with a planning provider: the rolling backtest of its forecast against the project's own
        (:mod:`gridshift.service.forecast_skill`), as of the last pull."""
        with self._lock:
            return dict(self._skill)

    def _score(self, store: Store, cfg: ProviderConfig, zone: str, now: datetime) -> None:
        chosen = self.planning.get(zone)
        if chosen is None or chosen[0] != cfg.name or self.forecast_dir is None:
            return
        path = self.forecast_dir / cfg.name / zone / f"{chosen[1]}.csv"
        if not path.is_file():
            return
        from gridshift.data.issued_forecasts import read_forecasts
        from gridshift.service.forecast_skill import rolling_skill

        table = read_forecasts(path)
        lo = table["issue_time"].min().to_pydatetime() - timedelta(days=SKILL_HISTORY_DAYS)
        pts = store.signals_between(zone, chosen[1], lo, now)
        actual = pd.Series([p.value for p in pts], index=pd.DatetimeIndex([p.at for p in pts]), dtype=float)
        skill = rolling_skill(table, actual, zone=zone, provider=cfg.name, signal=chosen[1], now=now,
                              stale_after_s=cfg.stale_after_s)
        with self._lock:
            self._skill[zone] = skill.as_dict()

    def planning_signals(self) -> dict[str, dict[str, str]]:
        """``{zone: {"provider", "signal", "drives"}}``: which signal drives planning in each zone."""
        return {z: {"provider": p, "signal": s, "drives": planning_target(s)} for z, (p, s) in self.planning.items()}

    def pull(self, store: Store, name: str, now: datetime) -> int:
        """Pull provider ``name``'s zones once; returns the signal rows stored. Never raises for a provider's
        failure: it is recorded in the zone's status and logged (one line)."""
        cfg, provider = next(c for c in self.configs if c.name == name), self.providers[name]
        lookback = timedelta(seconds=max(cfg.interval_s, MIN_LOOKBACK_S, cfg.stale_after_s))
        start = (pd.Timestamp(now) - lookback).floor("h").to_pydatetime()
        stored = 0
        for zone in cfg.zones:
            st = self._status[(name, zone)]
            with self._lock:
                st.last_attempt_at = now
            try:
                batch = provider.actuals(zone, start, now, cfg.signals or None)
                stored += self._store_actuals(store, batch)
                forecasts = 0
                if cfg.forecasts and provider.chosen(cfg.signals or None, forecast=True):
                    fb = provider.forecasts(zone, cfg.signals or None)
                    forecasts = append_forecasts(self.forecast_dir, fb) if self.forecast_dir and not fb.rows.empty else 0
                    batch.problems += fb.problems
                for p in batch.problems:
                    log.warning("%s", p)
                self._score(store, cfg, zone, now)
                with self._lock:
                    st.last_ok_at, st.last_error = now, None
                    st.rows_stored += len(batch.rows)
                    st.forecasts_stored += forecasts
                    st.problems = (st.problems + batch.problems)[-20:]
                    if not batch.rows.empty:
                        newest = as_utc(batch.rows["at"].max().to_pydatetime())
                        st.last_data_at = max(newest, st.last_data_at) if st.last_data_at else newest
            except Exception as exc:  # noqa: BLE001 (a provider's failure must not stop the clock)
                with self._lock:
                    st.last_error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                log.warning("provider %s, zone %s: pull failed: %s%s", name, zone, st.last_error,
                            " (stale: planning goes on with the last good data)" if st.stale(now) else "")
        return stored

    def _store_actuals(self, store: Store, batch: Batch) -> int:
        if batch.rows.empty:
            return 0
        rows = [{"zone": batch.zone, "signal": r.signal, "at": r.at.to_pydatetime(), "value": float(r.value),
                 "source": batch.provider} for r in batch.rows.itertuples()]
        chosen = self.planning.get(batch.zone)
        if chosen is not None and chosen[0] == batch.provider:
            rows += [{**r, "signal": planning_target(chosen[1]), "source": f"{batch.provider}/{chosen[1]}"}
                     for r in rows if r["signal"] == chosen[1]]
        return store.upsert_signals(rows)


async def provider_clock(app: FastAPI, name: str) -> None:
    """Pull provider ``name`` now and then every ``interval_s``, in a worker thread."""
    puller: ProviderPuller = app.state.providers
    cfg = next(c for c in puller.configs if c.name == name)
    while True:
        stored = await asyncio.to_thread(puller.pull, app.state.store, name, utcnow())
        if stored:
            notify(app, "signals")
        await asyncio.sleep(cfg.interval_s)


def load_puller(path: str | Path, forecast_dir: str | Path | None = None) -> ProviderPuller:
    """The providers file (``providers``, ``planning`` and ``forecast_use``; see :mod:`gridshift.data.providers.registry`)
    as a :class:`ProviderPuller`; errors are one line naming the file and the field."""
    from gridshift.data.providers import parse_configs
    from gridshift.data.yaml_doc import read_yaml

    p = Path(path)
    obj = read_yaml(p, "providers file")
    configs = parse_configs(obj, str(p))
    planning = parse_planning(obj, str(p))
    names = {c.name for c in configs}
    for zone, (provider, _) in planning.items():
        if provider not in names:
            raise GridShiftError(f"planning of zone {zone} names provider '{provider}', which is not configured",
                                 file=p, field="planning")
    if forecast_dir is None and any(c.forecasts for c in configs):
        forecast_dir = p.parent / "issued-forecasts"
    use = obj.get("forecast_use", "preferred") if isinstance(obj, dict) else "preferred"
    if use not in ("fresh", "preferred", "off"):
        raise GridShiftError(f"forecast_use must be fresh, preferred or off, got '{use}'", file=p, field="forecast_use")
    return ProviderPuller(configs, planning, forecast_dir, use)
