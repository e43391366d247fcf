"""Throughput model for heterogeneity-aware allocation: the table, the roofline estimator and its
cross-validation, and the modern-fleet job types."""

from __future__ import annotations

import math
from importlib import resources

import numpy as np
import pandas as pd
import pytest

from gridshift.catalog import load_catalog
from gridshift.catalog.estimate import (
    cross_validate,
    cv_frame,
    extend,
    fit_roofline,
    fit_table,
    roofline_steps_per_s,
)
from gridshift.catalog.fleet_jobs import (
    build_fleet_table,
    inference_checks,
    inference_step,
    load_fleet_jobs,
    parse_fleet_spec,
    read_fleet_spec,
    training_tokens_per_s,
)
from gridshift.catalog.throughput import DEFAULT_POWER_FRAC, ThroughputTable
from gridshift.data import registry
from gridshift.errors import CatalogError
from gridshift.studies.gavel import gavel_table

CAT = load_catalog()


def _needs(name: str):
    return pytest.mark.skipif(registry.find(name) is None, reason=f"shared data file for '{name}' not found")


needs_gavel = _needs("gavel/throughputs")


@pytest.fixture(scope="module")
def gavel() -> ThroughputTable:
    return gavel_table()


@pytest.fixture(scope="module")
def fleet() -> ThroughputTable:
    return load_fleet_jobs()


# --------------------------------------------------------------------------------------------- Gavel table


@needs_gavel
def test_gavel_table_shape_and_combinations(gavel):
    assert gavel.acc_types == ("K80", "P100", "V100")
    assert len(gavel.job_types) == 26
    assert gavel.gang_axis.tolist() == [1, 2, 4, 8]
    assert gavel.present.sum() == 249 and gavel.measured.sum() == 249  # every entry measured
    combos = gavel.combinations()
    assert len(combos) == 83  # 7 single-GPU-only configurations + 19 x 4 sizes
    single = sorted(j for j in gavel.job_types if gavel.gang_sizes(j).tolist() == [1])
    assert single == ["A3C", "CycleGAN"] + [f"Recommendation (batch size {b})" for b in (1024, 2048, 4096, 512, 8192)]
    assert ("A3C", 2) not in combos and ("LM (batch size 5)", 8) in combos
    assert all(gavel.work_unit(j) == "step" for j in gavel.job_types)
    assert "Gavel" in gavel.source("A3C", "K80", 1) and gavel.is_measured("A3C", "K80", 1)


@needs_gavel
def test_gavel_known_values(gavel):
    jobs = list(gavel.job_types)
    m = gavel.matrix(jobs, ["K80", "V100"], 1)
    ratio = m[:, 1] / m[:, 0]
    # the README's "V100 vs K80 from 0.66x to 11.6x" is the single-GPU range
    assert jobs[int(np.argmax(ratio))] == "ResNet-18 (batch size 256)"
    assert ratio.max() == pytest.approx(11.631, abs=1e-3)
    assert jobs[int(np.argmin(ratio))] == "Recommendation (batch size 1024)"
    assert ratio.min() == pytest.approx(0.6625, abs=1e-4)
    assert gavel.get("ResNet-18 (batch size 256)", "V100", 1) == pytest.approx(10.300256501360458)
    # a 0 in Gavel's table is kept: ResNet-50 (batch 128) did not run on 2+ K80s, but ran on P100/V100
    assert gavel.get("ResNet-50 (batch size 128)", "K80", 2) == 0.0
    assert gavel.is_measured("ResNet-50 (batch size 128)", "K80", 2)
    assert gavel.gang_sizes("ResNet-50 (batch size 128)").tolist() == [1, 2, 4, 8]
    unc = gavel_table(consolidated=False)
    assert unc.present.sum() == 243  # ResNet-50 (batch 64, 128) on 2-8 K80s is absent when spread
    assert unc.get("LM (batch size 10)", "V100", 8) < gavel.get("LM (batch size 10)", "V100", 8)


@needs_gavel
def test_gavel_tensor_matches_the_reproduction_module(gavel):
    from gridshift.studies.gavel import GANG_SIZES, gavel_tensor

    types, thr = gavel_tensor(gavel)
    assert len(types) == 26 and thr.shape == (26, len(GANG_SIZES), 3)
    assert np.array_equal(gavel.tensor(types, GANG_SIZES, ["K80", "P100", "V100"]), thr)
    i = types.index("ResNet-18 (batch size 256)")
    assert thr[i, list(GANG_SIZES).index(1), 2] == pytest.approx(10.300256501360458)


@needs_gavel
def test_matrix_is_vectorised_and_consistent_with_get(gavel):
    rng = np.random.default_rng(0)
    jobs = rng.choice(list(gavel.job_types), 200)
    gpus = rng.choice([1, 2, 3, 4, 8, 16], 200)  # 3 and 16 are not on the axis: 0
    accs = ["v100", "K80", "P100"]  # names match ignoring case
    m = gavel.matrix(list(jobs), accs, gpus)
    assert m.shape == (200, 3)
    want = np.array([[gavel.get(j, a, int(g)) for a in accs] for j, g in zip(jobs, gpus, strict=True)])
    assert np.array_equal(m, want)
    assert np.all(m[np.isin(gpus, [3, 16])] == 0)
    assert np.array_equal(gavel.matrix(["A3C"], None, 1)[0], gavel.matrix(["A3C"], ["K80", "P100", "V100"], [1])[0])
    assert not gavel.measured_matrix(["A3C"], None, 2).any()
    with pytest.raises(CatalogError, match="unknown job type"):
        gavel.matrix(["BERT"], None, 1)
    with pytest.raises(CatalogError, match="not in the table"):
        gavel.get("A3C", "H100", 1)


# --------------------------------------------------------------------------------------------- energy


def _tiny() -> ThroughputTable:
    recs = [
        {"job_type": "a", "accelerator": "X", "gang": 2, "steps_per_s": 4.0, "measured": True, "source": "m"},
        {"job_type": "a", "accelerator": "Y", "gang": 2, "steps_per_s": 5.0, "measured": True, "source": "m2",
         "avg_power_w": 300.0},
        {"job_type": "a", "accelerator": "Y", "gang": 1, "steps_per_s": 0.0, "measured": False, "source": "no fit"},
    ]
    return ThroughputTable.from_records(recs, board_power_w={"X": 400.0, "Y": 700.0},
                                        host_power_w={"X": 100.0, "Y": 200.0}, work_units={"a": "token"})


def test_energy_per_step_hand_computed():
    t = _tiny()
    assert t.energy_j_per_step("a", "X", 2) == pytest.approx(2 * 400 * DEFAULT_POWER_FRAC / 4.0)
    assert t.energy_j_per_step("a", "X", 2, power_frac=1.0) == pytest.approx(200.0)
    assert t.energy_j_per_step("a", "X", 2, power_frac=1.0, include_host=True) == pytest.approx(250.0)
    assert t.energy_j_per_step("a", "Y", 2) == pytest.approx(2 * 300.0 / 5.0)  # measured power wins
    assert t.energy_j_per_step("a", "Y", 1) == math.inf  # cannot run
    assert t.energy_j_per_step("a", "X", 4) == math.inf  # no entry
    e = t.energy_matrix(["a", "a"], ["X", "Y"], [2, 1])
    assert e[0].tolist() == pytest.approx([186.0, 120.0]) and np.isinf(e[1]).all()
    assert t.work_unit("a") == "token" and t.entry("a", "Y", 1).source == "no fit"


@needs_gavel
def test_gavel_energy_uses_board_power_times_the_utilisation_estimate(gavel):
    v100 = CAT["V100"].board_power_w
    want = v100 * DEFAULT_POWER_FRAC / gavel.get("A3C", "V100", 1)
    assert gavel.energy_j_per_step("A3C", "V100", 1) == pytest.approx(want)
    want8 = 8 * v100 * DEFAULT_POWER_FRAC / gavel.get("LM (batch size 5)", "V100", 8)
    assert gavel.energy_j_per_step("LM (batch size 5)", "V100", 8) == pytest.approx(want8)


@_needs("accelerators/emerald-dvfs")
def test_default_power_fraction_matches_its_cited_source():
    from gridshift.data.hardware import load_emerald_dvfs

    d = load_emerald_dvfs()
    full = d[(d["gpu_power_cap_w"] == 400) & ~d["workload"].isin(["infer_llama_8b_32g", "infer_llama_8b_48g"])]
    assert len(full) == 6
    assert np.median(full["power_per_gpu_w"]) / 400 == pytest.approx(DEFAULT_POWER_FRAC, abs=0.005)


def test_table_records_round_trip_and_validation():
    t = _tiny()
    back = ThroughputTable.from_records(t.to_records(), board_power_w={"X": 400.0, "Y": 700.0},
                                        host_power_w={"X": 100.0, "Y": 200.0}, work_units={"a": "token"},
                                        acc_types=t.acc_types)
    assert np.array_equal(back.steps_per_s, t.steps_per_s) and back.to_records() == t.to_records()
    assert np.array_equal(np.isnan(back.avg_power_w), np.isnan(t.avg_power_w))
    assert t.to_frame().shape == (3, 9)
    with pytest.raises(ValueError, match="duplicate"):
        ThroughputTable.from_records(t.to_records() * 2, board_power_w={"X": 1.0, "Y": 1.0})
    with pytest.raises(ValueError, match="steps_per_s"):
        ThroughputTable.from_records([{**t.to_records()[0], "steps_per_s": -1}], board_power_w={"X": 1.0})
    sub = t.subset(acc_types=["Y"])
    assert sub.acc_types == ("Y",) and sub.get("a", "Y", 2) == 5.0


# --------------------------------------------------------------------------------------------- roofline


def _synthetic_catalog(figs: dict[str, tuple[float, float]]) -> dict:
    base = CAT["H100"]
    return {n: base.model_copy(update={"name": n, "peak_bf16_tflops": f, "hbm_tb_per_s": b})
            for n, (f, b) in figs.items()}


SYN = {"S1": (10.0, 0.5), "S2": (100.0, 1.0), "S3": (400.0, 3.0), "S4": (50.0, 4.0)}
JOBS = {"compute": (2e13, 1e10), "memory": (1e11, 3e11), "mixed": (4e12, 8e10)}  # effective FLOP, bytes per step


@pytest.mark.parametrize("p", [1.0, 2.0, 4.0])
def test_fit_recovers_a_synthetic_roofline_exactly(p):
    f = np.array([v[0] for v in SYN.values()])
    b = np.array([v[1] for v in SYN.values()])
    for w, q in JOBS.values():
        y = roofline_steps_per_s(w, q, f, b, p)
        w_fit, q_fit = fit_roofline(y, f, b, p=p)
        assert w_fit == pytest.approx(w, rel=1e-6) and q_fit == pytest.approx(q, rel=1e-6)
        # two types suffice when both terms matter on them
        w2, q2 = fit_roofline(y[[0, 2]], f[[0, 2]], b[[0, 2]], p=p)
        assert roofline_steps_per_s(w2, q2, f, b, p) == pytest.approx(y, rel=1e-6)
    with pytest.raises(ValueError):
        fit_roofline([1.0], [1.0], [1.0])


def _synthetic_table(p: float) -> tuple[ThroughputTable, dict]:
    cat = _synthetic_catalog(SYN)
    recs = []
    for job, (w, q) in JOBS.items():
        for a in ("S1", "S2", "S3"):
            one = float(roofline_steps_per_s(w, q, *SYN[a], p))
            for g, eff in ((1, 1.0), (4, 0.9)):
                recs.append({"job_type": job, "accelerator": a, "gang": g, "steps_per_s": one * g * eff,
                             "measured": True, "source": "synthetic"})
    t = ThroughputTable.from_records(recs, board_power_w={a: 100.0 for a in ("S1", "S2", "S3")})
    return t, cat


def test_extend_and_cv_are_exact_on_synthetic_roofline_data():
    p = 2.0
    t, cat = _synthetic_table(p)
    fits = fit_table(t, cat, p=p)
    for job, (w, _q) in JOBS.items():
        assert fits[job].flop_per_step == pytest.approx(w, rel=1e-6) and fits[job].log_rmse < 1e-9
    ext = extend(t, ["S4"], cat, p=p)
    for job, (w, q) in JOBS.items():
        truth = float(roofline_steps_per_s(w, q, *SYN["S4"], p))
        assert ext.get(job, "S4", 1) == pytest.approx(truth, rel=1e-6)
        assert ext.get(job, "S4", 4) == pytest.approx(truth * 4 * 0.9, rel=1e-6)
        assert not ext.is_measured(job, "S4", 1) and ext.source(job, "S4", 1).startswith("estimated: roofline")
        assert ext.get(job, "S2", 1) == t.get(job, "S2", 1) and ext.is_measured(job, "S2", 1)
    cv = cross_validate(t, cat, p=p)
    for scope in ("1 GPU", "all gang sizes"):
        assert cv["roofline"][scope]["overall"]["mape_pct"] < 1e-6
    assert cv["flop-ratio"]["1 GPU"]["overall"]["mape_pct"] > 10  # the baselines cannot fit both regimes


@needs_gavel
def test_cross_validation_on_gavel(gavel):
    cv = cross_validate(gavel)
    for m in ("roofline", "flop-ratio", "bandwidth-ratio"):
        for scope in ("1 GPU", "all gang sizes"):
            for h in ("K80", "P100", "V100", "overall"):
                s = cv[m][scope][h]
                assert np.isfinite(s["mape_pct"]) and np.isfinite(s["median_abs_log_err"]) and s["n"] > 0
    assert cv["roofline"]["1 GPU"]["overall"]["n"] == 78  # 26 jobs x 3 held-out types
    assert cv["roofline"]["all gang sizes"]["overall"]["n"] == 246
    # measured facts reported in docs/guide/heterogeneity.md:
    for scope in ("1 GPU", "all gang sizes"):
        for h in ("K80", "P100", "V100", "overall"):  # the roofline beats the pure FLOP ratio everywhere
            for k in ("mape_pct", "median_abs_log_err"):
                assert cv["roofline"][scope][h][k] < cv["flop-ratio"][scope][h][k]
    k80 = "K80"  # ... and the bandwidth ratio when predicting the slowest type
    assert cv["roofline"]["1 GPU"][k80]["mape_pct"] < cv["bandwidth-ratio"]["1 GPU"][k80]["mape_pct"]
    assert cv["roofline"]["1 GPU"][k80]["median_abs_log_err"] < cv["bandwidth-ratio"]["1 GPU"][k80]["median_abs_log_err"]
    # ... but not when extrapolating to the fastest type: pooled, the bandwidth ratio has the lower MAPE
    assert cv["bandwidth-ratio"]["1 GPU"]["V100"]["mape_pct"] < cv["roofline"]["1 GPU"]["V100"]["mape_pct"]
    assert cv["bandwidth-ratio"]["1 GPU"]["overall"]["mape_pct"] < cv["roofline"]["1 GPU"]["overall"]["mape_pct"]
    df = cv_frame(gavel)
    assert list(df.columns) == ["scope", "held_out", "method", "n", "mape_pct", "median_abs_log_err", "median_ratio"]
    assert len(df) == 2 * 4 * 3


@needs_gavel
def test_extend_gavel_to_catalog_types(gavel):
    ext = extend(gavel, ["H100", "a100"])
    assert ext.acc_types == ("K80", "P100", "V100", "H100", "A100")
    new = ext.present[:, :, 3:]
    assert new.sum() == len(gavel.combinations()) * 2  # every measured (job, gpus) pair, on both new types
    assert not ext.measured[:, :, 3:].any() and ext.measured[:, :, :3].sum() == 249
    assert np.array_equal(ext.steps_per_s[:, :, :3], gavel.steps_per_s)
    h = ext.matrix(list(gavel.job_types), ["H100"], 1)[:, 0]
    assert np.all(np.isfinite(h)) and np.all(h > 0)
    assert "8/1-GPU scaling on V100" in ext.source("LM (batch size 5)", "H100", 8)
    assert ext.get("A3C", "H100", 2) == 0.0  # Gavel never ran A3C on 2 GPUs: no estimate either
    assert ext.board_power_w[3] == CAT["H100"].board_power_w
    bw = extend(gavel, ["H100"], method="bandwidth-ratio")
    rule = gavel.get("A3C", "V100", 1) * 3.35 / 0.897
    assert bw.get("A3C", "H100", 1) > 0 and "bandwidth-ratio" in bw.source("A3C", "H100", 1)
    assert bw.get("A3C", "H100", 1) == pytest.approx(
        np.exp(np.mean(np.log([gavel.get("A3C", a, 1) * 3.35 / CAT[a].hbm_tb_per_s for a in ("K80", "P100", "V100")]))))
    assert rule > 0


# --------------------------------------------------------------------------------------------- fleet jobs


def test_fleet_jobs_load_and_every_entry_has_a_source(fleet):
    assert set(fleet.acc_types) >= {"H100", "A100", "Trainium2", "Inferentia2", "Ascend-910B"}
    kinds = {j: fleet.kind(j) for j in fleet.job_types}
    assert set(kinds.values()) == {"pre-training", "fine-tuning", "batch-inference"}
    df = fleet.to_frame()
    assert (df["source"].str.len() > 20).all()
    assert df["source"].str.match(r"^(measured|estimated|not supported): ").all()
    assert (df["source"].str.startswith("measured") == df["measured"]).all()
    assert df["measured"].sum() == 7  # the ML.ENERGY points
    assert set(df.loc[df["measured"], "accelerator"]) == {"H100", "B200"}
    for j in fleet.job_types:  # gang sizes as the YAML declares them
        want = [8, 16, 32, 64] if kinds[j] == "pre-training" else [1, 2, 4, 8]
        assert sorted(df.loc[df["job_type"] == j, "gang"].unique()) == want
    assert fleet.work_unit("llama3.1-8b-batch-inference") == "output token"
    spec = read_fleet_spec()
    for mfu, basis, src in spec.training_mfu.values():
        assert 0 < mfu < 1 and basis in ("published", "derived", "assumed") and len(src) > 30
    assert resources.files("gridshift.catalog").joinpath("fleet_jobs.yaml").is_file()


def test_fleet_training_entries_hand_computed(fleet):
    h = CAT["H100"]
    assert fleet.get("llama3-70b-pretrain", "H100", 32) == pytest.approx(32 * h.peak_bf16_tflops * 1e12 * 0.40
                                                                         / (6 * 70.6e9))
    a = CAT["A100"]
    assert fleet.get("llama3-8b-lora", "A100", 2) == pytest.approx(2 * a.peak_bf16_tflops * 1e12 * 0.476 / (4 * 8.03e9))
    # training scales linearly with the gang once it fits
    assert fleet.get("llama3-8b-pretrain", "TPU-v5p", 64) == pytest.approx(8 * fleet.get("llama3-8b-pretrain", "TPU-v5p", 8))
    assert "Llama 3" in fleet.source("llama3-70b-pretrain", "H100", 32)
    assert "assumed" in fleet.source("llama3-70b-pretrain", "Trainium2", 32)


def test_no_memory_fit_means_zero(fleet):
    # 70B BF16 weights are 141 GB: not on one 80 GB card, but on one 180 GB B200
    assert fleet.get("llama3.1-70b-batch-inference", "H100", 1) == 0.0
    assert "does not fit" in fleet.source("llama3.1-70b-batch-inference", "H100", 1)
    assert fleet.get("llama3.1-70b-batch-inference", "B200", 1) > 0
    assert fleet.get("llama3.1-8b-batch-inference", "TPU-v5e", 1) == 0.0  # 16 GB weights on a 16 GB chip
    # training state: 16 bytes/param -> 1.13 TB for 70B: not on 8 or 16 H100s (0.8 x 80 GB each)
    assert fleet.get("llama3-70b-pretrain", "H100", 8) == 0.0 and fleet.get("llama3-70b-pretrain", "H100", 16) == 0.0
    assert fleet.get("llama3-70b-pretrain", "H100", 32) > 0
    assert fleet.get("llama3-8b-full-ft", "H100", 1) == 0.0 and fleet.get("llama3-8b-full-ft", "H100", 4) > 0
    assert fleet.gang_sizes("llama3-70b-pretrain").tolist() == [8, 16, 32, 64]  # B200 fits at 8
    spec = read_fleet_spec()
    job = spec.jobs["llama3.1-70b-batch-inference"]
    batch, why = inference_step(job, CAT["H100"], 1, 0.9)
    assert batch is None and "141 GB of weights" in why
    val, why = training_tokens_per_s(spec.jobs["llama3-70b-pretrain"], CAT["A100"], 8, 0.476, 0.8)
    assert val == 0.0 and "1,130 GB" in why


def test_inferentia2_is_inference_only(fleet):
    for j in fleet.job_types:
        row = fleet.matrix([j], ["Inferentia2"], fleet.gang_sizes(j))[:, 0]
        if fleet.kind(j) == "batch-inference":
            assert row.max() > 0
        else:
            assert row.max() == 0 and "not supported" in fleet.source(j, "Inferentia2", 8)


def test_inference_calibration_and_checks(fleet):
    chk = inference_checks()
    assert len(chk) == 7 and chk["calibration"].sum() == 3
    assert chk.loc[chk["calibration"], "ratio"].to_numpy() == pytest.approx(1.0)
    out = chk.loc[~chk["calibration"], "ratio"]
    assert out.between(0.7, 1.6).all()  # measured: 0.75-1.56 (docs/guide/heterogeneity.md)
    assert chk["efficiency"].between(0.3, 1.0).all()
    # measured points are used as measured, with the measured power per accelerator
    e = fleet.entry("llama3.1-70b-batch-inference", "H100", 4)
    assert e.measured and e.steps_per_s == 6827.21 and e.avg_power_w == pytest.approx(636.88)
    assert fleet.energy_j_per_step("llama3.1-70b-batch-inference", "H100", 4) == pytest.approx(4 * 636.88 / 6827.21)


def test_inference_gangs_never_lose_to_independent_replicas(fleet):
    for j in fleet.job_types:
        if fleet.kind(j) != "batch-inference":
            continue
        for a in fleet.acc_types:
            for g in (2, 4, 8):
                for d in (1, 2, 4):
                    if d < g and g % d == 0:
                        assert fleet.get(j, a, g) >= (g // d) * fleet.get(j, a, d) * (1 - 1e-12), (j, a, g, d)


@_needs("accelerators/mlenergy-v3")
def test_fleet_measured_points_match_the_mlenergy_file():
    from gridshift.data.hardware import load_mlenergy

    d = load_mlenergy()
    d = d[d["task"] == "lm-arena-chat"]
    models = {"llama3.1-8b-batch-inference": "meta-llama/Llama-3.1-8B-Instruct",
              "qwen3-32b-batch-inference": "Qwen/Qwen3-32B",
              "llama3.1-70b-batch-inference": "meta-llama/Llama-3.1-70B-Instruct"}
    spec = read_fleet_spec()
    for name, model in models.items():
        for p in spec.jobs[name].measured:
            rows = d[(d["model"] == model) & (d["gpu_model"] == p.accelerator) & (d["num_gpus"] == p.gang)]
            best = rows.loc[rows["output_tokens_per_s"].idxmax()]
            assert p.tokens_per_s == pytest.approx(best["output_tokens_per_s"], abs=0.01), (name, p)
            assert p.power_w == pytest.approx(best["avg_power_w"] / p.gang, abs=0.01), (name, p)


# --------------------------------------------------------------------------------------------- bad YAML


def _packaged_text() -> str:
    return resources.files("gridshift.catalog").joinpath("fleet_jobs.yaml").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("old", "new", "field", "words"),
    [
        ("    params_b: 70.6\n    flop_per_token_per_param: 6\n", "    params_b: -70.6\n    flop_per_token_per_param: 6\n",
         "job_types.llama3-70b-pretrain.params_b", "must be > 0"),
        ("accelerators: [H100,", "accelerators: [H900,", "accelerators[0]", "unknown accelerator"),
        ("    kind: pre-training\n    description: Llama-3-8B", "    kind: training\n    description: Llama-3-8B",
         "job_types.llama3-8b-pretrain.kind", "expected one of"),
        ("      params_b: Meta Llama 3.1 70B model card (Hugging Face meta-llama/Llama-3.1-70B), 70.6B parameters.\n",
         "", "job_types.llama3-70b-pretrain.sources.params_b", "no source"),
        ("    calibrate_on: {accelerator: H100, gpus: 4}", "    calibrate_on: {accelerator: A100, gpus: 4}",
         "job_types.llama3.1-70b-batch-inference.calibrate_on", "no measured point"),
        ("  Ascend-910B:\n    mfu: 0.50\n", "  Ascend-910B:\n    mfu: 50\n", "training_mfu.Ascend-910B.mfu", "<= 1"),
        ("    max_batch: 1024\n    gang_sizes: [1, 2, 4, 8]\n    calibrate_on: {accelerator: H100, gpus: 1}",
         "    max_batch: 1024\n    gang_sizes: [1, 2, 4, 8]\n    batch: 3\n    calibrate_on: {accelerator: H100, gpus: 1}",
         "job_types.llama3.1-8b-batch-inference.batch", "unknown field"),
    ],
)
def test_bad_fleet_yaml_gives_one_clear_line(tmp_path, old, new, field, words):
    text = _packaged_text()
    assert old in text
    p = tmp_path / "fleet.yaml"
    p.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(CatalogError) as ei:
        read_fleet_spec(p)
    msg = str(ei.value)
    assert "\n" not in msg and str(p) in msg and f"field '{field}'" in msg and words in msg, msg


def test_fleet_yaml_syntax_duplicates_and_missing_file(tmp_path):
    with pytest.raises(CatalogError, match=r"not valid YAML: .* at line 3, column 1"):
        parse_fleet_spec("version: 1\naccelerators: [H100\n", "x.yaml")
    text = _packaged_text().replace("version: 1\n", "version: 1\nversion: 1\n", 1)
    with pytest.raises(CatalogError, match="duplicate key 'version'"):
        parse_fleet_spec(text, "x.yaml")
    with pytest.raises(CatalogError, match="cannot read fleet job file"):
        read_fleet_spec(tmp_path / "missing.yaml")
    # dropping an accelerator's MFU is an error unless the accelerator cannot train
    text = _packaged_text()
    cut = text.index("  TPU-v5e:\n    mfu:")
    end = text.index("  TPU-v5p:\n    mfu:")
    with pytest.raises(CatalogError, match="no training MFU for accelerator 'TPU-v5e'"):
        parse_fleet_spec(text[:cut] + text[end:], "x.yaml")
    spec = parse_fleet_spec(text, "x.yaml")
    t = build_fleet_table(spec)
    assert isinstance(t, ThroughputTable) and t.notes["source"] == "x.yaml"
    assert isinstance(t.to_frame(), pd.DataFrame)
