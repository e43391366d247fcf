"""The one interface of the live grid-signal providers, and what every adapter shares.

An adapter (one small module per provider: :mod:`.electricitymaps`, :mod:`.watttime`, :mod:`.gb_carbon`,
:mod:`.entsoe`, :mod:`.eia`) subclasses :class:`Provider` and implements two methods:

- ``actuals(zone, start, end, signals)``: measured (or the provider's estimated-actual) values with data
  time in ``[start, end)``;
- ``forecasts(zone, signals, start, end)``: the provider's latest issued forecast, each row with its
  issue time;
- optionally ``latest(zone, signals)`` (the newest value of each signal; by default the last of six hours'
  actuals) and ``past_forecasts(zone, start, end, signals)`` (the forecasts it issued in a past range).

Both return a :class:`Batch`: a tidy frame (``signal``, ``at``, ``value``, ``issue_time``; times UTC, units
in the signal's name) and ``problems``, one line each, naming the provider, the zone, the time range and
what was wrong with the rows that were dropped (:func:`clean`). A request that fails as a whole (HTTP 401,
an unknown zone, malformed JSON, retries used up) raises :class:`ProviderError`, one line of the same form.

Requests go through :mod:`gridshift.data.http` (timeouts; 429 and transient 5xx retried with exponential
backoff or the server's ``Retry-After``), after the provider's own pacing (``min_interval_s`` between
requests, to stay under its published rate limit). API keys come from the environment or a key file
(:class:`ProviderConfig`), are sent only in the header or query parameter the provider asks for, and are
never part of a message, a log line or a ``repr``: URLs in errors have their key parameters redacted.
"""

from __future__ import annotations

import json
import logging
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np
import pandas as pd

from gridshift.data import http
from gridshift.errors import DataError
from gridshift.model.time import as_utc_timestamp, utcnow

COLUMNS = ("signal", "at", "value", "issue_time")
# signals whose values can never be negative (prices and net flows can)
NON_NEGATIVE = ("carbon", "moer", "aoer", "_frac", "load_", "wind_", "solar_", "generation_", "consumption_",
                "import_total", "export_total", "health_")
SIGNED = ("_discharge_mw",)  # storage: net discharge, negative while it charges
SECRET_PARAMS = frozenset({"api_key", "securityToken", "token", "auth-token", "password"})


class _RedactKeys(logging.Filter):
    """Redacts key parameters in the URLs that httpx logs (``HTTP Request: GET url …``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(redact(a) if isinstance(a, str) else redact(str(a)) if type(a).__name__ == "URL"
                                else a for a in record.args)
        return True


for _name in ("httpx", "httpcore"):
    if not any(isinstance(f, _RedactKeys) for f in logging.getLogger(_name).filters):
        logging.getLogger(_name).addFilter(_RedactKeys())


class ProviderError(DataError):
    """A provider's request failed as a whole; the message is one line naming provider, zone and range."""


def span(start: datetime | pd.Timestamp | None, end: datetime | pd.Timestamp | None) -> str:
    """``start .. end`` in UTC ISO 8601 (minutes), or ``latest`` when neither is given."""
    if start is None and end is None:
        return "latest"
    f = (lambda t: "…" if t is None else as_utc_timestamp(t).strftime("%Y-%m-%dT%H:%MZ"))
    return f"{f(start)} .. {f(end)}"


def where(provider: str, zone: str, start: Any, end: Any) -> str:
    """The prefix of every provider message: ``provider: zone Z, start .. end``."""
    return f"{provider}: zone {zone}, {span(start, end)}"


def redact(url: str) -> str:
    """``url`` with the values of key parameters replaced by ``***``."""
    base, _, query = url.partition("?")
    if not query:
        return url
    parts = []
    for kv in query.split("&"):
        k, eq, _ = kv.partition("=")
        parts.append(f"{k}=***" if eq and k in SECRET_PARAMS else kv)
    return f"{base}?{'&'.join(parts)}"


@dataclass
class ProviderConfig:
    """How to reach one provider and what to pull from it.

    ``zones`` maps GridShift zone ids to the provider's own (``{"DE-LU": "DE"}``; a zone not listed is
    passed as is). The key is read from ``api_key`` (tests), else the file ``api_key_file``, else the
    environment variable ``api_key_env`` (each adapter has a default name); it never appears in ``repr``.
    ``interval_s`` is the pull clock, ``stale_after_s`` the age after which the last good data count as
    stale, ``min_interval_s`` the pause kept between two requests (default: the adapter's, from the
    provider's published rate limit).
    """

    name: str
    base_url: str | None = None
    zones: dict[str, str] = field(default_factory=dict)
    signals: tuple[str, ...] = ()
    api_key: str | None = field(default=None, repr=False)
    api_key_env: str | None = None
    api_key_file: str | None = None
    username_env: str | None = None
    timeout_s: float = 30.0
    retries: int = 3
    backoff_s: float = 1.0
    min_interval_s: float | None = None
    interval_s: float = 900.0
    stale_after_s: float = 6 * 3600.0
    forecasts: bool = True
    options: dict[str, Any] = field(default_factory=dict)

    def key(self, default_env: str | None) -> str | None:
        """The API key (or None when none is configured)."""
        if self.api_key:
            return self.api_key
        if self.api_key_file:
            try:
                return Path(self.api_key_file).expanduser().read_text(encoding="utf-8").strip() or None
            except OSError as e:
                raise ProviderError(f"{self.name}: cannot read the key file: {e.strerror or e}",
                                    file=self.api_key_file) from None
        env = self.api_key_env or default_env
        return os.environ.get(env) or None if env else None


@dataclass
class Batch:
    """Rows from one request or a few: ``rows`` has :data:`COLUMNS` (``issue_time`` NaT for actuals)."""

    provider: str
    zone: str
    rows: pd.DataFrame
    problems: list[str] = field(default_factory=list)

    @staticmethod
    def empty(provider: str, zone: str) -> Batch:
        return Batch(provider, zone, frame([]))

    def extend(self, other: Batch) -> Batch:
        rows = other.rows if self.rows.empty else self.rows if other.rows.empty else \
            pd.concat([self.rows, other.rows], ignore_index=True)
        return Batch(self.provider, self.zone, rows, [*self.problems, *other.problems])


def frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Raw records (``signal``, ``at``, ``value``, optional ``issue_time``) as a frame with :data:`COLUMNS`
    (times parsed as UTC, values as floats; unparseable ones become NaT/NaN for :func:`clean` to drop)."""
    df = pd.DataFrame(list(records), columns=list(COLUMNS))
    df["signal"] = df["signal"].astype(str)
    for c in ("at", "issue_time"):
        df[c] = pd.to_datetime(df[c], errors="coerce", utc=True, format="ISO8601")
    df["value"] = pd.to_numeric(df["value"], errors="coerce").astype(float)
    return df


def non_negative(signal: str) -> bool:
    """Whether values of ``signal`` can never be negative (prices, net flows and storage can)."""
    return any(k in signal for k in NON_NEGATIVE) and not signal.endswith(SIGNED)


def clean(batch: Batch, start: Any = None, end: Any = None, *, step_s: float | None = None,
          forecast: bool = False) -> Batch:
    """Drop the rows that must never be stored, and say why, one line per kind of problem.

    Dropped: rows without a readable time or a finite number; negative values of signals that cannot be
    negative (carbon intensities, shares, MW); actuals outside ``[start, end)``; times off the ``step_s``
    grid; hours given twice with different values (both dropped: which one is right is unknown; repeats of
    the same value are kept once). Missing hours are reported (``step_s`` known), never filled.
    """
    df = batch.rows
    problems: list[str] = []
    pre = where(batch.provider, batch.zone, start, end)
    if df.empty:
        return batch

    def drop(mask: np.ndarray, what: str) -> None:
        nonlocal df
        n = int(mask.sum())
        if n:
            first = df.loc[mask, "at"].dropna()
            at = f" (first at {first.iloc[0].strftime('%Y-%m-%dT%H:%MZ')})" if len(first) else ""
            problems.append(f"{pre}: {n} row(s) dropped: {what}{at}")
            df = df.loc[~mask]

    drop(df["at"].isna().to_numpy(), "time missing or not ISO 8601")
    drop(~np.isfinite(df["value"].to_numpy()), "value missing or not a finite number")
    if forecast:
        drop(df["issue_time"].isna().to_numpy(), "forecast without an issue time")
    neg = df["signal"].map(non_negative).to_numpy(bool) & (df["value"].to_numpy() < 0)
    drop(neg, "negative value of a signal that cannot be negative")
    if not forecast and (start is not None or end is not None):
        at = df["at"]
        out, edge = np.zeros(len(df), bool), np.zeros(len(df), bool)
        step = pd.Timedelta(seconds=step_s or 0)
        if start is not None:
            out |= (at < as_utc_timestamp(start) - step).to_numpy()
            edge |= ((at < as_utc_timestamp(start)) & (at >= as_utc_timestamp(start) - step)).to_numpy()
        if end is not None:
            out |= (at >= as_utc_timestamp(end) + step).to_numpy()
            edge |= ((at >= as_utc_timestamp(end)) & (at < as_utc_timestamp(end) + step)).to_numpy()
        df = df.loc[~edge]  # the slot just outside an end: APIs with inclusive ends send it; not a fault
        drop(out[~edge], "time outside the requested range")
    if step_s:
        off = (df["at"].astype("int64") // 10**9) % int(step_s) != 0
        drop(off.to_numpy(), f"time not on the {int(step_s)} s grid")
    key = ["signal", "at", "issue_time"]
    dup = df.duplicated(key, keep=False).to_numpy()
    if dup.any():
        conflict = df.groupby(key, dropna=False)["value"].transform("nunique").to_numpy() > 1
        drop(dup & conflict, "the same time given twice with different values")
        n_rep = int(df.duplicated(key).sum())
        if n_rep:
            problems.append(f"{pre}: {n_rep} repeated row(s) with the same value kept once")
            df = df.drop_duplicates(key)
    if step_s and not df.empty:
        for sig, g in df.groupby("signal"):
            for _, gi in g.groupby("issue_time", dropna=False):
                lo = gi["at"].min() if start is None or forecast else as_utc_timestamp(start)
                hi = gi["at"].max() + pd.Timedelta(seconds=step_s) if end is None or forecast \
                    else as_utc_timestamp(end).floor(f"{int(step_s)}s")  # a slot still running is not missing
                expected = pd.date_range(lo.ceil(f"{int(step_s)}s"), hi, freq=f"{int(step_s)}s", inclusive="left")
                missing = expected.difference(pd.DatetimeIndex(gi["at"]))
                if len(missing):
                    problems.append(f"{pre}: {sig}: {len(missing)} of {len(expected)} slot(s) missing "
                                    f"(first {missing[0].strftime('%Y-%m-%dT%H:%MZ')}); not filled")
    df = df.sort_values(["signal", "issue_time", "at"], na_position="first").reset_index(drop=True)
    return Batch(batch.provider, batch.zone, df, [*batch.problems, *problems])


class Provider(ABC):
    """One grid-signal provider behind the common interface (see the module docstring)."""

    name: str = "provider"
    default_base_url: str = ""
    key_env: str | None = None
    needs_key: bool = True
    doc_url: str = ""
    min_interval_s: float = 0.0  # the pause between requests its published rate limit asks for
    # signal name -> (actuals available, forecasts available)
    signals: dict[str, tuple[bool, bool]] = {}
    # the signals pulled when a configuration names none (default: all of ``signals``)
    default_signals: tuple[str, ...] = ()

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self.base_url = (config.base_url or self.default_base_url).rstrip("/")
        self._last_request = 0.0

    # -- the interface -------------------------------------------------------------------------------

    @abstractmethod
    def actuals(self, zone: str, start: datetime, end: datetime, signals: Iterable[str] | None = None) -> Batch:
        """Measured or estimated-actual values with data time in ``[start, end)``."""

    def forecasts(self, zone: str, signals: Iterable[str] | None = None, start: datetime | None = None,
                  end: datetime | None = None) -> Batch:
        """The provider's latest issued forecast (rows carry their issue time); none by default."""
        return Batch.empty(self.name, zone)

    def latest(self, zone: str, signals: Iterable[str] | None = None) -> Batch:
        """The newest actual value of each signal (by default: the last of the past six hours' actuals)."""
        now = pd.Timestamp.now(tz="UTC")
        b = self.actuals(zone, (now - pd.Timedelta(hours=6)).floor("h").to_pydatetime(), now.to_pydatetime(),
                         signals)
        rows = b.rows.sort_values("at").groupby("signal", as_index=False).tail(1).reset_index(drop=True)
        return Batch(b.provider, b.zone, rows, b.problems)

    def past_forecasts(self, zone: str, start: datetime, end: datetime,
                       signals: Iterable[str] | None = None) -> Batch:
        """Every forecast the provider issued in ``[start, end)``, with its issue time (for backtests), where the
        provider keeps them; a provider that does not says so in one line."""
        raise ProviderError(f"{where(self.name, zone, start, end)}: the provider offers no past forecasts")

    # -- shared helpers ------------------------------------------------------------------------------

    def provider_zone(self, zone: str) -> str:
        return self.config.zones.get(zone, zone)

    def chosen(self, signals: Iterable[str] | None, forecast: bool) -> list[str]:
        """The signals asked for (or the configured ones, or all) that this provider has, in order."""
        want = list(signals) if signals is not None else \
            list(self.config.signals) or list(self.default_signals) or list(self.signals)
        unknown = [s for s in want if s not in self.signals]
        if unknown:
            raise ProviderError(f"{self.name}: unknown signal(s) {', '.join(unknown)} "
                                f"(known: {', '.join(self.signals)})")
        return [s for s in want if self.signals[s][1 if forecast else 0]]

    def key(self) -> str | None:
        k = self.config.key(self.key_env)
        if k is None and self.needs_key:
            raise ProviderError(f"{self.name}: no API key (set ${self.config.api_key_env or self.key_env} "
                                "or api_key_file in the provider configuration)")
        return k

    def _pace(self) -> None:
        pause = self.min_interval_s if self.config.min_interval_s is None else self.config.min_interval_s
        wait = pause - (time.monotonic() - self._last_request)
        if wait > 0:
            http._sleep(wait)
        self._last_request = time.monotonic()

    def get(self, path: str, params: Mapping[str, Any] | list[tuple[str, Any]] | None, zone: str,
            start: Any, end: Any, *, headers: Mapping[str, str] | None = None,
            auth: tuple[str, str] | None = None) -> bytes:
        """GET ``base_url + path`` with ``params``; the body, or :class:`ProviderError` naming the zone,
        the range and what failed (HTTP status and reason, with a hint for 401/403/404)."""
        url = self.base_url + path
        if params:
            url += "?" + urlencode(list(params.items()) if isinstance(params, Mapping) else params)
        self._pace()
        try:
            got = http.get(url, timeout_s=self.config.timeout_s, retries=self.config.retries,
                           backoff_s=self.config.backoff_s, headers=headers, auth=auth)
        except http.HttpError as e:
            hint = {401: ": the API key was refused", 403: ": the key has no access to this zone or endpoint",
                    404: ": unknown zone or endpoint", 400: ": the provider refused the request (unknown zone?)"}
            raise ProviderError(f"{where(self.name, zone, start, end)}: {e.reason}{hint.get(e.status or 0, '')} "
                                f"({redact(url)})") from None
        return got.body

    def get_json(self, path: str, params: Any, zone: str, start: Any, end: Any, **kw: Any) -> Any:
        body = self.get(path, params, zone, start, end, **kw)
        try:
            return json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ProviderError(f"{where(self.name, zone, start, end)}: malformed JSON in the answer "
                                f"({getattr(e, 'msg', e)})") from None

    def shape_error(self, zone: str, start: Any, end: Any, what: str) -> ProviderError:
        return ProviderError(f"{where(self.name, zone, start, end)}: unexpected answer: {what}")


class RangeProvider(Provider):
    """A provider whose actuals and forecasts are one ranged query, ``_fetch(zone, start, end, signals,
    issued=None)``: actuals over ``[start, end)``; forecasts from the current hour for ``forecast_h`` hours,
    issued now (the day-ahead hours already published, for markets)."""

    forecast_h: int = 48
    end_inclusive: bool = False  # the provider's range includes its end: the row at ``end`` is dropped

    @abstractmethod
    def _fetch(self, zone: str, start: Any, end: Any, want: list[str], issued: Any = None) -> Batch:
        """The rows of the signals ``want`` over the range (forecast rows carry ``issued``)."""

    def actuals(self, zone: str, start: datetime, end: datetime, signals: Iterable[str] | None = None) -> Batch:
        return self._fetch(zone, start, end, self.chosen(signals, forecast=False))

    def forecasts(self, zone: str, signals: Iterable[str] | None = None, start: datetime | None = None,
                  end: datetime | None = None) -> Batch:
        now = pd.Timestamp(utcnow()).floor("h")
        start = now if start is None else start
        end = now + pd.Timedelta(hours=self.forecast_h) if end is None else end
        b = self._fetch(zone, start, end, self.chosen(signals, forecast=True), issued=now.isoformat())
        if not self.end_inclusive:
            return b
        rows = b.rows[b.rows["at"] < as_utc_timestamp(end)].reset_index(drop=True)
        return Batch(b.provider, b.zone, rows, b.problems)
