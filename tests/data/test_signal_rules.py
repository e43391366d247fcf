"""One reader, one set of rules for a zone's own series: `signals_file` and its alias `carbon_file` are both
read at their native resolution, and a gap is filled only under the scenario's explicit policy
(`fill_gaps_max_h`), else it is an error naming the row after it (docs/guide/scenario.md, "A zone's own
signals")."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gridshift.data.scenario import load_scenario
from gridshift.data.signal_file import apply_gap_policy, read_signal_file
from gridshift.errors import DataError, ScenarioError
from gridshift.world.build import assemble

SCENARIO = """
name: rules
time_range: {{start: 2023-01-02T00:00:00Z, end: 2023-01-03T00:00:00Z}}
slot_duration_s: 900
fill_gaps_max_h: {fill}
objective: carbon
zones:
  - {{id: DE-LU, {key}: {file}, price_usd_per_mwh: 50{extra}}}
sites:
  - {{name: de, zone: DE-LU, region: europe-west3, pue: 1.2, power_cap_mw: 0.05, pools: [{{accelerator: H100, count: 8}}]}}
workloads:
  jobs: [{{job_id: j, kind: fine-tuning, arrival: "2023-01-02T00:00:00Z", work_acc_h: 1.0}}]
policies: [asap]
"""


def quarter_hours(tmp_path, column="moer_g_per_kwh", drop=(), name="q.csv"):
    t = pd.date_range("2022-12-30T00:00Z", "2023-01-04T00:00Z", freq="15min", inclusive="left")
    v = 300.0 + (t.minute == 30) * 100.0  # the half past quarter hour differs: visible only at native resolution
    keep = ~np.isin(np.arange(t.size), list(drop))
    (tmp_path / name).write_text(f"time,{column}\n" + "".join(
        f"{x.strftime('%Y-%m-%dT%H:%M:%SZ')},{y}\n" for x, y in zip(t[keep], v[keep])))
    return t, v


def scenario(tmp_path, key, fill=0, extra=""):
    (tmp_path / "s.yaml").write_text(SCENARIO.format(key=key, file="q.csv", fill=fill, extra=extra))
    return load_scenario(tmp_path / "s.yaml")


@pytest.mark.parametrize("key, extra", [("carbon_file", ", carbon_basis: marginal"), ("signals_file", "")])
def test_both_keys_plan_at_the_files_native_resolution(tmp_path, key, extra):
    t, v = quarter_hours(tmp_path)
    asm = assemble(scenario(tmp_path, key, extra=extra))
    sig = asm.signals
    got = pd.Series(sig.carbon_g_per_kwh[0, sig.lookback_slots:], index=asm.world.slot_starts)
    want = pd.Series(v, index=t).reindex(got.index)
    assert np.array_equal(got.to_numpy(), want.to_numpy())  # 15-minute values, not hourly means
    assert got.max() == 400.0


@pytest.mark.parametrize("key, extra", [("carbon_file", ", carbon_basis: marginal"), ("signals_file", "")])
def test_a_gap_is_an_error_naming_its_row_unless_the_scenario_fills_it(tmp_path, key, extra):
    t, v = quarter_hours(tmp_path, drop=(200, 201))  # two quarter hours missing inside the run's history
    with pytest.raises((DataError, ScenarioError)) as e:
        assemble(scenario(tmp_path, key, extra=extra))
    assert "(2 missing rows)" in str(e.value) and "fill_gaps_max_h" in str(e.value)
    assert "line 202" in str(e.value)  # the file's row after the gap (header = line 1)
    asm = assemble(scenario(tmp_path, key, fill=1, extra=extra))  # up to an hour: filled linearly
    sig = asm.signals
    assert np.isfinite(sig.carbon_g_per_kwh).all()
    if key == "carbon_file":
        assert any("filled 2 missing row(s)" in n for n in asm.notes)


def test_a_gap_longer_than_the_policy_is_still_an_error(tmp_path):
    quarter_hours(tmp_path, drop=range(200, 210))  # 2.5 hours missing
    with pytest.raises(DataError, match=r"10 missing rows.*fills gaps up to 1 h"):
        scenario(tmp_path, "signals_file", fill=1)


def test_rows_further_apart_than_an_hour_are_hourly_with_gaps(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text("time,moer_g_per_kwh\n2023-06-05T00:00:00Z,400\n2023-06-06T00:00:00Z,410\n")
    sf = read_signal_file(f, carbon_only=True, max_gap_s=None)
    assert sf.step_s == 3600 and len(sf.times) == 25 and sf.gaps[0][1] == 23
    assert apply_gap_policy(sf, 24 * 3600).values["carbon_g_per_kwh"][12] == pytest.approx(405.0)


def test_a_signals_file_may_name_its_carbon_by_signal_and_carbon_file_needs_one_carbon_column(tmp_path):
    f = tmp_path / "s.csv"
    f.write_text("time,moer_g_per_kwh,price_usd_per_mwh\n2023-01-01T00:00:00Z,500,40\n2023-01-01T01:00:00Z,520,-5\n")
    sf = read_signal_file(f)
    assert sf.columns == {"price_usd_per_mwh": "price_usd_per_mwh", "carbon_g_per_kwh": "moer_g_per_kwh"}
    assert list(sf.values["price_usd_per_mwh"]) == [40.0, -5.0]
    with pytest.raises(DataError, match="one value column"):
        read_signal_file(f, carbon_only=True)
    f.write_text("time,moer_g_per_kwh\n2023-01-01T01:00:00Z,500\n2023-01-01T00:00:00Z,520\n")
    with pytest.raises(DataError, match="increasing time order") as e:
        read_signal_file(f, carbon_only=True)
    assert e.value.row == 3
