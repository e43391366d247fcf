"""Backtest metrics and decision quality against hand-computed cases; a short backtest end to end."""

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from gridshift.cli import app
from gridshift.forecast import make_forecaster
from gridshift.forecast.backtest import backtest, lead_metrics, targets
from gridshift.forecast.decision import decision_quality
from gridshift.studies.forecast_backtest import SUMMARY_COLUMNS, aggregate_targets, targets_table

runner = CliRunner()


def test_lead_metrics_by_hand():
    actual = np.array([[[10.0, 20.0], [10.0, 40.0]]])  # [Z=1, K=2, H=2]
    point = np.array([[[10.0, 25.0], [10.0, 30.0]]])
    lo = point - np.array([[[0.0, 1.0], [0.0, 20.0]]])
    hi = point + np.array([[[0.0, 1.0], [0.0, 20.0]]])
    m = lead_metrics(actual, point, None, lo, hi)
    assert m["mae"][0, 1] == pytest.approx(7.5)  # (5 + 10) / 2
    assert m["mape"][0, 1] == pytest.approx(25.0)  # (5/20 + 10/40) / 2 · 100
    assert m["smape"][0, 1] == pytest.approx(100 * (2 * 5 / 45 + 2 * 10 / 70) / 2)
    assert m["coverage80"][0, 1] == pytest.approx(0.5)  # 20 outside [24, 26], 40 inside [10, 50]
    assert m["width80"][0, 1] == pytest.approx(21.0)  # (2 + 40) / 2
    assert m["mae"][0, 0] == 0 and m["n"][0, 1] == 2


def test_lead_metrics_masks_invalid_and_near_zero_targets():
    actual = np.array([[[0.0, 100.0], [50.0, 100.0]]])
    point = np.array([[[1.0, 90.0], [55.0, 80.0]]])
    valid = np.array([[[True, True], [True, False]]])
    m = lead_metrics(actual, point, valid)
    assert m["mae"][0, 1] == 10.0 and m["n"][0, 1] == 1
    assert m["mape"][0, 0] == pytest.approx(10.0)  # the zero target is left out of MAPE, not of MAE
    assert m["mae"][0, 0] == pytest.approx(3.0)


def test_decision_quality_by_hand():
    actual = np.array([5.0, 3.0, 4.0, 1.0, 6.0, 2.0])
    # origin 0, window 4: now = 5, perfect = 1 (slot 3), saving 4
    # forecast picks slot 2 (forecast 0.5) -> actual 4: saving 1  => quality 1/4
    f0 = np.array([5.0, 3.0, 0.5, 2.0])
    # origin 2, window 4: now = 4, perfect = 1 (slot 3) saving 3; forecast picks slot 3 -> saving 3
    f2 = np.array([4.0, 1.0, 9.0, 9.0])
    r = decision_quality(actual, np.stack([f0, f2]), np.array([0, 2]), window=4, job=1)
    assert r["saving_perfect"] == 7 and r["saving_forecast"] == 4 and r["quality"] == pytest.approx(4 / 7)
    # a two-slot job: origin 0, now = 5+3, perfect = 1+3, forecast picks slots 2,3 (0.5, 2) -> 4+1
    r2 = decision_quality(actual, f0[None], np.array([0]), window=4, job=2)
    assert r2["saving_perfect"] == 4 and r2["saving_forecast"] == 3
    # a flat forecast (persistence) runs now: quality 0; a perfect one: 1
    flat = np.repeat(actual[[0]], 4)[None]
    assert decision_quality(actual, flat, np.array([0]), 4)["quality"] == 0
    assert decision_quality(actual, actual[None, :4], np.array([0]), 4)["quality"] == 1
    # origins whose window runs past the series are skipped
    assert decision_quality(actual, np.zeros((1, 4)), np.array([4]), 4)["origins"] == 0


def test_backtest_perfect_shape_and_targets():
    rng = np.random.default_rng(0)
    n = 24 * 50
    y = (200 + 50 * np.sin(2 * np.pi * np.arange(n) / 24) + rng.normal(0, 3, n))[None]
    o = np.arange(24 * 36, n - 1)
    res = backtest(y, {m: make_forecaster(m) for m in ("persistence", "seasonal-naive", "blend")}, o, 25)
    _a, ok = targets(y, o, 25)
    assert ok[0, -1, 1] and ok[0, -1, 2:].sum() == 0 and ok[0, 0].all()  # last origin n-2: only lead 1 is inside
    sn, bl, pe = res["seasonal-naive"], res["blend"], res["persistence"]
    # a clean daily cycle: seasonal-naive beats persistence at 12 h; the blend is at least as good as both
    assert sn.metrics["mae"][0, 12] < pe.metrics["mae"][0, 12]
    assert bl.metrics["mae"][0, 12] <= 1.02 * sn.metrics["mae"][0, 12]
    assert pe.decision[24][0] == 0 and bl.decision[24][0] > 0.8


def test_targets_table_and_aggregate():
    rows = []
    for model, mape in (("persistence", 10.0), ("seasonal-naive", 12.0), ("blend", 9.0)):
        for h in (1, 24):
            rows.append({"zone": "X", "signal": "carbon_intensity", "model": model, "lead_h": h, "mae": mape,
                         "mape": mape if h == 24 else mape / 2, "smape": 0.0, "coverage80": 0.8, "width80": 1.0})
    dec = pd.DataFrame([{"zone": "X", "signal": "carbon_intensity", "model": m, "window_h": w, "job_h": 1,
                         "quality": q} for m, q in (("persistence", 0.0), ("seasonal-naive", 0.5), ("blend", 0.6))
                        for w in (8, 24)])
    t = targets_table(pd.DataFrame(rows), dec, "blend")
    assert t.loc[0, "worst_mape_ratio"] == pytest.approx(0.9) and t.loc[0, "model_mape24"] == 9.0
    agg = aggregate_targets(t)
    assert agg["hard_zones"] == ["X"]
    assert agg["hard_mape24_gain_vs_persistence"] == pytest.approx(0.1)
    assert agg["hard_dq24_gain_vs_best_naive"] == pytest.approx(0.2)


@pytest.mark.slow
def test_cli_backtest_end_to_end(tmp_path):
    out = tmp_path / "bt"
    r = runner.invoke(app, ["forecast", "backtest", "--zone", "SG", "--signal", "carbon_intensity", "--horizon", "24h",
                            "--model", "blend", "--stride", "6h", "--warmup", "300d", "--out", str(out)])
    assert r.exit_code == 0, r.output
    s = pd.read_csv(out / "summary.csv")
    assert list(s.columns) == SUMMARY_COLUMNS
    assert set(s.model) == {"persistence", "seasonal-naive", "blend"}
    assert sorted(s.lead_h.unique()) == list(range(1, 25)) and len(s) == 3 * 24
    assert (s.mape >= 0).all() and s.coverage80.between(0, 1).all()
    d = pd.read_csv(out / "decision.csv")
    assert set(d.window_h) == {8, 24}
    for f in ("error_vs_lead.png", "fan_SG.png", "targets.csv", "run.json", "metrics.csv"):
        assert (out / f).stat().st_size > 0


@pytest.mark.parametrize("args, msg", [
    (["--zone", "ATLANTIS"], "ATLANTIS"),
    (["--zone", "GB", "--signal", "vibes"], "unknown signal"),
    (["--zone", "GB", "--model", "oracle9"], "unknown model"),
    (["--zone", "GB", "--horizon", "soon"], "not a duration"),
    (["--zone", "GB", "--signal", "price"], "GB"),
])
def test_cli_bad_input_one_line_exit_2(tmp_path, args, msg):
    r = runner.invoke(app, ["forecast", "backtest", *args, "--out", str(tmp_path / "o")])
    assert r.exit_code == 2
    lines = [x for x in r.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and msg in lines[0]
    assert not (tmp_path / "o").exists()
