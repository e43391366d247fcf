"""A zone's own signal file at its native resolution: read and checked with one-line errors, and turned into
slot values by the slot's length (averaged when the slot is longer, held when it is shorter)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gridshift.data.scenario import load_scenario
from gridshift.data.signal_file import read_signal_file, to_slots
from gridshift.errors import DataError
from gridshift.model.scenario import PolicySpec
from gridshift.sim.runner import run_policies
from gridshift.world.build import assemble


def _csv(tmp_path, rows, header="time,carbon_g_per_kwh", name="sig.csv"):
    p = tmp_path / name
    p.write_text(header + "\n" + "\n".join(rows) + "\n")
    return p


def _quarter_hours(start: str, values) -> list[str]:
    t = pd.date_range(start, periods=len(values), freq="15min", tz="UTC")
    return [f"{x.isoformat()},{v}" for x, v in zip(t, values)]


def test_reads_a_quarter_hourly_file(tmp_path):
    sf = read_signal_file(_csv(tmp_path, _quarter_hours("2023-01-01T00:00Z", range(1, 9))))
    assert sf.step_s == 900 and len(sf.times) == 8 and str(sf.times.tz) == "UTC"
    np.testing.assert_array_equal(sf.values["carbon_g_per_kwh"], np.arange(1.0, 9.0))


def test_slots_average_longer_and_hold_shorter(tmp_path):
    sf = read_signal_file(_csv(tmp_path, _quarter_hours("2023-01-01T00:00Z", range(1, 9))))
    hours = pd.date_range("2023-01-01", periods=2, freq="h", tz="UTC")
    np.testing.assert_allclose(to_slots(sf, "carbon_g_per_kwh", hours, 3600, field="f"), [2.5, 6.5])
    halves = pd.date_range("2023-01-01", periods=4, freq="30min", tz="UTC")
    np.testing.assert_allclose(to_slots(sf, "carbon_g_per_kwh", halves, 1800, field="f"), [1.5, 3.5, 5.5, 7.5])
    fives = pd.date_range("2023-01-01T00:10Z", periods=3, freq="5min", tz="UTC")
    np.testing.assert_allclose(to_slots(sf, "carbon_g_per_kwh", fives, 300, field="f"), [1, 2, 2])
    later = pd.date_range("2023-01-01T01:00Z", periods=2, freq="h", tz="UTC")
    with pytest.raises(DataError, match="not the slot starting 2023-01-01T02:00:00"):
        to_slots(sf, "carbon_g_per_kwh", later, 3600, field="zones[0].signals_file")


@pytest.mark.parametrize("rows, header, match, row, field", [
    (["2023-01-01T00:00,1", "2023-01-01T00:15,2"], None, "no UTC offset", 2, "time"),
    (["2023-01-01T00:00Z,1", "2023-01-01T00:15Z,2", "2023-01-01T00:45Z,3"], None, "a missing row", 4, "time"),
    (["2023-01-01T00:00Z,1", "2023-01-01T00:15Z,2", "2023-01-01T00:15Z,3"], None, "repeats", 4, "time"),
    (["2023-01-01T00:00Z,1", "2023-01-01T00:07Z,2"], None, "divide an hour", 3, "time"),
    (["2023-01-01T00:00Z,1", "2023-01-01T00:15Z,-4"], None, "not a number in", 3, "carbon_g_per_kwh"),
    (["2023-01-01T00:00Z,1", "2023-01-01T00:15Z,nan"], None, "not a number in", 3, "carbon_g_per_kwh"),
    (["2023-01-01T00:00Z,1", "2023-01-01T00:15Z,2"], "when,carbon_g_per_kwh", "no 'time' column", None, "time"),
    (["2023-01-01T00:00Z,1", "2023-01-01T00:15Z,2"], "time,co2", "no signal column", None, None),
])
def test_bad_files_say_where(tmp_path, rows, header, match, row, field):
    p = _csv(tmp_path, rows, header or "time,carbon_g_per_kwh")
    with pytest.raises(DataError, match=match) as e:
        read_signal_file(p)
    assert e.value.file == str(p) and e.value.row == row and e.value.field == field
    assert "\n" not in str(e.value)


SCENARIO = """
name: quarter-hours
time_range: {{start: 2023-01-02T00:00:00Z, end: 2023-01-03T00:00:00Z}}
slot_duration_s: {slot}
objective: carbon
zones:
  - {{id: DE-LU, signals_file: {file}, price_usd_per_mwh: 50}}
sites:
  - {{name: de, zone: DE-LU, region: europe-west3, pue: 1.2, power_cap_mw: 0.05, pools: [{{accelerator: H100, count: 8}}]}}
workloads:
  recurring:
    - {{name: nightly, kind: batch-inference, tz: UTC, start_local_h: 12, run_h: 0.25, gang: 8, window_h: 8,
       interruptible: false}}
policies: [asap]
"""


def _scenario(tmp_path, slot):
    t = pd.date_range("2022-12-30T00:00Z", "2023-01-04T00:00Z", freq="15min", tz="UTC", inclusive="left")
    v = np.full(t.size, 300.0)
    v[(t.hour == 7) & (t.minute == 30)] = 20.0  # one clean quarter hour a day, at 07:30
    _csv(tmp_path, [f"{x.isoformat()},{y}" for x, y in zip(t, v)], name="de-15min.csv")
    (tmp_path / f"s{slot}.yaml").write_text(SCENARIO.format(slot=slot, file="de-15min.csv"))
    return load_scenario(tmp_path / f"s{slot}.yaml")


def test_the_slot_is_a_planning_choice_not_the_data(tmp_path):
    got = {}
    for slot in (900, 3600):
        asm = assemble(_scenario(tmp_path, slot))
        sig = asm.signals
        ci = sig.carbon_g_per_kwh[0, sig.lookback_slots:]
        assert sig.lookback_slots > 0  # the file's history before the start is attached
        (run,) = run_policies(asm, [PolicySpec(name="oracle", params={"cap_levels": [1.0]})])
        st = run.jobs["first_start"].iloc[0]
        got[slot] = (st, ci[int((st - asm.world.slot_starts[0]).total_seconds() // slot)])
    assert got[900] == (pd.Timestamp("2023-01-02T07:30Z"), 20.0)  # the clean quarter hour itself
    assert got[3600][1] == pytest.approx((3 * 300 + 20) / 4)  # an hourly slot sees the hour's mean
    assert got[3600][0] == pd.Timestamp("2023-01-02T07:00Z")


def test_a_bad_signal_file_fails_the_scenario_in_one_line(tmp_path):
    _csv(tmp_path, ["2023-01-01T00:00Z,1", "2023-01-01T00:15Z,2", "2023-01-01T00:45Z,3"], name="de-15min.csv")
    (tmp_path / "s.yaml").write_text(SCENARIO.format(slot=900, file="de-15min.csv"))
    with pytest.raises(DataError) as e:
        load_scenario(tmp_path / "s.yaml")
    assert e.value.row == 4 and e.value.field == "time" and e.value.file.endswith("de-15min.csv")
