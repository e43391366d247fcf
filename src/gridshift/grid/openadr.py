"""OpenADR 2.0b: grid events from a utility's VTN, and a VEN that answers them for one site.

Two parts:

- :func:`convert_openadr_event` / :func:`gridevents_from_openadr`: a pure converter from an OpenADR event
  (the dict that ``openleadr`` hands to a VEN's ``on_event`` handler, an ``oadrEvent`` in the OpenADR 2.0b
  schema) to :class:`~gridshift.model.events.GridEvent` objects. It needs no network and no ``openleadr``.
- :class:`GridShiftVen`: a Virtual End Node built on ``openleadr.OpenADRClient``. It registers with the VTN,
  polls for events, converts them, asks the caller whether to take part (optIn / optOut) and reports the
  site's achieved facility load as a TELEMETRY_USAGE report.

Signal names, types and units follow the OpenADR 2.0b Profile Specification (OpenADR Alliance, document
20120912-1), table of event signal names and types: SIMPLE (level 0-3), ELECTRICITY_PRICE / ENERGY_PRICE /
BID_PRICE (price, priceRelative, priceMultiplier; currencyPerKWh), LOAD_DISPATCH (setpoint, delta,
multiplier, level; powerReal), LOAD_CONTROL (x-loadControlCapacity, x-loadControlLevelOffset,
x-loadControlPercentOffset, x-loadControlSetpoint). Quantities carry an EMIX item (itemUnits plus an SI
scale code: p n micro m c d k M G T none). ``docs/guide/openadr.md`` has the full mapping table.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from gridshift.errors import GridShiftError, require
from gridshift.model.events import GridEvent

log = logging.getLogger("gridshift.grid.openadr")


class OpenADRError(GridShiftError):
    """An OpenADR event GridShift cannot follow (unsupported signal, bad unit or value), or a VTN exchange
    that failed (registration refused, VTN unreachable)."""


# SIMPLE signal levels (OpenADR 2.0b: 0 normal, 1 moderate, 2 high, 3 special) as cuts of the site's baseline.
# They match the throughput losses flexibility tiers 1, 2 and 3 accept (10, 25, 50 %).
SIMPLE_LEVEL_CUT_FRAC: dict[int, float] = {1: 0.10, 2: 0.25, 3: 0.50}

# EMIX SI scale codes (siScaleCode) and their factors.
SI_SCALE: dict[str, float] = {"p": 1e-12, "n": 1e-9, "micro": 1e-6, "m": 1e-3, "c": 1e-2, "d": 1e-1,
                              "none": 1.0, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}

PRICE_SIGNAL_NAMES = ("ELECTRICITY_PRICE", "ENERGY_PRICE", "BID_PRICE")
# GridShift's own signal name (the profile allows names that start with 'x-'): grid carbon intensity in
# g CO2 per kWh, signal type 'level' or 'setpoint'.
CARBON_SIGNAL_NAME = "x-CARBON_INTENSITY"

# Facility load is reported in kW: EMIX powerReal, itemUnits W, siScaleCode k.
REPORT_SCALE = "k"
REPORT_UNITS_PER_MW = 1e6 / SI_SCALE[REPORT_SCALE]

_SUPPORTED = ("SIMPLE/level, LOAD_DISPATCH/setpoint|delta|multiplier, "
              "LOAD_CONTROL/x-loadControlCapacity|x-loadControlPercentOffset, "
              f"{'|'.join(PRICE_SIGNAL_NAMES)}/price|priceRelative|priceMultiplier, {CARBON_SIGNAL_NAME}/level|setpoint")


@dataclass
class OpenADRConversion:
    """What one OpenADR event became: the grid events, and why parts of it were not turned into any."""

    event_id: str
    modification_number: int
    status: str
    events: list[GridEvent] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    cancelled: bool = False
    test_event: bool = False


# --------------------------------------------------------------------------------------------------- helpers


def _err(message: str, field_: str, event_id: str | None = None) -> OpenADRError:
    prefix = f"OpenADR event '{event_id}': " if event_id else "OpenADR event: "
    return OpenADRError(prefix + message, field=field_)


def _utc(v: Any, field_: str, event_id: str | None) -> datetime:
    if isinstance(v, str):
        try:
            v = datetime.fromisoformat(v)
        except ValueError:
            raise _err(f"'{v}' is not an ISO 8601 date-time", field_, event_id) from None
    if not isinstance(v, datetime):
        raise _err(f"expected a date-time, got {v!r}", field_, event_id)
    return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)


def _duration(v: Any, field_: str, event_id: str | None) -> timedelta:
    if isinstance(v, timedelta):
        return v
    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
        return timedelta(seconds=float(v))
    raise _err(f"expected a duration, got {v!r}", field_, event_id)


def _number(v: Any, field_: str, event_id: str | None) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise _err(f"expected a finite number, got {v!r}", field_, event_id)
    return float(v)


def _get(d: Mapping, key: str, where: str, event_id: str | None) -> Any:
    if not isinstance(d, Mapping) or d.get(key) is None:
        raise _err("is missing", f"{where}.{key}" if where else key, event_id)
    return d[key]


def _scale_factor(measurement: Mapping, field_: str, event_id: str) -> float:
    scale = measurement.get("scale") or "none"
    if scale not in SI_SCALE:
        raise _err(f"unknown SI scale code '{scale}' (known: {', '.join(SI_SCALE)})", field_ + ".scale", event_id)
    return SI_SCALE[scale]


def _power_mw(value: float, measurement: Mapping | None, field_: str, event_id: str, what: str) -> float:
    """A powerReal quantity in W × scale, as MW."""
    if not measurement:
        raise _err(f"{what} needs a powerReal item (itemUnits W and an SI scale code)", field_, event_id)
    name, unit = measurement.get("name"), measurement.get("unit")
    if name != "powerReal" or unit != "W":
        raise _err(f"{what} must be in powerReal W, not {name} {unit}", field_, event_id)
    return value * _scale_factor(measurement, field_, event_id) / 1e6


def _price_usd_per_mwh(value: float, measurement: Mapping | None, field_: str, event_id: str,
                       notes: list[str]) -> float:
    """A currencyPerKWh quantity as USD/MWh (no item: USD/kWh is assumed and noted)."""
    if not measurement:
        note = f"event '{event_id}': the price signal has no item; read as USD per kWh"
        if note not in notes:
            notes.append(note)
        return value * 1000.0
    name, unit = measurement.get("name"), measurement.get("unit")
    if name != "currencyPerKWh":
        raise _err(f"prices must be in currencyPerKWh, not {name}", field_, event_id)
    if unit != "USD":
        raise _err(f"prices must be in USD, not {unit} (GridShift does not convert currencies)", field_, event_id)
    return value * _scale_factor(measurement, field_, event_id) * 1000.0


def _signals(event: Mapping, event_id: str) -> list[Mapping]:
    signals = _get(event, "event_signals", "", event_id)
    if isinstance(signals, Mapping):  # openleadr may nest the list one level deeper
        signals = signals.get("event_signals", [signals])
    if isinstance(signals, Mapping):
        signals = [signals]
    if not isinstance(signals, Sequence) or not signals:
        raise _err("has no signals", "event_signals", event_id)
    return list(signals)


def _targets_site(event: Mapping, site: str) -> tuple[bool, list[str]]:
    """Whether the event's targets include this site. Only resource_id targets name a resource; ven_id,
    group and area targets address the VEN, which speaks for one site."""
    resources: list[str] = []
    for t in event.get("targets") or []:
        if isinstance(t, Mapping) and t.get("resource_id") is not None:
            resources.append(str(t["resource_id"]))
    return (not resources or site in resources), resources


# ----------------------------------------------------------------------------------------------- converter


def _interval_values(signal: Mapping, si: int, start: datetime, event_id: str) -> list[tuple[datetime, datetime, float, int]]:
    """(start, end, payload, index) per interval. Interval starts follow one another from the active period's
    start unless an interval states its own dtstart (openleadr writes one on each)."""
    intervals = _get(signal, "intervals", f"event_signals[{si}]", event_id)
    if isinstance(intervals, Mapping):
        intervals = [intervals]
    if not intervals:
        raise _err("has no intervals", f"event_signals[{si}].intervals", event_id)
    out = []
    t = start
    for ii, iv in enumerate(intervals):
        where = f"event_signals[{si}].intervals[{ii}]"
        if iv.get("dtstart") is not None:
            t = _utc(iv["dtstart"], where + ".dtstart", event_id)
        d = _duration(_get(iv, "duration", where, event_id), where + ".duration", event_id)
        if d <= timedelta(0):
            raise _err("open-ended or empty intervals are not supported; give a duration > 0",
                       where + ".duration", event_id)
        v = _number(_get(iv, "signal_payload", where, event_id), where + ".signal_payload", event_id)
        out.append((t, t + d, v, ii))
        t = t + d
    return out


def _target(name: str, stype: str, v: float, measurement: Mapping | None, field_: str, event_id: str, *,
            capacity_mw: float | None, tariff_usd_per_mwh: float | None,
            notes: list[str]) -> dict[str, Any] | None:
    """The GridEvent fields one interval's payload asks for, or None for 'no request' (normal operation)."""
    sig = f"{name}/{stype}"
    if name.upper() == "SIMPLE" and stype == "level":
        if v != int(v) or int(v) not in (0, 1, 2, 3):
            raise _err(f"{sig} payload must be a level 0, 1, 2 or 3, not {v:g}", field_, event_id)
        if int(v) == 0:
            return None
        return {"kind": "cut", "cut_frac": SIMPLE_LEVEL_CUT_FRAC[int(v)]}
    if name == "LOAD_DISPATCH" and stype == "setpoint":
        mw = _power_mw(v, measurement, field_, event_id, sig)
        if mw < 0:
            raise _err(f"{sig} must be ≥ 0 W, not {v:g}", field_, event_id)
        return {"kind": "limit", "limit_mw": mw}
    if name == "LOAD_DISPATCH" and stype == "delta":
        mw = _power_mw(v, measurement, field_, event_id, sig)
        if mw > 0:
            raise _err(f"{sig} of +{v:g} asks for more load; GridShift follows only reductions (negative deltas)",
                       field_, event_id)
        return None if mw == 0 else {"kind": "cut", "cut_mw": -mw}
    if name == "LOAD_DISPATCH" and stype == "multiplier":
        if not 0 <= v <= 1:
            raise _err(f"{sig} must be within [0, 1] (a multiplier above 1 asks for more load), not {v:g}",
                       field_, event_id)
        return None if v == 1 else {"kind": "cut", "cut_frac": 1.0 - v}
    if name == "LOAD_CONTROL" and stype == "x-loadControlCapacity":
        if measurement:  # an absolute capacity in powerReal, as some VTNs send
            mw = _power_mw(v, measurement, field_, event_id, sig)
            if mw < 0:
                raise _err(f"{sig} must be ≥ 0 W, not {v:g}", field_, event_id)
            return {"kind": "limit", "limit_mw": mw}
        if not 0 <= v <= 1:
            raise _err(f"{sig} must be a share of the site's capacity within [0, 1], not {v:g}", field_, event_id)
        if capacity_mw is None:
            raise _err(f"{sig} is a share of the site's capacity; give the site's capacity_mw to follow it",
                       field_, event_id)
        return {"kind": "limit", "limit_mw": v * capacity_mw}
    if name == "LOAD_CONTROL" and stype == "x-loadControlPercentOffset":
        if not -100 <= v <= 0:
            raise _err(f"{sig} must be within [-100, 0] % (a positive offset asks for more load), not {v:g}",
                       field_, event_id)
        return None if v == 0 else {"kind": "cut", "cut_frac": -v / 100.0}
    if name in PRICE_SIGNAL_NAMES and stype in ("price", "priceRelative", "priceMultiplier"):
        if stype == "price":
            return {"kind": "price", "price_usd_per_mwh": _price_usd_per_mwh(v, measurement, field_, event_id, notes)}
        if tariff_usd_per_mwh is None:
            raise _err(f"{sig} is relative to a tariff; give tariff_usd_per_mwh to follow it", field_, event_id)
        if stype == "priceRelative":
            return {"kind": "price",
                    "price_usd_per_mwh": tariff_usd_per_mwh + _price_usd_per_mwh(v, measurement, field_, event_id, notes)}
        return {"kind": "price", "price_usd_per_mwh": tariff_usd_per_mwh * v}
    if name == CARBON_SIGNAL_NAME and stype in ("level", "setpoint"):
        if v < 0:
            raise _err(f"{sig} must be ≥ 0 g/kWh, not {v:g}", field_, event_id)
        return {"kind": "carbon", "carbon_g_per_kwh": v}
    raise _err(f"signal {sig} is not supported (supported: {_SUPPORTED})",
               field_.rsplit(".intervals", 1)[0] + ".signal_type", event_id)


def convert_openadr_event(
    event: Mapping[str, Any],
    *,
    site: str,
    baseline_mw: float | None,
    now: datetime,
    capacity_mw: float | None = None,
    tariff_usd_per_mwh: float | None = None,
) -> OpenADRConversion:
    """Convert one OpenADR 2.0b event (an ``openleadr`` event dict) for ``site``.

    ``baseline_mw`` is the reference of cut events (required when the event asks for a cut);
    ``capacity_mw`` the site's full facility capacity (the reference of LOAD_CONTROL x-loadControlCapacity
    shares); ``tariff_usd_per_mwh`` the tariff that priceRelative / priceMultiplier signals modify; ``now``
    the time the event was received (UTC), so that ``notice_s`` = interval start − now (at least 0).

    Each signal gives one GridEvent per run of back-to-back intervals with the same payload; intervals
    that ask for nothing (level 0, delta 0, multiplier 1, offset 0) give none. Test events, completed and
    cancelled events give none either, with a note. Raises :class:`OpenADRError` naming the field for
    signals, units or values GridShift cannot follow.
    """
    now = _utc(now, "now", None)
    desc = _get(event, "event_descriptor", "", None)
    event_id = str(_get(desc, "event_id", "event_descriptor", None))
    mod = desc.get("modification_number") or 0
    status = str(desc.get("event_status") or "none")
    conv = OpenADRConversion(event_id=event_id, modification_number=int(mod), status=status)

    if status == "cancelled":
        conv.cancelled = True
        conv.notes.append(f"event '{event_id}' was cancelled by the VTN")
        return conv
    if status == "completed":
        conv.notes.append(f"event '{event_id}' is completed")
        return conv
    if desc.get("test_event") not in (None, False, "false"):
        conv.test_event = True
        conv.notes.append(f"event '{event_id}' is a test event; it asks for nothing")
        return conv
    if desc.get("priority") not in (None, 0):
        conv.notes.append(f"event '{event_id}' has priority {desc['priority']}; "
                          "GridShift applies every event it takes part in, whatever its priority")
    ok, resources = _targets_site(event, site)
    if not ok:
        conv.notes.append(f"event '{event_id}' targets resources {', '.join(resources)}, not site '{site}'")
        return conv

    active = _get(event, "active_period", "", event_id)
    start = _utc(_get(active, "dtstart", "active_period", event_id), "active_period.dtstart", event_id)

    k = 0
    for si, signal in enumerate(_signals(event, event_id)):
        name = str(_get(signal, "signal_name", f"event_signals[{si}]", event_id))
        stype = str(_get(signal, "signal_type", f"event_signals[{si}]", event_id))
        measurement = signal.get("measurement")
        runs: list[list[Any]] = []  # [start, end, target]
        for t0, t1, v, ii in _interval_values(signal, si, start, event_id):
            where = f"event_signals[{si}].intervals[{ii}].signal_payload"
            target = _target(name, stype, v, measurement, where, event_id, capacity_mw=capacity_mw,
                             tariff_usd_per_mwh=tariff_usd_per_mwh, notes=conv.notes)
            if target is None:
                continue
            if t1 <= now:
                conv.notes.append(f"event '{event_id}' {name} interval {ii} ended before it was received")
                continue
            if runs and runs[-1][1] == t0 and runs[-1][2] == target:
                runs[-1][1] = t1
            else:
                runs.append([t0, t1, target])
        for t0, t1, target in runs:
            if target["kind"] == "cut" and baseline_mw is None:
                raise _err(f"{name}/{stype} asks for a cut from a baseline; give the site's baseline_mw",
                           "baseline_mw", event_id)
            k += 1
            extra = {"baseline_mw": baseline_mw} if target["kind"] == "cut" else {}
            try:
                conv.events.append(GridEvent(id=f"{event_id}/{k}", sites=[site], start=t0, end=t1,
                                             notice_s=max(0.0, (t0 - now).total_seconds()), **target, **extra))
            except ValueError as e:  # pydantic's ValidationError is a ValueError
                msg = "; ".join(x["msg"] for x in e.errors()) if hasattr(e, "errors") else str(e)
                raise _err(f"gives an invalid grid event: {msg}", f"event_signals[{si}]", event_id) from None
    return conv


def gridevents_from_openadr(event: Mapping[str, Any], *, site: str, baseline_mw: float | None,
                            now: datetime, capacity_mw: float | None = None,
                            tariff_usd_per_mwh: float | None = None) -> list[GridEvent]:
    """The grid events an OpenADR event asks of ``site`` (see :func:`convert_openadr_event`)."""
    return convert_openadr_event(event, site=site, baseline_mw=baseline_mw, now=now, capacity_mw=capacity_mw,
                                 tariff_usd_per_mwh=tariff_usd_per_mwh).events


# ---------------------------------------------------------------------------------------------------- VEN


async def _maybe_await(v: Any) -> Any:
    return await v if inspect.isawaitable(v) else v


class GridShiftVen:
    """An OpenADR 2.0b VEN (``openleadr.OpenADRClient``) for one site.

    - registers with the VTN at ``vtn_url`` (the VTN's 2.0b prefix, e.g.
      ``https://vtn.example.com/OpenADR2/Simple/2.0b``) and polls it as often as the VTN asks;
    - converts each event for ``site`` and calls ``on_events(list[GridEvent])``, which returns whether
      to take part: True answers optIn, False optOut. Events that ask for nothing (test events, level 0)
      are answered optIn without a call; events GridShift cannot follow (:class:`OpenADRError`) optOut.
      A cancelled event calls ``on_cancel(event_id)`` if given;
    - offers a TELEMETRY_USAGE report of the site's real power: ``achieved_load_mw()`` sampled every
      ``report_interval_s`` seconds (whole seconds; the VTN may ask for any period from that up to one
      hour), sent as powerReal in W with SI scale code k, i.e. in kW.

    ``baseline_mw`` (a number or a callable returning one) is the reference of cut events (default: the
    achieved load when the event arrives); ``capacity_mw``
    the site's full capacity (for LOAD_CONTROL capacity shares); ``tariff_usd_per_mwh`` the tariff relative
    prices modify. ``cert``, ``key``, ``passphrase``, ``ca_file`` and ``vtn_fingerprint`` are passed to
    ``openleadr`` for TLS and signed messages; without them the VEN talks plain HTTP, unsigned.
    """

    def __init__(
        self,
        ven_name: str,
        vtn_url: str,
        site: str,
        on_events: Callable[[list[GridEvent]], Any],
        achieved_load_mw: Callable[[], Any],
        *,
        baseline_mw: float | Callable[[], float | None] | None = None,
        capacity_mw: float | None = None,
        tariff_usd_per_mwh: float | None = None,
        on_cancel: Callable[[str], Any] | None = None,
        report_interval_s: int = 10,
        ven_id: str | None = None,
        cert: str | None = None,
        key: str | None = None,
        passphrase: str | None = None,
        ca_file: str | None = None,
        vtn_fingerprint: str | None = None,
        grid_hz: int = 60,
        grid_voltage_v: int = 480,
    ) -> None:
        openleadr = require("openleadr", "openadr", "the OpenADR VEN")
        OpenADRClient, enums, objects = openleadr.OpenADRClient, openleadr.enums, openleadr.objects

        if int(report_interval_s) != report_interval_s or report_interval_s < 1:
            raise OpenADRError(f"must be a whole number of seconds ≥ 1, not {report_interval_s}",
                               field="report_interval_s")
        self.site = site
        self.vtn_url = vtn_url
        self._on_events = on_events
        self._achieved_load_mw = achieved_load_mw
        self._baseline_mw = baseline_mw
        self._capacity_mw = capacity_mw
        self._tariff = tariff_usd_per_mwh
        self._on_cancel = on_cancel
        self.conversions: list[OpenADRConversion] = []  # every event received, as converted
        self.responses: dict[str, str] = {}  # event_id -> optIn / optOut
        self.errors: list[OpenADRError] = []
        self._stopped = asyncio.Event()

        self.client = OpenADRClient(ven_name=ven_name, vtn_url=vtn_url, ven_id=ven_id, cert=cert, key=key,
                                    passphrase=passphrase, ca_file=ca_file, vtn_fingerprint=vtn_fingerprint,
                                    show_fingerprint=False)
        self.client.add_handler("on_event", self._handle_event)
        self.client.add_handler("on_update_event", self._handle_event)
        period = timedelta(seconds=int(report_interval_s))
        measurement = objects.Measurement(
            name="powerReal", description="RealPower", unit="W", scale=REPORT_SCALE,
            power_attributes=objects.PowerAttributes(hertz=grid_hz, voltage=grid_voltage_v, ac=True))
        self.report_specifier_id, self.report_r_id = self.client.add_report(
            callback=self._report_value, resource_id=site, measurement=measurement,
            report_name=enums.REPORT_NAME.TELEMETRY_USAGE, reading_type=enums.READING_TYPE.DIRECT_READ,
            report_type=enums.REPORT_TYPE.USAGE, scale=REPORT_SCALE, report_duration=period,
            sampling_rate=objects.SamplingRate(min_period=period, max_period=max(period, timedelta(hours=1)),
                                               on_change=False),
            report_specifier_id=f"gridshift-{site}-telemetry", r_id=f"{site}-facility-power")

    @property
    def ven_id(self) -> str | None:
        return self.client.ven_id

    @property
    def registered(self) -> bool:
        return self.client.registration_id is not None

    def _baseline(self) -> float | None:
        """The stated baseline; without one, the site's achieved load when the event arrives."""
        b = self._baseline_mw
        v = b() if callable(b) else b
        if v is None:
            try:
                v = float(self._achieved_load_mw())
            except Exception:  # no load reading: cut events will be refused for want of a baseline
                log.exception("achieved_load_mw() failed while taking the baseline")
                return None
        return v if math.isfinite(v) and v > 0 else None

    def _report_value(self) -> float:
        """Facility power in kW (reported as W with scale k)."""
        mw = float(self._achieved_load_mw())
        if not math.isfinite(mw) or mw < 0:
            raise OpenADRError(f"achieved_load_mw() returned {mw}; expected a finite number ≥ 0",
                               field="achieved_load_mw")
        return mw * REPORT_UNITS_PER_MW

    async def _handle_event(self, event: dict) -> str:
        try:
            conv = convert_openadr_event(event, site=self.site, baseline_mw=self._baseline(),
                                         now=datetime.now(UTC), capacity_mw=self._capacity_mw,
                                         tariff_usd_per_mwh=self._tariff)
        except OpenADRError as e:
            log.warning("%s; answering optOut", e)
            self.errors.append(e)
            eid = str((event.get("event_descriptor") or {}).get("event_id"))
            self.responses[eid] = "optOut"
            return "optOut"
        self.conversions.append(conv)
        for note in conv.notes:
            log.info(note)
        opt = "optIn"
        if conv.cancelled:
            if self._on_cancel is not None:
                await _maybe_await(self._on_cancel(conv.event_id))
        elif conv.events:
            try:
                opt = "optIn" if await _maybe_await(self._on_events(conv.events)) else "optOut"
            except Exception:  # the caller's decision failed: do not promise a response
                log.exception("on_events failed for OpenADR event '%s'; answering optOut", conv.event_id)
                opt = "optOut"
        self.responses[conv.event_id] = opt
        return opt

    async def run(self) -> None:
        """Register with the VTN, offer the report and start polling in the running loop; returns once
        registered. Raises :class:`OpenADRError` if the VTN cannot be reached or refuses the VEN."""
        await self.client.run()
        if not self.registered:
            raise OpenADRError(f"could not register with the VTN at {self.vtn_url} "
                               "(unreachable, or it refused this VEN)", field="vtn_url")
        log.info("VEN %s registered with %s for site %s", self.ven_id, self.vtn_url, self.site)

    async def wait(self) -> None:
        """Wait until :meth:`stop` is called."""
        await self._stopped.wait()

    async def run_forever(self) -> None:
        """:meth:`run`, then wait until :meth:`stop` is called."""
        await self.run()
        await self.wait()

    async def stop(self) -> None:
        """Stop polling and reporting and close the HTTP session."""
        self._stopped.set()
        if self.client.client_session is not None:
            await self.client.stop()
