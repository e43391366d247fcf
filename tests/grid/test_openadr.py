"""OpenADR 2.0b: the event converter, and a VEN–VTN exchange over loopback with a real openleadr VTN."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime, timedelta

import pytest

from gridshift.errors import GridShiftError
from gridshift.grid.openadr import (
    SIMPLE_LEVEL_CUT_FRAC,
    OpenADRError,
    convert_openadr_event,
    gridevents_from_openadr,
)

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
START = NOW + timedelta(hours=2)
KW = {"name": "powerReal", "description": "RealPower", "unit": "W", "scale": "k",
      "power_attributes": {"hertz": 60, "voltage": 480, "ac": True}}


def oadr_event(signals, *, event_id="ev-1", start=START, status="far", test_event=False, priority=0,
               targets=None, duration=None):
    """An event dict as openleadr hands it to a VEN's on_event handler."""
    if not isinstance(signals, list):
        signals = [signals]
    if duration is None:
        duration = sum((iv["duration"] for iv in signals[0]["intervals"]), timedelta(0))
    return {
        "event_descriptor": {"event_id": event_id, "modification_number": 0, "event_status": status,
                             "market_context": "oadr://utility.example/dr", "priority": priority,
                             "test_event": test_event, "created_date_time": NOW - timedelta(minutes=5)},
        "active_period": {"dtstart": start, "duration": duration},
        "event_signals": signals,
        "targets": targets if targets is not None else [{"ven_id": "ven-1"}],
        "response_required": "always",
    }


def signal(name, stype, payloads, *, minutes=30, measurement=None):
    s = {"signal_name": name, "signal_type": stype, "signal_id": f"sig-{name}",
         "intervals": [{"duration": timedelta(minutes=minutes), "signal_payload": p, "uid": i}
                       for i, p in enumerate(payloads)]}
    if measurement is not None:
        s["measurement"] = measurement
    return s


def convert(event, **kw):
    kw.setdefault("site", "site-a")
    kw.setdefault("baseline_mw", 10.0)
    kw.setdefault("now", NOW)
    return gridevents_from_openadr(event, **kw)


def raises_field(event, field, *, match=None, **kw) -> OpenADRError:
    with pytest.raises(OpenADRError, match=match) as ei:
        convert(event, **kw)
    e = ei.value
    assert isinstance(e, GridShiftError)
    assert e.field == field
    assert "\n" not in str(e) and f"field '{field}'" in str(e)
    return e


# ------------------------------------------------------------------------------------------- SIMPLE levels


def test_simple_levels_become_cuts_one_event_per_run_of_equal_levels():
    ev = oadr_event(signal("SIMPLE", "level", [1, 1, 0, 3, 2]))
    got = convert(ev)
    assert [(g.kind, g.cut_frac, g.start, g.end) for g in got] == [
        ("cut", SIMPLE_LEVEL_CUT_FRAC[1], START, START + timedelta(hours=1)),
        ("cut", SIMPLE_LEVEL_CUT_FRAC[3], START + timedelta(minutes=90), START + timedelta(minutes=120)),
        ("cut", SIMPLE_LEVEL_CUT_FRAC[2], START + timedelta(minutes=120), START + timedelta(minutes=150)),
    ]
    assert SIMPLE_LEVEL_CUT_FRAC == {1: 0.10, 2: 0.25, 3: 0.50}
    assert [g.id for g in got] == ["ev-1/1", "ev-1/2", "ev-1/3"]
    assert all(g.sites == ["site-a"] and g.baseline_mw == 10.0 for g in got)
    # notice = interval start − time received
    assert [g.notice_s for g in got] == [7200.0, 7200.0 + 5400.0, 7200.0 + 7200.0]


def test_lowercase_simple_and_integer_float_payloads():
    got = convert(oadr_event(signal("simple", "level", [2.0])))
    assert len(got) == 1 and got[0].cut_frac == 0.25 and got[0].baseline_mw == 10.0


def test_cuts_need_a_baseline():
    raises_field(oadr_event(signal("SIMPLE", "level", [1])), "baseline_mw", match="give the site's baseline_mw",
                 baseline_mw=None)
    # a limit does not
    (g,) = convert(oadr_event(signal("LOAD_DISPATCH", "setpoint", [900.0], measurement=KW)), baseline_mw=None)
    assert g.limit_mw == pytest.approx(0.9)


def test_a_cut_larger_than_the_baseline_is_refused():
    raises_field(oadr_event(signal("LOAD_DISPATCH", "delta", [-12000.0], measurement=KW)), "event_signals[0]",
                 match="cut_mw must be below baseline_mw")


def test_simple_level_zero_asks_for_nothing():
    assert convert(oadr_event(signal("SIMPLE", "level", [0, 0]))) == []


@pytest.mark.parametrize("level", [4, -1, 1.5])
def test_simple_level_out_of_range(level):
    raises_field(oadr_event(signal("SIMPLE", "level", [level])), "event_signals[0].intervals[0].signal_payload",
                 match="level 0, 1, 2 or 3")


# ------------------------------------------------------------------------------ LOAD_DISPATCH / LOAD_CONTROL


@pytest.mark.parametrize(("scale", "payload"), [("k", 2500.0), ("M", 2.5), ("none", 2.5e6), (None, 2.5e6),
                                                ("G", 0.0025)])
def test_setpoint_in_power_real_with_scale_codes(scale, payload):
    m = dict(KW, scale=scale) if scale is not None else {k: v for k, v in KW.items() if k != "scale"}
    (g,) = convert(oadr_event(signal("LOAD_DISPATCH", "setpoint", [payload], measurement=m)))
    assert g.kind == "limit" and g.limit_mw == pytest.approx(2.5)
    assert g.cut_frac is None and g.baseline_mw is None
    assert (g.start, g.end) == (START, START + timedelta(minutes=30))


def test_setpoint_needs_power_real_watts():
    raises_field(oadr_event(signal("LOAD_DISPATCH", "setpoint", [2500.0])),
                 "event_signals[0].intervals[0].signal_payload", match="needs a powerReal item")
    raises_field(oadr_event(signal("LOAD_DISPATCH", "setpoint", [2500.0],
                                   measurement=dict(KW, name="powerReactive", unit="VAR"))),
                 "event_signals[0].intervals[0].signal_payload", match="powerReal W, not powerReactive VAR")
    raises_field(oadr_event(signal("LOAD_DISPATCH", "setpoint", [2500.0], measurement=dict(KW, scale="x"))),
                 "event_signals[0].intervals[0].signal_payload.scale", match="unknown SI scale code 'x'")


def test_delta_reduction_is_a_cut_in_mw():
    (g,) = convert(oadr_event(signal("LOAD_DISPATCH", "delta", [-750.0], measurement=KW)))
    assert g.kind == "cut" and g.cut_mw == pytest.approx(0.75) and g.baseline_mw == 10.0
    assert convert(oadr_event(signal("LOAD_DISPATCH", "delta", [0.0], measurement=KW))) == []
    raises_field(oadr_event(signal("LOAD_DISPATCH", "delta", [500.0], measurement=KW)),
                 "event_signals[0].intervals[0].signal_payload", match="asks for more load")


def test_multiplier_is_a_cut_fraction():
    got = convert(oadr_event(signal("LOAD_DISPATCH", "multiplier", [0.8, 1.0, 0.0])))
    assert [(g.cut_frac, g.start) for g in got] == [(pytest.approx(0.2), START),
                                                    (1.0, START + timedelta(hours=1))]
    raises_field(oadr_event(signal("LOAD_DISPATCH", "multiplier", [1.2])),
                 "event_signals[0].intervals[0].signal_payload", match="within \\[0, 1\\]")


def test_load_control_capacity_is_a_share_of_site_capacity():
    (g,) = convert(oadr_event(signal("LOAD_CONTROL", "x-loadControlCapacity", [0.6])), capacity_mw=20.0)
    assert g.kind == "limit" and g.limit_mw == pytest.approx(12.0)
    e = raises_field(oadr_event(signal("LOAD_CONTROL", "x-loadControlCapacity", [0.6])),
                     "event_signals[0].intervals[0].signal_payload")
    assert "capacity_mw" in str(e)
    raises_field(oadr_event(signal("LOAD_CONTROL", "x-loadControlCapacity", [1.5])),
                 "event_signals[0].intervals[0].signal_payload", match="within \\[0, 1\\]", capacity_mw=20.0)


def test_load_control_capacity_in_power_real_is_absolute():
    (g,) = convert(oadr_event(signal("LOAD_CONTROL", "x-loadControlCapacity", [4.0], measurement=dict(KW, scale="M"))))
    assert g.kind == "limit" and g.limit_mw == 4.0


def test_load_control_percent_offset_is_a_cut_fraction():
    (g,) = convert(oadr_event(signal("LOAD_CONTROL", "x-loadControlPercentOffset", [-20])))
    assert g.kind == "cut" and g.cut_frac == pytest.approx(0.2) and g.baseline_mw == 10.0
    raises_field(oadr_event(signal("LOAD_CONTROL", "x-loadControlPercentOffset", [15])),
                 "event_signals[0].intervals[0].signal_payload", match="more load")


# ---------------------------------------------------------------------------------------- prices, carbon

USD_KWH = {"name": "currencyPerKWh", "description": "currencyPerKWh", "unit": "USD", "scale": "none"}


def test_price_signals_in_usd_per_mwh():
    got = convert(oadr_event(signal("ELECTRICITY_PRICE", "price", [0.12, 0.12, 0.30], measurement=USD_KWH)))
    assert [(g.kind, g.price_usd_per_mwh, g.end - g.start) for g in got] == [
        ("price", pytest.approx(120.0), timedelta(hours=1)), ("price", pytest.approx(300.0), timedelta(minutes=30))]
    assert all(g.baseline_mw is None and g.cut_frac is None for g in got)


def test_price_without_item_is_read_as_usd_per_kwh_with_a_note():
    conv = convert_openadr_event(oadr_event(signal("ENERGY_PRICE", "price", [0.05, 0.07])), site="site-a",
                                 baseline_mw=None, now=NOW)
    assert [g.price_usd_per_mwh for g in conv.events] == [pytest.approx(50.0), pytest.approx(70.0)]
    assert len(conv.notes) == 1 and "USD per kWh" in conv.notes[0]


def test_relative_prices_need_a_tariff():
    (g,) = convert(oadr_event(signal("ELECTRICITY_PRICE", "priceRelative", [0.02], measurement=USD_KWH)),
                   tariff_usd_per_mwh=50.0)
    assert g.price_usd_per_mwh == pytest.approx(70.0)
    (g,) = convert(oadr_event(signal("ELECTRICITY_PRICE", "priceMultiplier", [1.5])), tariff_usd_per_mwh=50.0)
    assert g.price_usd_per_mwh == pytest.approx(75.0)
    e = raises_field(oadr_event(signal("ELECTRICITY_PRICE", "priceRelative", [0.02])),
                     "event_signals[0].intervals[0].signal_payload")
    assert "tariff_usd_per_mwh" in str(e)


def test_price_in_another_currency_is_refused():
    raises_field(oadr_event(signal("ELECTRICITY_PRICE", "price", [0.2], measurement=dict(USD_KWH, unit="EUR"))),
                 "event_signals[0].intervals[0].signal_payload", match="not EUR")


def test_carbon_signal():
    (g,) = convert(oadr_event(signal("x-CARBON_INTENSITY", "level", [420.0])))
    assert g.kind == "carbon" and g.carbon_g_per_kwh == 420.0


# ------------------------------------------------------------------------------------ unsupported, errors


@pytest.mark.parametrize(("name", "stype"), [("LOAD_CONTROL", "x-loadControlSetpoint"),
                                             ("LOAD_CONTROL", "x-loadControlLevelOffset"),
                                             ("BID_LOAD", "setpoint"), ("DEMAND_CHARGE", "price"),
                                             ("CHARGE_STATE", "delta"), ("LOAD_DISPATCH", "level"),
                                             ("x-SOMETHING", "level")])
def test_unsupported_signal_names_the_field(name, stype):
    e = raises_field(oadr_event([signal("SIMPLE", "level", [1]), signal(name, stype, [1.0])]),
                     "event_signals[1].signal_type", match="is not supported")
    assert f"{name}/{stype}" in str(e) and "'ev-1'" in str(e)


def test_missing_and_malformed_fields():
    ev = oadr_event(signal("SIMPLE", "level", [1]))
    del ev["event_descriptor"]["event_id"]
    raises_field(ev, "event_descriptor.event_id", match="is missing")
    ev = oadr_event(signal("SIMPLE", "level", ["high"]))
    raises_field(ev, "event_signals[0].intervals[0].signal_payload", match="finite number")
    ev = oadr_event(signal("SIMPLE", "level", [float("nan")]))
    raises_field(ev, "event_signals[0].intervals[0].signal_payload", match="finite number")
    ev = oadr_event(signal("SIMPLE", "level", [1], minutes=0))
    raises_field(ev, "event_signals[0].intervals[0].duration", match="open-ended")
    ev = oadr_event(signal("SIMPLE", "level", [1]))
    ev["event_signals"] = []
    raises_field(ev, "event_signals", match="is missing|no signals")


# ------------------------------------------------------------------------------- event-level rules, timing


def test_test_events_ask_for_nothing():
    conv = convert_openadr_event(oadr_event(signal("SIMPLE", "level", [3]), test_event=True), site="site-a",
                                 baseline_mw=10.0, now=NOW)
    assert conv.events == [] and conv.test_event and "test event" in conv.notes[0]


def test_priority_is_noted_and_the_event_still_applies():
    conv = convert_openadr_event(oadr_event(signal("SIMPLE", "level", [1]), priority=2), site="site-a",
                                 baseline_mw=10.0, now=NOW)
    assert len(conv.events) == 1 and "priority 2" in conv.notes[0]


@pytest.mark.parametrize("status", ["cancelled", "completed"])
def test_cancelled_and_completed_events(status):
    conv = convert_openadr_event(oadr_event(signal("SIMPLE", "level", [1]), status=status), site="site-a",
                                 baseline_mw=10.0, now=NOW)
    assert conv.events == [] and conv.cancelled == (status == "cancelled") and conv.notes


def test_resource_targets_select_the_site():
    other = oadr_event(signal("SIMPLE", "level", [1]), targets=[{"resource_id": "site-b"}])
    assert convert(other) == []
    mine = oadr_event(signal("SIMPLE", "level", [1]), targets=[{"resource_id": "site-b"}, {"resource_id": "site-a"}])
    assert len(convert(mine)) == 1


def test_interval_starts_follow_the_active_period_and_past_intervals_are_dropped():
    start = NOW - timedelta(minutes=45)  # received 45 min into the event
    got = convert(oadr_event(signal("SIMPLE", "level", [1, 2, 2]), start=start))
    # interval 0 is over; interval 1 is running (notice 0); interval 2 merges with it
    assert [(g.cut_frac, g.start, g.end, g.notice_s) for g in got] == [
        (0.25, start + timedelta(minutes=30), start + timedelta(minutes=90), 0.0)]


def test_explicit_interval_starts_and_naive_times_are_utc():
    naive = START.replace(tzinfo=None)
    ev = oadr_event(signal("SIMPLE", "level", [1, 1]), start=naive)
    ev["event_signals"][0]["intervals"][1]["dtstart"] = naive + timedelta(hours=1)  # a gap of 30 min
    got = convert(ev, now=NOW.replace(tzinfo=None))
    assert [(g.start, g.end) for g in got] == [(START, START + timedelta(minutes=30)),
                                              (START + timedelta(hours=1), START + timedelta(minutes=90))]


def test_several_signals_number_their_events():
    ev = oadr_event([signal("SIMPLE", "level", [1]),
                     signal("LOAD_DISPATCH", "setpoint", [5000.0], measurement=KW),
                     signal("ELECTRICITY_PRICE", "price", [0.1], measurement=USD_KWH)], event_id="multi")
    got = convert(ev)
    assert [(g.id, g.kind) for g in got] == [("multi/1", "cut"), ("multi/2", "limit"), ("multi/3", "price")]


# ---------------------------------------------------------------------------- VEN–VTN exchange over loopback


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _until(pred, timeout_s: float = 25.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not pred():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _exchange() -> None:
    from openleadr import OpenADRServer, enums, objects

    from gridshift.grid.openadr import GridShiftVen

    port = _free_port()
    vtn = OpenADRServer(vtn_id="GRIDSHIFT-TEST-VTN", http_host="127.0.0.1", http_port=port,
                        requested_poll_freq=timedelta(seconds=1), show_fingerprint=False,
                        verify_message_signatures=False)
    registrations: list[dict] = []
    offered_reports: list[dict] = []
    telemetry: list[tuple[datetime, float]] = []

    def on_create_party_registration(payload):
        registrations.append(payload)
        return "ven-gs-1", "reg-gs-1"

    def on_register_report(ven_id, resource_id, measurement, unit, scale, min_sampling_interval,
                           max_sampling_interval):
        offered_reports.append({"ven_id": ven_id, "resource_id": resource_id, "measurement": measurement,
                                "unit": unit, "scale": scale, "min": min_sampling_interval,
                                "max": max_sampling_interval})
        return telemetry.extend, min_sampling_interval

    vtn.add_handler("on_create_party_registration", on_create_party_registration)
    vtn.add_handler("on_register_report", on_register_report)
    await vtn.run()

    loop = asyncio.get_running_loop()
    start = (datetime.now(UTC) + timedelta(minutes=10)).replace(microsecond=0)
    # A SIMPLE event: moderate for 15 min, then high for 15 min.
    simple_opt = loop.create_future()
    simple_id = vtn.add_event(ven_id="ven-gs-1", signal_name="SIMPLE", signal_type="level", event_id="dr-simple",
                              intervals=[{"dtstart": start, "duration": timedelta(minutes=15), "signal_payload": 1},
                                         {"dtstart": start + timedelta(minutes=15),
                                          "duration": timedelta(minutes=15), "signal_payload": 2}],
                              callback=simple_opt)
    # A LOAD_DISPATCH setpoint of 2500 kW (powerReal W, scale k) for an hour, an hour later.
    dispatch_opt = loop.create_future()
    t1 = start + timedelta(hours=1)
    dispatch = objects.Event(
        event_descriptor=objects.EventDescriptor(event_id="dr-dispatch", modification_number=0,
                                                 market_context="oadr://utility.example/dr", event_status="far"),
        event_signals=[objects.EventSignal(
            intervals=[objects.Interval(dtstart=t1, duration=timedelta(hours=1), signal_payload=2500.0, uid=0)],
            signal_name="LOAD_DISPATCH", signal_type="setpoint", signal_id="sig-dispatch",
            measurement=objects.Measurement(name="powerReal", description="RealPower", unit="W", scale="k",
                                            power_attributes=objects.PowerAttributes(hertz=60, voltage=480,
                                                                                     ac=True)))],
        targets=[objects.Target(ven_id="ven-gs-1")])
    vtn.add_raw_event(ven_id="ven-gs-1", event=dispatch, callback=dispatch_opt)

    seen: list[list] = []

    def on_events(events):
        seen.append(events)
        return all(e.kind != "limit" for e in events)  # take part in cuts, decline the setpoint

    ven = GridShiftVen("gridshift-test-ven", f"http://127.0.0.1:{port}/OpenADR2/Simple/2.0b", "site-a",
                       on_events, lambda: 3.21, baseline_mw=8.0, report_interval_s=1)
    t_before = datetime.now(UTC)
    try:
        await ven.run()

        # registered: the VTN's handler saw the VEN, the VEN holds the ids the VTN gave
        assert [r["ven_name"] for r in registrations] == ["gridshift-test-ven"]
        assert registrations[0]["profile_name"] == "2.0b"
        assert ven.registered and ven.ven_id == "ven-gs-1"

        # opt responses reach the VTN's callbacks
        assert await asyncio.wait_for(simple_opt, 25) == enums.OPT.OPT_IN
        assert await asyncio.wait_for(dispatch_opt, 25) == enums.OPT.OPT_OUT
        assert ven.responses == {simple_id: "optIn", "dr-dispatch": "optOut"}

        # the events as converted by the VEN
        by_id = {c.event_id: c.events for c in ven.conversions}
        simple = by_id["dr-simple"]
        assert [(g.id, g.kind, g.sites, g.start, g.end, g.cut_frac, g.baseline_mw) for g in simple] == [
            ("dr-simple/1", "cut", ["site-a"], start, start + timedelta(minutes=15), 0.10, 8.0),
            ("dr-simple/2", "cut", ["site-a"], start + timedelta(minutes=15), start + timedelta(minutes=30),
             0.25, 8.0)]
        assert 0 < simple[0].notice_s <= (start - t_before).total_seconds()
        (limit,) = by_id["dr-dispatch"]
        assert (limit.kind, limit.sites, limit.start, limit.end) == ("limit", ["site-a"], t1, t1 + timedelta(hours=1))
        assert limit.limit_mw == pytest.approx(2.5)
        assert sorted(seen, key=lambda evs: evs[0].id) == [[limit], simple]

        # the telemetry report: offered as powerReal W with scale k; values in kW equal the achieved load
        await _until(lambda: telemetry, what="a telemetry report at the VTN")
        assert offered_reports and offered_reports[0]["resource_id"] == "site-a"
        assert (offered_reports[0]["unit"], offered_reports[0]["scale"]) == ("W", "k")
        assert offered_reports[0]["measurement"] == "RealPower"
        assert offered_reports[0]["min"] == timedelta(seconds=1)
        _, value = telemetry[0]
        assert value == pytest.approx(3.21 * 1000)
    finally:
        await ven.stop()
        await vtn.stop()


def test_ven_vtn_exchange_over_loopback():
    asyncio.run(asyncio.wait_for(_exchange(), timeout=90))


def test_ven_reports_an_unreachable_vtn():
    from gridshift.grid.openadr import GridShiftVen

    async def go():
        port = _free_port()  # nothing listens there
        ven = GridShiftVen("ven", f"http://127.0.0.1:{port}/OpenADR2/Simple/2.0b", "site-a",
                           lambda events: True, lambda: 1.0)
        try:
            with pytest.raises(OpenADRError, match="could not register") as ei:
                await ven.run()
            assert ei.value.field == "vtn_url"
        finally:
            await ven.stop()

    asyncio.run(asyncio.wait_for(go(), timeout=60))


def test_ven_report_value_is_kw_and_interval_is_whole_seconds():
    from gridshift.grid.openadr import REPORT_SCALE, GridShiftVen

    async def go():
        ven = GridShiftVen("ven", "http://127.0.0.1:1/OpenADR2/Simple/2.0b", "site-a", lambda events: True,
                           lambda: 4.5)
        assert REPORT_SCALE == "k" and ven._report_value() == 4500.0
        with pytest.raises(OpenADRError) as ei:
            GridShiftVen("ven", "http://127.0.0.1:1/OpenADR2/Simple/2.0b", "site-a", lambda events: True,
                         lambda: 4.5, report_interval_s=0.5)
        assert ei.value.field == "report_interval_s"

    asyncio.run(go())


def test_ven_answers_without_network():
    """The VEN's event handler: unsupported → optOut; nothing asked → optIn without a call; cancelled →
    on_cancel; a failing decision → optOut; without a stated baseline, the achieved load is the baseline."""
    from gridshift.grid.openadr import GridShiftVen

    calls: list[list] = []
    cancelled: list[str] = []

    def on_events(events):
        calls.append(events)
        if any(e.kind == "price" for e in events):
            raise RuntimeError("no decision")
        return True

    async def go():
        ven = GridShiftVen("ven", "http://127.0.0.1:1/OpenADR2/Simple/2.0b", "site-a", on_events, lambda: 6.0,
                           on_cancel=cancelled.append)
        start = datetime.now(UTC) + timedelta(hours=1)
        unsupported = oadr_event(signal("BID_LOAD", "setpoint", [1.0]), event_id="bad", start=start)
        assert await ven._handle_event(unsupported) == "optOut"
        assert ven.errors and ven.errors[0].field == "event_signals[0].signal_type"
        assert await ven._handle_event(oadr_event(signal("SIMPLE", "level", [2]), event_id="t", start=start,
                                                  test_event=True)) == "optIn"
        assert calls == []
        assert await ven._handle_event(oadr_event(signal("SIMPLE", "level", [2]), event_id="ok",
                                                  start=start)) == "optIn"
        assert [(e.cut_frac, e.baseline_mw) for e in calls[-1]] == [(0.25, 6.0)]
        assert await ven._handle_event(oadr_event(signal("ENERGY_PRICE", "price", [0.1]), event_id="p",
                                                  start=start)) == "optOut"
        assert await ven._handle_event(oadr_event(signal("SIMPLE", "level", [2]), event_id="ok", start=start,
                                                  status="cancelled")) == "optIn"
        assert cancelled == ["ok"]
        assert ven.responses == {"bad": "optOut", "t": "optIn", "ok": "optIn", "p": "optOut"}

    asyncio.run(go())


def test_cli_ven_fails_in_one_line():
    import typer
    from typer.testing import CliRunner

    from gridshift.cli.ven import register

    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:  # keep 'ven' a subcommand
        pass

    port = _free_port()
    url = f"http://127.0.0.1:{port}/OpenADR2/Simple/2.0b"
    base = ["ven", "--vtn-url", url, "--ven-name", "v", "--site", "site-a"]
    r = CliRunner().invoke(app, base)
    assert r.exit_code == 2 and "exactly one of --load-mw or --load-mw-file" in r.output
    r = CliRunner().invoke(app, [*base, "--load-mw", "3"])
    assert r.exit_code == 2 and "could not register with the VTN" in r.output
    assert r.output.strip().splitlines() == [
        f"error: field 'vtn_url': could not register with the VTN at {url} (unreachable, or it refused this VEN)"]
