"""Curtailment-enabled headroom: hand-computed synthetic cases, monotonicity, events, the flexibility-tier
join, and `gridshift headroom` end to end on the real EIA load data."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from gridshift.cli import app
from gridshift.errors import ScenarioError
from gridshift.studies import headroom as hr

runner = CliRunner()

HOURS_2023 = 8760


# --------------------------------------------------------------------------------------------- synthetic data


def _year(year: int, base_mw: float = 50.0) -> pd.Series:
    idx = pd.date_range(f"{year}-01-01", f"{year + 1}-01-01", freq="1h", tz="UTC", inclusive="left")
    return pd.Series(base_mw, index=idx, dtype=float)


def _peaky_2023() -> pd.Series:
    """Flat 50 MW, and in each season one 100 MW hour followed by one 90 MW hour.

    Every seasonal threshold is 100 MW, so the gaps are 0 (4 hours), 10 (4 hours) and 50 (all others). For a
    new load 10 < L <= 50 the curtailment rate is (4 * 1 + 4 * (1 - 10 / L)) / 8760 = (8 - 40 / L) / 8760.
    """
    s = _year(2023)
    for day in ("2023-01-15 12:00", "2023-04-15 12:00", "2023-07-15 12:00", "2023-10-15 12:00"):
        t = pd.Timestamp(day, tz="UTC")
        s[t] = 100.0
        s[t + pd.Timedelta("1h")] = 90.0
    return s


# --------------------------------------------------------------------------------------------- the solver


def test_ten_hour_series_hand_computed():
    # gaps 10, 20, 40, 40, 80 and five hours of 100; every hour weighs 1/10.
    # R(L) = 0.1 * sum(max(0, 1 - g/L)). On [20, 40]: R = 0.1 * (2 - 30/L) -> R = 0.1 at L = 30.
    # On [10, 20]: R = 0.1 * (1 - 10/L) -> R = 0.05 at L = 20. On [40, 80]: R = 0.1 * (4 - 110/L) -> 0.2 at 55.
    gaps = np.array([10, 20, 40, 40, 80, 100, 100, 100, 100, 100], dtype=float)
    rng = np.random.default_rng(0)
    shuffled = rng.permutation(gaps)  # order of hours does not matter for the energy limit
    assert hr.max_load_for_rate(shuffled, 0.1) == pytest.approx(30.0)
    assert hr.max_load_for_rate(shuffled, 0.05) == pytest.approx(20.0)
    assert hr.max_load_for_rate(shuffled, 0.2) == pytest.approx(55.0)
    np.testing.assert_allclose(hr.max_load_for_rate(shuffled, [0.05, 0.1, 0.2]), [20.0, 30.0, 55.0])
    # at 30 MW the new load loses 20 + 10 MWh of its 300 MWh: 10 %
    c = hr.curtailment_mw(gaps, 30.0)
    np.testing.assert_allclose(c, [20, 10, 0, 0, 0, 0, 0, 0, 0, 0])
    assert c.sum() / (30.0 * gaps.size) == pytest.approx(0.1)


def test_threshold_hours_alone_over_the_limit_give_zero():
    gaps = np.array([0.0, 5.0, 50.0, 50.0])  # the peak hour must curtail all of any new load: 25 % of hours
    assert hr.max_load_for_rate(gaps, 0.2) == 0.0
    # up to L = 5 only the peak hour curtails (R = 0.25); on [5, 50]: R = 0.25 + 0.25 (1 - 5/L) = 0.3 at 6.25
    assert hr.max_load_for_rate(gaps, 0.3) == pytest.approx(6.25)


def test_curtailment_never_exceeds_the_new_load():
    gaps = np.array([-20.0, 0.0, 5.0, 30.0])  # a negative gap: load already above the threshold
    np.testing.assert_allclose(hr.curtailment_mw(gaps, 10.0), [10, 10, 5, 0])
    np.testing.assert_allclose(hr.curtailment_mw(gaps, [10.0, 40.0]), [[10, 10, 5, 0], [40, 40, 35, 10]])


def test_rate_is_met_exactly_and_headroom_is_monotone():
    rng = np.random.default_rng(7)
    gaps = rng.gamma(2.0, 800.0, size=5000)
    weights = rng.uniform(0.5, 1.5, size=gaps.size)
    weights /= weights.sum()
    rates = np.array([0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.3])
    L = hr.max_load_for_rate(gaps, rates, weights)
    assert np.all(np.diff(L) > 0)
    for r, load in zip(rates, L):
        realised = (hr.curtailment_mw(gaps, [load * (1 - 1e-6), load, load * (1 + 1e-6)]) * weights).sum(axis=1) / (
            np.array([load * (1 - 1e-6), load, load * (1 + 1e-6)]))
        assert realised[1] == pytest.approx(r, rel=1e-9)
        assert realised[0] <= r < realised[2]


def test_solver_agrees_with_bisection():
    rng = np.random.default_rng(3)
    gaps = np.concatenate([rng.uniform(0, 2000, 3000), [0.0]])
    for r in (0.001, 0.01, 0.07):
        lo, hi = 0.0, 1e5
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            rate = hr.curtailment_mw(gaps, mid).sum() / (mid * gaps.size)
            lo, hi = (mid, hi) if rate <= r else (lo, mid)
        assert hr.max_load_for_rate(gaps, r) == pytest.approx(lo, rel=1e-9)


# --------------------------------------------------------------------------------------------- events


def test_events_are_maximal_runs():
    ev = hr.events(np.array([0, 1, 1, 0, 1, 0, 0, 1, 1, 1], dtype=bool))
    assert ev.start.tolist() == [1, 4, 7]
    assert ev.length_h.tolist() == [2, 1, 3]
    assert (ev.count, ev.mean_h, ev.max_h) == (3, 2.0, 3)
    assert hr.events(np.zeros(5, bool)).count == 0
    assert hr.events(np.ones(4, bool)).length_h.tolist() == [4]


def test_event_length_bound():
    gaps = np.array([5, 1, 2, 8, 0.5, 0.7, 0.9, 9], dtype=float)
    # windows of 3 hours: maxima 5, 8, 8, 8, 0.9, 9 -> runs of 3 curtailed hours appear above L = 0.9
    assert hr.max_load_for_event_length(gaps, 2) == pytest.approx(0.9)
    assert hr.events(hr.curtailment_mw(gaps, 0.9) > 0).max_h == 2
    assert hr.events(hr.curtailment_mw(gaps, 0.9001) > 0).max_h == 3
    assert hr.max_load_for_event_length(gaps, 1) == pytest.approx(0.7)  # windows of 2: min of maxima
    assert hr.max_load_for_event_length(gaps, 8) == float("inf")


def test_runs_do_not_cross_a_skipped_year():
    a, b = _year(2021), _year(2023)
    a[pd.Timestamp("2021-12-31 23:00", tz="UTC")] = 100.0  # the last hour before the gap...
    b[pd.Timestamp("2023-01-01 00:00", tz="UTC")] = 100.0  # ...and the first after it: both winter peaks
    for month in (4, 7, 10):  # one isolated 100 MW hour in each other season
        a[pd.Timestamp(2021, month, 15, 12, tz="UTC")] = 100.0
    rl = hr.prepare_region("SYN", pd.concat([a, b]))
    assert rl.years == (2021, 2023)
    assert int(rl.breaks.sum()) == 2  # the first hour, and the first hour of 2023
    at_peak = (rl.gap_mw < 1.0) & (hr.season_index(rl.time) == 0)
    assert hr.events(at_peak).length_h.tolist() == [2]  # adjacent positions...
    assert hr.events(at_peak, rl.breaks).length_h.tolist() == [1, 1]  # ...but not adjacent hours
    assert hr.max_load_for_event_length(rl.gap_mw, 1) == 0.0  # two 0-gap hours in a row, it seems
    assert hr.max_load_for_event_length(rl.gap_mw, 1, rl.breaks) == pytest.approx(50.0)
    assert hr.headroom(rl, 0.001, max_event_h=1).event_max_h == 1


def test_depth_bound():
    gaps = np.array([10.0, 20.0, 40.0])
    assert hr.max_load_for_depth(gaps, 0.5) == pytest.approx(20.0)  # at 20 MW the worst hour sheds 10 = half
    assert hr.max_load_for_depth(gaps, 1.0) == float("inf")
    assert hr.max_load_for_depth(np.array([0.0, 50.0]), 0.9) == 0.0  # a peak hour needs all of it off


# --------------------------------------------------------------------------------------------- one region


def test_seasonal_thresholds():
    s = _peaky_2023()
    s[pd.Timestamp("2023-12-24 18:00", tz="UTC")] = 120.0  # December belongs to winter
    th = hr.seasonal_peak_mw(s.index, s.to_numpy())
    season = hr.season_index(s.index)
    assert set(np.unique(th[season == 0])) == {120.0}
    assert set(np.unique(th[season != 0])) == {100.0}
    assert hr.SEASON_NAMES[season[s.index.get_loc(pd.Timestamp("2023-07-01", tz="UTC"))]] == "summer"


def test_region_headroom_hand_computed():
    rl = hr.prepare_region("SYN", _peaky_2023())
    assert rl.years == (2023,)
    # (8 - 40/L) / 8760 = 6 / 8760  ->  L = 20 MW
    r = hr.headroom(rl, 6 / HOURS_2023)
    assert r.headroom_mw == pytest.approx(20.0)
    assert r.binding == "energy"
    assert r.hours_curtailed_per_year == 8  # the four 100 MW hours and the four 90 MW hours
    assert r.events_per_year == 4 and r.event_mean_h == 2.0 and r.event_max_h == 2
    assert r.curtailed_frac_mean == pytest.approx(6 / HOURS_2023)
    # below what the four threshold hours alone cost: nothing fits
    assert hr.headroom(rl, 3 / HOURS_2023).headroom_mw == 0.0
    # an event limit of one hour: the 90 MW hour may not follow the 100 MW hour -> L <= 10
    r1 = hr.headroom(rl, 6 / HOURS_2023, max_event_h=1)
    assert r1.headroom_mw == pytest.approx(10.0) and r1.binding == "event-length"
    assert r1.event_max_h == 1


def test_mean_and_worst_year_bases():
    s = pd.concat([_year(2022), _peaky_2023()])  # 2022 flat at 50 MW: its gaps are all 50
    rl = hr.prepare_region("SYN", s)
    assert rl.years == (2022, 2023)
    # mean of annual rates: (0 + (8 - 40/L) / 8760) / 2 = 3 / 8760  ->  L = 20 MW
    mean = hr.headroom(rl, 3 / HOURS_2023)
    assert mean.headroom_mw == pytest.approx(20.0)
    assert mean.curtailed_frac_worst_year == pytest.approx(6 / HOURS_2023)
    # every year within 3/8760: 2023's four threshold hours alone exceed it
    assert hr.headroom(rl, 3 / HOURS_2023, basis="worst-year").headroom_mw == 0.0
    # every year within 5/8760: (8 - 40/L) = 5  ->  L = 40/3
    assert hr.headroom(rl, 5 / HOURS_2023, basis="worst-year").headroom_mw == pytest.approx(40 / 3)
    by = mean.by_year.set_index("year")
    # 2022 alone: all 8760 gaps are 50, so 1 - 50/L = 3/8760
    assert by.loc[2022, "headroom_mw"] == pytest.approx(50 / (1 - 3 / HOURS_2023))
    assert by.loc[2022, "hours_curtailed"] == 0 and by.loc[2023, "hours_curtailed"] == 8
    assert by.loc[2023, "events"] == 4


def test_prepare_region_rejects_incomplete_years():
    with pytest.raises(ScenarioError, match="2021"):
        hr.prepare_region("SYN", _peaky_2023(), [2021, 2023])
    with pytest.raises(ScenarioError, match="tz-aware"):
        hr.prepare_region("SYN", _peaky_2023().tz_localize(None))
    with pytest.raises(ScenarioError, match="strictly between 0 and 1"):
        hr.headroom(hr.prepare_region("SYN", _peaky_2023()), 1.2)


def test_table_sums_regions():
    a = hr.prepare_region("A", _peaky_2023())
    b = hr.prepare_region("B", _peaky_2023() * 2.0)  # twice the load: twice the headroom
    table, by_year = hr.headroom_table({"A": a, "B": b}, [6 / HOURS_2023])
    assert list(table.columns[:5]) == ["region", "curtailment_frac", "headroom_gw", "hours_curtailed", "events"]
    got = table.set_index("region")["headroom_gw"]
    assert got["A"] == pytest.approx(0.020) and got["B"] == pytest.approx(0.040)
    assert got[hr.SUM_REGION] == pytest.approx(0.060)
    assert np.isnan(table.set_index("region").loc[hr.SUM_REGION, "hours_curtailed"])
    assert len(by_year) == 2


# --------------------------------------------------------------------------------------------- tiers


def test_tier_depth_duty_cycling_only():
    t = hr.tier_depth([0.4, 0.2, 0.2, 0.2])
    # 0.4 * 0 + 0.2 * 0.10 + 0.2 * 0.25 + 0.2 * 1 (tier 3 pauses)
    assert t.depth_frac == pytest.approx(0.27)
    assert t.lever == ("none", "duty-cycle", "duty-cycle", "pause")


def test_power_frac_for_throughput():
    p, t = [0.5, 0.8, 1.0], [0.6, 0.9, 1.0]
    np.testing.assert_allclose(hr.power_frac_for_throughput(p, t, [1.0, 0.9, 0.75, 0.6, 0.5]),
                               [1.0, 0.8, 0.65, 0.5, 0.5])  # below the curve: its lowest cap


def test_tier_depth_with_power_cap_curve():
    p, t = [0.5, 0.8, 1.0], [0.6, 0.9, 1.0]
    # tier 1 caps at 0.8 (cut 0.2 > 0.1), tier 2 at 0.65 (cut 0.35 > 0.25): 0.2*0.2 + 0.2*0.35 + 0.2*1 = 0.31
    full = hr.tier_depth([0.4, 0.2, 0.2, 0.2], power_frac=p, throughput_frac=t)
    assert full.depth_frac == pytest.approx(0.31)
    assert full.lever[1:3] == ("power-cap", "power-cap")
    assert full.cap_power_frac[1] == pytest.approx(0.8) and full.cap_power_frac[2] == pytest.approx(0.65)
    # with half the power in the host, capping the accelerator sheds 0.1 and 0.175: duty-cycling wins tier 2
    half = hr.tier_depth([0.4, 0.2, 0.2, 0.2], power_frac=p, throughput_frac=t, board_share=0.5)
    assert half.cut_frac == pytest.approx((0.0, 0.1, 0.25, 1.0))
    assert half.lever[2] == "duty-cycle"


def test_tier_depth_h100_catalog_curve():
    from gridshift.catalog import get_accelerator

    acc = get_accelerator("H100")
    c = acc.power_cap_curve
    t = hr.tier_depth([0.0, 1.0, 0.0, 0.0], power_frac=c.power_frac, throughput_frac=c.throughput_frac)
    # H100 curve: 0.829 at 0.665 and 0.903 at 0.777 -> 0.9 at 0.665 + 0.112 * 0.071/0.074
    p90 = 0.665 + 0.112 * (0.9 - 0.829) / (0.903 - 0.829)
    assert t.cap_power_frac[1] == pytest.approx(p90)
    assert t.depth_frac == pytest.approx(1 - p90)


def test_tier_shares_validation():
    with pytest.raises(ScenarioError, match="sum to 1"):
        hr.tier_depth([0.5, 0.5, 0.5, 0.0])
    with pytest.raises(ScenarioError, match="4 values"):
        hr.tier_depth([1.0])
    with pytest.raises(ScenarioError, match="non-negative"):
        hr.tier_depth([1.2, -0.2, 0.0, 0.0])


def test_depth_join_hand_computed():
    rl = hr.prepare_region("SYN", _peaky_2023())
    r = hr.headroom(rl, 6 / HOURS_2023, depth_frac=0.5)
    assert r.headroom_mw == pytest.approx(20.0)  # the depth does not change the grid's headroom
    d = r.depth
    assert d["site_headroom_mw"] == 0.0  # at a threshold hour the whole new load must go
    # at 20 MW: threshold hours need 20 off, the site sheds 10 -> 10 MW short for 4 hours; 90 MW hours need 10: ok
    assert d["backup_mw"] == pytest.approx(10.0)
    assert d["backup_mwh_per_year"] == pytest.approx(40.0)
    assert d["hours_beyond_depth_per_year"] == 4
    full = hr.headroom(rl, 6 / HOURS_2023, depth_frac=1.0).depth
    assert full["site_headroom_mw"] == pytest.approx(20.0) and full["backup_mw"] == 0.0


# --------------------------------------------------------------------------------------------- CLI


def _one_line_error(res) -> str:
    assert res.exit_code == 2, res.output
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_cli_two_regions_real_data(tmp_path):
    out = tmp_path / "hr"
    res = runner.invoke(app, ["headroom", "--out", str(out), "--regions", "NY,NE", "--curtailment", "0.5%,0.01"])
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out / "headroom.csv")
    assert list(df.columns[:5]) == ["region", "curtailment_frac", "headroom_gw", "hours_curtailed", "events"]
    assert set(df["region"]) == {"NY", "NE", hr.SUM_REGION}
    assert sorted(set(df["curtailment_frac"])) == [0.005, 0.01]
    regional = df[df["region"] != hr.SUM_REGION]
    # the limit is met: the mean annual curtailment at the headroom equals the limit
    np.testing.assert_allclose(regional["curtailed_frac_mean"], regional["curtailment_frac"], rtol=1e-6)
    for _, g in regional.groupby("region"):
        g = g.sort_values("curtailment_frac")
        assert (g["headroom_gw"].diff().dropna() > 0).all()
        assert (g["hours_curtailed"] > 0).all() and (g["events"] > 0).all()
        assert (g["headroom_gw"] < g["peak_gw"]).all()
    s = df[df["region"] == hr.SUM_REGION].set_index("curtailment_frac")["headroom_gw"]
    per = regional.groupby("curtailment_frac")["headroom_gw"].sum()
    np.testing.assert_allclose(s.sort_index(), per.sort_index())
    by = pd.read_csv(out / "headroom_by_year.csv")
    assert sorted(set(by["year"])) == [2020, 2021, 2022, 2023, 2024]
    doc = json.loads((out / "headroom.json").read_text())
    assert doc["published"]["headroom_gw"] == {"0.0025": 76.0, "0.005": 98.0, "0.01": 126.0}
    assert (out / "headroom.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Duke 2025" in res.stdout and "hdl.handle.net/10161/32077" in res.stdout


@pytest.mark.slow
def test_cli_all_regions_beside_published(tmp_path):
    out = tmp_path / "hr"
    res = runner.invoke(app, ["headroom", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    df = pd.read_csv(out / "headroom.csv")
    assert len(set(df["region"])) == 15  # 13 regions, their sum, and CONUS as one region
    cmp = {r["curtailment_frac"]: r for r in doc["comparison"]}
    assert [cmp[f]["duke_22_ba_gw"] for f in (0.0025, 0.005, 0.01, 0.05)] == [76.0, 98.0, 126.0, None]
    regional = df[~df["region"].isin([hr.SUM_REGION, hr.CONUS])]
    for f, row in cmp.items():
        assert row["sum_of_regions_gw"] == pytest.approx(regional.loc[regional["curtailment_frac"] == f,
                                                                      "headroom_gw"].sum())
        conus = df[(df["region"] == hr.CONUS) & (df["curtailment_frac"] == f)].iloc[0]
        assert row["conus_one_region_gw"] == pytest.approx(conus["headroom_gw"])
        assert 0 < conus["headroom_share_of_peak"] < 0.5


def test_cli_tiers_and_event_limit(tmp_path):
    out = tmp_path / "hr"
    res = runner.invoke(app, ["headroom", "--out", str(out), "--regions", "TEX", "--curtailment", "0.01",
                              "--tier-shares", "0.4,0.2,0.2,0.2", "--accelerator", "H100", "--max-event-h", "6"])
    assert res.exit_code == 0, res.output
    row = pd.read_csv(out / "headroom.csv").iloc[0]
    from gridshift.catalog import get_accelerator

    acc = get_accelerator("H100")
    c = acc.power_cap_curve
    expect = hr.tier_depth([0.4, 0.2, 0.2, 0.2], power_frac=c.power_frac, throughput_frac=c.throughput_frac,
                           board_share=acc.board_power_w / (acc.board_power_w + acc.host_power_w)).depth_frac
    assert row["depth_frac"] == pytest.approx(expect)
    assert row["event_max_h"] <= 6
    assert row["curtailed_frac_mean"] <= 0.01 * (1 + 1e-9)
    # thresholds are the data's own seasonal peaks: at those hours a partly flexible site needs backup
    assert row["site_headroom_gw"] == 0.0
    assert row["backup_gw"] == pytest.approx((1 - expect) * row["headroom_gw"], rel=1e-6)
    doc = json.loads((out / "headroom.json").read_text())
    assert doc["tiers"]["lever"] == ["none", "power-cap", "power-cap", "pause"]


@pytest.mark.parametrize("args, needle", [
    (["--regions", "ATLANTIS"], "unknown region 'ATLANTIS'"),
    (["--curtailment", "1.5"], "strictly between 0 and 1"),
    (["--curtailment", "lots"], "'lots' is not a number"),
    (["--tier-shares", "0.5,0.2,0.2"], "4 values"),
    (["--tier-shares", "0.5,0.5,0.5,0.5"], "sum to 1"),
    (["--years", "2018-2020"], "no complete load data"),
    (["--accelerator", "H100"], "only applies with --tier-shares"),
    (["--tier-shares", "1,0,0,0", "--accelerator", "Z9000"], "unknown accelerator"),
    (["--basis", "median"], "unknown basis"),
    (["--max-event-h", "0"], "must be from 1 to 8784 hours"),
])
def test_cli_bad_input_one_line_exit_2(tmp_path, args, needle):
    out = tmp_path / "hr"
    res = runner.invoke(app, ["headroom", "--out", str(out), "--regions", "NY", *args]
                        if "--regions" not in args else ["headroom", "--out", str(out), *args])
    assert needle in _one_line_error(res)
    assert not out.exists()


def test_cli_refuses_foreign_output_dir(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    res = runner.invoke(app, ["headroom", "--out", str(out), "--regions", "NY"])
    assert "not written by gridshift" in _one_line_error(res)
    assert (out / "notes.txt").read_text() == "keep me"


def test_tier_shares_from_a_scenario(tmp_path):
    from pathlib import Path

    from gridshift.data.scenario import load_scenario
    from gridshift.studies.tiers import main_accelerator, tier_energy_shares
    from gridshift.world.build import assemble

    path = Path(__file__).resolve().parents[2] / "examples" / "dr-a100-cut25.yaml"
    w = assemble(load_scenario(path)).world
    shares = tier_energy_shares(w)
    assert shares.sum() == pytest.approx(1.0) and (shares > 0).all()  # the example mixes all four tiers
    assert main_accelerator(w) == "A100"
    r = CliRunner().invoke(app, ["headroom", "--regions", "TEX", "--curtailment", "0.5%", "--scenario", str(path),
                                 "--json", "-o", str(tmp_path / "h")])
    assert r.exit_code == 0, r.output
    import json

    doc = json.loads(r.output)
    assert doc["tiers"]["shares"] == pytest.approx(list(shares), abs=1e-5)
    bad = CliRunner().invoke(app, ["headroom", "--scenario", str(path), "--tier-shares", "1,0,0,0",
                                   "-o", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "not both" in bad.output
