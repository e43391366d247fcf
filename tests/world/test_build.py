"""From a scenario file to arrays: signals on the slot grid, power-cap schedules, lookback, inline jobs,
gap filling only when asked, and end-to-end determinism."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from gridshift.data import load_carbon, load_price, resolve
from gridshift.data.scenario import load_scenario, parse_scenario
from gridshift.errors import DataError, ScenarioError
from gridshift.sim.runner import policy_specs, run_policies
from gridshift.world.build import assemble

ROOT = Path(__file__).resolve().parents[2]
SMALL = ROOT / "tests" / "scenarios" / "small.yaml"
INLINE = ROOT / "examples" / "inline-jobs-5min.yaml"


def test_five_minute_slots_hold_hourly_signal_and_cap_schedule():
    sc = load_scenario(INLINE)
    asm = assemble(sc)
    sig, f = asm.signals, asm.world.fleet
    assert sig.slot_duration_s == 300 and asm.world.n_slots == 3 * 24 * 12
    hourly = load_carbon("US-TEX-ERCO")["carbon_g_per_kwh"]
    t0 = pd.Timestamp("2023-09-04T00:00:00Z")
    # every 5-minute slot carries its hour's value
    got = sig.carbon_g_per_kwh[0, sig.lookback_slots: sig.lookback_slots + 24]
    assert np.allclose(got[:12], hourly[t0]) and np.allclose(got[12:], hourly[t0 + pd.Timedelta(hours=1)])
    # direct basis for California
    direct = load_carbon("US-CAL-CISO", basis="direct")["carbon_g_per_kwh"][t0]
    assert sig.carbon_g_per_kwh[1, sig.lookback_slots] == pytest.approx(direct)
    # 7 days of history before the start
    assert sig.lookback_slots == 7 * 24 * 12
    # the austin cap schedule: 0.12 MW, 0.06 MW from 5 Sep 22:00 to 6 Sep 02:00
    cap = f.power_cap_mw[0]
    i = lambda ts: int((pd.Timestamp(ts) - t0).total_seconds() // 300)  # noqa: E731
    assert cap[i("2023-09-05T21:55Z")] == 0.12 and cap[i("2023-09-05T22:00Z")] == 0.06
    assert cap[i("2023-09-06T01:55Z")] == 0.06 and cap[i("2023-09-06T02:00Z")] == 0.12
    # inline jobs: the MI300X throughput override applies to that job only
    jobs = asm.world.jobs
    k = f.type_names.index("MI300X")
    row = list(jobs.job_id).index("finetune-support-bot")
    assert jobs.speed[row, k] == pytest.approx(0.9)
    assert jobs.work_acc_h[row] == 96 and jobs.gang_min[row] == 4 and jobs.gang_max[row] == 8


def test_prices_match_data_and_constant_override():
    asm = assemble(load_scenario(SMALL))
    sig = asm.signals
    p = load_price("DE-LU")["price_usd_per_mwh"]
    t0 = pd.Timestamp("2023-06-05T00:00:00Z")
    assert sig.price_usd_per_mwh[0, sig.lookback_slots] == pytest.approx(p[t0])
    assert np.all(sig.price_usd_per_mwh[1] == 110)


def test_end_to_end_deterministic():
    a = run_policies(assemble(load_scenario(SMALL)), policy_specs(assemble(load_scenario(SMALL)), ["threshold"]))
    b = run_policies(assemble(load_scenario(SMALL)), policy_specs(assemble(load_scenario(SMALL)), ["threshold"]))
    assert a[0].metrics["carbon_t"] == b[0].metrics["carbon_t"]
    assert a[0].jobs.equals(b[0].jobs)


def _with_gap(tmp_path, monkeypatch):
    """A data dir whose DE-LU carbon file misses the hour 2023-06-06 03:00 UTC."""
    src = resolve("carbon/DE-LU")
    dst = tmp_path / "data" / "grid" / "carbon" / src.name
    dst.parent.mkdir(parents=True)
    lines = src.read_text(encoding="utf-8").splitlines(keepends=True)
    dst.write_text("".join(x for x in lines if not x.startswith("2023-06-06 03:00:00")), encoding="utf-8")
    monkeypatch.setenv("GRIDSHIFT_DATA_DIR", str(tmp_path / "data"))
    return dst


def test_gap_is_an_error_unless_filling_is_asked(tmp_path, monkeypatch):
    dst = _with_gap(tmp_path, monkeypatch)
    doc = yaml.safe_load(SMALL.read_text())
    with pytest.raises(DataError) as e:
        assemble(parse_scenario(yaml.safe_dump(doc)))
    msg = str(e.value)
    assert dst.name in msg and re.search(r": line \d+", msg) and "\n" not in msg
    doc["fill_gaps_max_h"] = 2
    asm = assemble(parse_scenario(yaml.safe_dump(doc)))
    assert any("filled 1 missing hour" in n and "DE-LU" in n for n in asm.notes)
    t = pd.Timestamp("2023-06-06T03:00:00Z")
    i = asm.signals.lookback_slots + int((t - pd.Timestamp("2023-06-05T00:00:00Z")).total_seconds() // 3600)
    c = asm.signals.carbon_g_per_kwh[0]
    assert c[i] == pytest.approx((c[i - 1] + c[i + 1]) / 2)


def test_service_region_out_of_latency_bound():
    doc = yaml.safe_load(SMALL.read_text())
    doc["workloads"]["services"][0]["demand"]["peak_requests_per_s"] = {"asia-northeast1": 5}
    with pytest.raises(ScenarioError, match="no site can serve region 'asia-northeast1'"):
        assemble(parse_scenario(yaml.safe_dump(doc)))
