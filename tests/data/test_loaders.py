"""Loaders on the real shared data: shapes, units, time conventions and known facts."""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd
import pytest

import gridshift.data as gd
from gridshift.errors import DataError

UTC = "UTC"


def _hour_start_utc(idx: pd.DatetimeIndex) -> None:
    assert str(idx.tz) == UTC and idx.name == "time"
    assert (idx == idx.floor("h")).all()
    assert idx.is_monotonic_increasing and idx.is_unique


@pytest.fixture(scope="module")
def carbon() -> dict[str, pd.DataFrame]:
    return {z: gd.load_carbon(z) for z in gd.available_zones()}


def test_zone_lists():
    assert len(gd.available_zones()) == 16 and "GB" in gd.available_zones()
    assert len(gd.available_price_zones()) == 15 and "GB" not in gd.available_price_zones()
    assert set(gd.available_price_zones()) < set(gd.available_zones())
    assert gd.available_load_regions() == sorted(
        ["CAL", "CAR", "CENT", "FLA", "MIDA", "MIDW", "NE", "NW", "NY", "SE", "SW", "TEN", "TEX", "CONUS"])


def test_carbon_files_are_complete_hourly_2023(carbon):
    for zone, df in carbon.items():
        assert len(df) == 8760, zone
        _hour_start_utc(df.index)
        assert df.index[0] == pd.Timestamp("2023-01-01 00:00", tz=UTC)
        assert df.index[-1] == pd.Timestamp("2023-12-31 23:00", tz=UTC)
        assert list(df.columns) == ["carbon_g_per_kwh", "clean_frac", "renewable_frac", "estimated"]
        assert df["estimated"].dtype == bool
        assert df["clean_frac"].between(0, 1).all() and df["renewable_frac"].between(0, 1).all()
        assert (df["renewable_frac"] <= df["clean_frac"] + 1e-9).all(), zone


def test_carbon_annual_means(carbon):
    gb_direct = gd.load_carbon("GB", basis="direct")["carbon_g_per_kwh"].mean()
    gb_lca = carbon["GB"]["carbon_g_per_kwh"].mean()
    assert 80 < gb_direct < 250 and 120 < gb_direct < 140  # about 130 g/kWh direct (README's figure)
    assert 80 < gb_lca < 250 and gb_lca > gb_direct  # about 188 g/kWh life-cycle
    means = pd.Series({z: df["carbon_g_per_kwh"].mean() for z, df in carbon.items()})
    # The README says AU-NSW is highest (~500), but IN-WE (~750) and ZA (~700) are higher.
    assert means.idxmax() == "IN-WE" and means.sort_values().index[-2] == "ZA"
    assert means["AU-NSW"] == max(means[z] for z in means.index if z.startswith(("AU", "US", "DE", "GB")))
    assert means.idxmin() == "CA-ON"
    direct = gd.load_carbon("AU-NSW", basis="direct")["carbon_g_per_kwh"].mean()
    assert 450 < direct < 550  # the README's "about 500" is the direct figure


def test_carbon_estimation_flags(carbon):
    assert carbon["JP-TK"]["estimated"].all() and carbon["IN-WE"]["estimated"].all()
    assert not carbon["US-TEX-ERCO"]["estimated"].any()
    assert carbon["DE-LU"].attrs["zone_id"] == "DE" and carbon["BR-SP"].attrs["zone_id"] == "BR-CS"
    sg = carbon["SG"]["carbon_g_per_kwh"]
    assert sg.std() / sg.mean() < 0.05  # nearly flat


def test_price_files():
    for zone in gd.available_price_zones():
        df = gd.load_price(zone)
        assert len(df) == 8760 and list(df.columns) == ["price_usd_per_mwh"], zone
        _hour_start_utc(df.index)
    assert (gd.load_price("DE-LU")["price_usd_per_mwh"] < 0).sum() == 292
    assert gd.load_price("AU-VIC")["price_usd_per_mwh"].min() < -300


def test_price_half_hour_offset_is_regridded():
    df = gd.load_price("IN-WE")
    assert df.attrs["source_offset_min"] == 30 and gd.load_price("KR").attrs["source_offset_min"] == 0
    assert df.index[0] == pd.Timestamp("2023-01-01 00:00", tz=UTC)
    p = df["price_usd_per_mwh"].to_numpy()
    # file: 00:30 -> 45.962554, 01:30 -> 59.748755; UTC hour 01:00 is half of each
    assert p[0] == pytest.approx(45.962554)
    assert p[1] == pytest.approx((45.962554 + 59.748755) / 2)


def test_grid_load_is_shifted_from_hour_ending_to_hour_start():
    df = gd.load_grid_load("CAL")
    _hour_start_utc(df.index)
    assert len(df) == 43848
    assert df.index[0] == pd.Timestamp("2019-12-31 23:00", tz=UTC)
    assert df.index[-1] == pd.Timestamp("2024-12-31 22:00", tz=UTC)
    assert df["load_mw"].iloc[0] == 27702  # file row '2020-01-01 00:00:00' (hour ending 00:00)
    assert (df["load_mw"] > 0).all()
    conus = gd.load_grid_load("CONUS")
    assert conus["raw_load_mw"].min() < 0 < conus["load_mw"].min()  # raw keeps reporting anomalies
    assert 3e5 < conus["load_mw"].mean() < 6e5


def test_latency_matrix_keyed_by_region():
    m = gd.load_latency_matrix()
    zones = gd.load_region_zone_map()
    assert m.shape == (34, 34) and list(m.index) == list(zones) == list(m.columns)
    assert zones["us-east4"] == zones["us-east5"] == "US-MIDA-PJM"
    assert m.loc["us-east4", "us-east4"] == 5 and m.loc["us-east5", "us-east4"] == 18
    assert (np.diag(m) == 5).all()
    assert (m.to_numpy() - m.to_numpy().T).__abs__().max() <= 2  # nearly symmetric
    assert m.loc["europe-west2", "us-east4"] == 76
    named = gd.load_region_zone_map(data_zone_names=True)
    assert named["australia-southeast1"] == "AU-NSW" and named["europe-west3"] == "DE-LU"
    with_carbon = {r for r, z in named.items() if z in gd.available_zones()}
    assert len(with_carbon) == 15  # 14 zones (PJM twice); no GCP region in US-NY-NYIS or ZA
    assert set(gd.available_zones()) - set(named.values()) == {"US-NY-NYIS", "ZA"}


def test_azure_llm_traces():
    code, conv = gd.load_azure_llm("code"), gd.load_azure_llm("conv")
    assert len(code) == 8819 and len(conv) == 19366
    for df in (code, conv):
        assert list(df.columns) == ["time", "context_tokens", "generated_tokens"]
        assert str(df["time"].dt.tz) == UTC and df["time"].is_monotonic_increasing
        assert (df["time"].dt.date == pd.Timestamp("2023-11-16").date()).all()
        assert (df["context_tokens"] > 0).all() and df["generated_tokens"].dtype == np.int64
    assert (code["time"].iloc[-1] - code["time"].iloc[0]) < pd.Timedelta("1h")


def test_mooncake_traces():
    conv, syn = gd.load_mooncake("conversation"), gd.load_mooncake("synthetic")
    assert len(conv) == 12031 and len(syn) == 3993
    assert conv["timestamp_s"].iloc[-1] == pytest.approx(3536.999)
    for df in (conv, syn):
        assert df["timestamp_s"].is_monotonic_increasing
        assert (df["n_prefix_blocks"] == np.ceil(df["input_tokens"] / 512)).all()
    shared = conv["prefix_block_ids"].map(lambda ids: ids[0]).value_counts().iloc[0]
    assert shared > 100  # many requests reuse the same first block


def test_philly():
    rt = gd.load_philly_runtimes()
    assert rt.dtype == np.float64 and rt.shape == (83154,)
    assert (rt == 0).sum() == 2 and rt.min() == 0 and rt.max() == 4628239.0
    nodes = gd.load_philly_node_sequence()
    assert len(nodes) == 105644 and str(nodes.index.tz) == UTC
    assert (nodes["active_nodes"] <= nodes["total_nodes"]).all()
    assert nodes.attrs["gaps"] == [(pd.Timestamp("2017-10-25 14:01", tz=UTC), 599)]


def test_gaia():
    sizes = {"pai-100k": 99998, "azure-100k": 99988, "mustang-100k": 100000}
    for trace, n in sizes.items():
        df = gd.load_gaia(trace)
        assert len(df) == n and list(df.columns) == ["arrival_h", "length_h", "cpus"]
        assert df["arrival_h"].between(0, 8760).all() and (df["length_h"] > 0).all() and (df["cpus"] >= 1).all()
    assert gd.load_gaia()["cpus"].max() == 400


def test_gavel_speedups():
    t = gd.load_gavel_throughputs()
    assert len(t) == 83 * 5 + 77
    single = t[(t.gpus == 1) & t.consolidated].pivot(index="job_type", columns="accelerator", values="steps_per_s")
    assert len(single) == 26
    speedup = single["v100"] / single["k80"]
    assert speedup.min() == pytest.approx(0.662, abs=0.001) and speedup.idxmin() == "Recommendation (batch size 1024)"
    assert speedup.max() == pytest.approx(11.63, abs=0.01) and speedup.idxmax() == "ResNet-18 (batch size 256)"
    zero = t[t.steps_per_s == 0]
    assert set(zero.accelerator) == {"k80"} and set(zero.job_type) == {"ResNet-50 (batch size 128)"}
    pairs = gd.load_gavel_colocated()
    assert list(pairs.columns) == ["accelerator", "consolidated", "job_type", "gpus", "other_job_type",
                                   "other_gpus", "own_steps_per_s", "other_steps_per_s"]
    assert len(pairs) == 5 * (26 * 26 + 57 * 19) + (26 * 26 + 51 * 17)


def test_epoch_hardware():
    hw = gd.load_epoch_hardware()
    assert len(hw) == 169 and hw["name"].is_unique
    h100 = hw.set_index("name").loc["NVIDIA H100 SXM5 80GB"]
    assert h100["bf16_tensor_flops"] == pytest.approx(989.4e12)
    assert h100["memory_gb"] == pytest.approx(80) and h100["tdp_w"] == 700
    assert h100["memory_bandwidth_bytes_per_s"] > 3e12
    assert hw["release_date"].dt.year.min() < 2015 and hw["release_date"].isna().sum() == 11


def test_power_tables():
    me = gd.load_mlenergy()
    assert len(me) == 1858 and set(me["gpu_model"]) == {"H100", "B200"} and (me["avg_power_w"] > 0).all()
    sw = gd.load_splitwise()
    assert len(sw) == 1260 and sw["power_measured"].sum() == 260
    assert sw.loc[~sw["power_measured"], "avg_power_frac"].isna().all()
    zeus = gd.load_zeus_powercap()
    assert len(zeus) == 30 and set(zeus["gpu"]) == {"v100", "a40", "rtx6000", "p100"}
    full = zeus[zeus["power_limit_frac"] == 1.0]
    assert (full["throughput_retained_median_frac"] == 1.0).all()
    inf = gd.load_mlperf_inference_powercap()
    assert len(inf) == 6 and inf["gpu_power_limit_w"].isna().sum() == 1 and inf["power_limit_assumed"].sum() == 2
    train = gd.load_mlperf_training_power()
    gpt3 = train[(train.benchmark == "gpt3") & (train.n_accelerators == 512)]
    assert 900 < gpt3["all_in_w_per_accelerator"].min() < 1000
    em = gd.load_emerald_dvfs()
    assert len(em) == 48 and em["workload"].nunique() == 8
    assert sorted(em["gpu_power_cap_w"].unique()) == [100, 200, 250, 300, 350, 400]
    assert (em.loc[em.gpu_power_cap_w == 400, "throughput_frac"] == 1.0).all()


def test_results_are_cached_copies(tmp_path):
    a = gd.load_carbon("GB")
    a.iloc[0, 0] = -1.0
    b = gd.load_carbon("GB")
    assert b.iloc[0, 0] != -1.0
    p = tmp_path / "zeus.csv"
    p.write_bytes(gd.resolve("accelerators/zeus-powercap").read_bytes())
    assert gd.load_zeus_powercap(path=p)["n_configs"].iloc[0] == 68
    text = p.read_text().replace("v100,100,250,0.4,68,", "v100,100,250,0.4,69,")
    p.write_text(text)
    os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns + 10**9))
    assert gd.load_zeus_powercap(path=p)["n_configs"].iloc[0] == 69  # a changed file is re-read


def test_fill_gaps_only_on_request():
    full = gd.load_carbon("GB")
    holey = full.drop(full.index[[100, 101, 102, 5000]])
    filled, report = gd.fill_gaps(holey, max_gap_slots=3)
    assert len(filled) == 8760 and report.filled_slots == 4 and len(report.gaps) == 2
    assert report.gaps[0] == (full.index[100], 3) and report.filled_times[-1] == full.index[5000]
    assert filled["estimated"].iloc[[100, 101, 102, 5000]].all()
    lo, hi = full["carbon_g_per_kwh"].iloc[99], full["carbon_g_per_kwh"].iloc[103]
    assert filled["carbon_g_per_kwh"].iloc[101] == pytest.approx((lo + hi) / 2)
    pd.testing.assert_frame_equal(filled.drop(full.index[[100, 101, 102, 5000]]), holey, check_freq=False)
    with pytest.raises(DataError) as err:
        gd.fill_gaps(holey, max_gap_slots=2)
    assert "max_gap_slots=2" in str(err.value) and "carbon_g_per_kwh" in str(err.value)


def test_unknown_names_are_data_errors():
    with pytest.raises(DataError, match="carbon/GB"):
        gd.load_carbon("GBR")
    with pytest.raises(DataError, match="basis"):
        gd.load_carbon("GB", basis="scope3")  # type: ignore[arg-type]
    with pytest.raises(DataError):
        gd.load_gaia("alibaba")  # type: ignore[arg-type]
    assert math.isfinite(gd.load_carbon("GB").iloc[0, 0])
