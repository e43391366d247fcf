"""Accelerator catalog: loading, sources, power-cap curves against the measured data, look-up, user files."""

from __future__ import annotations

import importlib.util
import re
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gridshift.catalog import (
    Catalog,
    catalog_table,
    get_accelerator,
    load_catalog,
    load_catalog_file,
)
from gridshift.catalog.estimate import relative_throughput
from gridshift.errors import CatalogError
from gridshift.model.accelerator import AcceleratorType, PowerCapCurve
from gridshift.model.workload import JobKind

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
ACC = DATA / "accelerators"

needs_data = pytest.mark.skipif(not ACC.is_dir(), reason=f"shared data not found at {DATA}")

REQUIRED = [
    "H100", "H200", "B200", "A100", "V100", "MI300X", "Trainium2", "Inferentia2", "TPU-v5e", "TPU-v5p",
    "Ascend-910B", "K80", "P100",
]
FIGURES = [
    "peak_bf16_tflops", "peak_fp8_tflops", "hbm_gb", "hbm_tb_per_s", "board_power_w", "idle_power_w",
    "host_power_w", "power_cap_curve",
]
MEASURED_CURVES = ["A100", "V100", "P100"]  # directly measured power-cap sweeps
CURVE_TOL = 2e-3  # the YAML holds 3 decimals


def _script():
    """Import scripts/derive_powercap_curves.py (not a package module)."""
    name = "derive_powercap_curves"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod  # dataclasses need the module registered while it executes
        spec.loader.exec_module(mod)
    return sys.modules[name]


@pytest.fixture(scope="module")
def cat() -> dict[str, AcceleratorType]:
    return load_catalog()


# ------------------------------------------------------------------------------------------------ loading


def test_catalog_is_packaged_and_loads(cat):
    assert (resources.files("gridshift.catalog") / "accelerators.yaml").is_file()
    assert isinstance(cat, Catalog)
    assert all(isinstance(a, AcceleratorType) and a.name == n for n, a in cat.items())


def test_required_types_present(cat):
    missing = [n for n in REQUIRED if n not in cat]
    assert not missing, missing


def test_load_catalog_is_cached_but_returns_a_copy(cat):
    c1 = load_catalog()
    c1.pop("H100")
    c2 = load_catalog()
    assert "H100" in c2
    assert c2["A100"] is cat["A100"]  # same validated (frozen) objects: parsed once


def test_every_figure_has_a_source(cat):
    for name, acc in cat.items():
        for f in FIGURES:
            src = acc.sources.get(f, "")
            assert len(src.strip()) > 10, f"{name}: no source for {f}"
        assert set(acc.estimated) <= set(FIGURES), (name, acc.estimated)
        for f in acc.estimated:
            text = acc.power_cap_curve.source if f == "power_cap_curve" else acc.sources[f]
            assert "estimate" in text.lower(), f"{name}.{f} is estimated but its source does not say so"
        if acc.peak_fp8_tflops is None:
            assert "not applicable" in acc.sources["peak_fp8_tflops"].lower(), name


def test_unpublished_figures_are_marked_estimated(cat):
    for name in cat:
        assert "idle_power_w" in cat[name].estimated, name
    for name in ["Trainium2", "Inferentia2", "TPU-v5e", "TPU-v5p"]:
        assert "board_power_w" in cat[name].estimated, name
    for name in cat:
        if name != "H100":
            assert "host_power_w" in cat[name].estimated, name
    assert "host_power_w" not in cat["H100"].estimated  # derived from MLPerf Training
    for name in MEASURED_CURVES:
        assert "power_cap_curve" not in cat[name].estimated, name
        assert cat[name].power_cap_curve.source.startswith("Measured"), name
    for name in set(cat) - set(MEASURED_CURVES):
        assert "power_cap_curve" in cat[name].estimated, name


def test_key_figures(cat):
    h100 = cat["H100"]
    assert h100.peak_bf16_tflops == pytest.approx(989, abs=1)
    assert h100.peak_fp8_tflops == pytest.approx(1979)
    assert (h100.hbm_gb, h100.hbm_tb_per_s, h100.board_power_w) == (80, 3.35, 700)
    assert cat["H200"].hbm_gb == 141 and cat["H200"].hbm_tb_per_s == 4.8
    assert cat["A100"].peak_fp8_tflops is None
    assert cat["B200"].peak_fp8_tflops == 2 * cat["B200"].peak_bf16_tflops
    for acc in cat.values():
        assert 0 < acc.idle_power_w < acc.board_power_w
        assert 0 < acc.host_power_w < acc.board_power_w


@needs_data
def test_epoch_figures_match_the_dataset(cat):
    """Every figure cited as 'Epoch AI row "<name>" ...' equals that row of epoch_ml_hardware.csv."""
    epoch = pd.read_csv(ACC / "epoch_ml_hardware.csv").set_index("Hardware name")
    cols = {
        "peak_bf16_tflops": (
            ["Tensor-FP16/BF16 performance (FLOP/s)", "FP16 (half precision) performance (FLOP/s)"], 1e12
        ),
        "peak_fp8_tflops": (["FP8 performance (FLOP/s)"], 1e12),
        "hbm_gb": (["Memory size per board (Byte)"], 1e9),
        "hbm_tb_per_s": (["Memory bandwidth (byte/s)"], 1e12),
        "board_power_w": (["TDP (W)"], 1.0),
    }
    checked = 0
    for name, acc in cat.items():
        for field, (columns, scale) in cols.items():
            m = re.match(r'Epoch AI row "([^"]+)"', acc.sources[field])
            if not m:
                continue
            row = epoch.loc[m.group(1)]
            value = next(row[c] for c in columns if pd.notna(row[c])) / scale
            assert getattr(acc, field) == pytest.approx(value, rel=1e-3), (name, field, value)
            checked += 1
    assert checked >= 40


@needs_data
def test_h100_host_power_from_mlperf_training(cat):
    t = pd.read_csv(ACC / "mlperf_training_power.csv")
    row = t[(t["id"] == "4.0-0095") & (t["benchmark"] == "gpt3")].iloc[0]
    assert row["avg_power_kW"] * 1000 / row["accelerators"] == pytest.approx(row["W_per_accel_all_in"], abs=1)
    assert cat["H100"].host_power_w == row["W_per_accel_all_in"] - cat["H100"].board_power_w


# ------------------------------------------------------------------------------------------------ curves


def test_curves_valid_and_monotone(cat):
    for name, acc in cat.items():
        c = acc.power_cap_curve
        PowerCapCurve.model_validate(c.model_dump())  # re-run the validator
        p, t = np.asarray(c.power_frac), np.asarray(c.throughput_frac)
        assert np.all(np.diff(p) > 0) and np.all(np.diff(t) >= 0), name
        assert p[-1] == 1.0 and t[-1] == 1.0 and p[0] > 0 and t[0] > 0, name
        assert np.all(t <= p + 0.7), name  # sanity: nothing wildly above the diagonal
        assert all(round(x, 3) == x for x in [*c.power_frac, *c.throughput_frac]), name
        # throughput_at interpolates and clips below the first point
        assert c.throughput_at(1.0) == pytest.approx(1.0)
        assert c.throughput_at(0.0) == pytest.approx(t[0])


@needs_data
def test_a100_curve_reproduces_emerald(cat):
    e = pd.read_csv(ACC / "emerald_dvfs_sweep.csv")
    wide = e.pivot_table(index="Workload", columns="GPU power cap", values="normalized throughput").sort_index(axis=1)
    assert len(wide) == 8
    distinct = wide.round(9).drop_duplicates()  # the three infer_llama_8b* rows are one measurement
    assert len(distinct) == 6
    med = distinct.median(axis=0)
    c = cat["A100"].power_cap_curve
    np.testing.assert_allclose(c.power_frac, med.index.to_numpy() / 400.0, atol=1e-9)
    np.testing.assert_allclose(c.throughput_frac, med.to_numpy(), atol=CURVE_TOL)
    # and every point lies within the spread of the 8 measured workloads
    at = c.throughput_at(wide.columns.to_numpy() / 400.0)
    assert np.all(at >= wide.min(axis=0).to_numpy() - CURVE_TOL)
    assert np.all(at <= wide.max(axis=0).to_numpy() + CURVE_TOL)


@needs_data
@pytest.mark.parametrize("name,gpu", [("V100", "v100"), ("P100", "p100")])
def test_zeus_curves_match_medians(cat, name, gpu):
    z = pd.read_csv(ACC / "zeus_powercap_summary.csv")
    z = z[z["gpu"] == gpu].sort_values("pl_frac")
    c = cat[name].power_cap_curve
    np.testing.assert_allclose(c.power_frac, z["pl_frac"], atol=1e-9)
    np.testing.assert_allclose(c.throughput_frac, z["throughput_retained_median"], atol=CURVE_TOL)


@needs_data
@pytest.mark.parametrize("name,gpu", [("H100", "H100-SXM"), ("H200", "H200-SXM")])
def test_hopper_curves_pass_through_mlperf_maxq(cat, name, gpu):
    m = pd.read_csv(ACC / "mlperf_inference_powercap.csv")
    row = m[(m["gpu"] == gpu) & (m["scenario"] == "Offline")].iloc[0]
    frac = float(row["gpu_power_limit_W"]) / float(row["tdp_W"])
    assert frac == pytest.approx(float(row["cap_frac"]), abs=1e-3)
    kept = float(cat[name].power_cap_curve.throughput_at(frac))
    assert kept == pytest.approx(float(row["throughput_retained_vs_maxP"]), abs=0.005)
    # the Hopper curve keeps less than the A100 curve at the same cap fraction (shape shifted right)
    a100 = cat["A100"].power_cap_curve
    grid = np.linspace(cat[name].power_cap_curve.min_power_frac, 1.0, 50)
    assert np.all(cat[name].power_cap_curve.throughput_at(grid) <= a100.throughput_at(grid) + 1e-9)


@needs_data
def test_yaml_curves_are_what_the_script_prints(cat):
    mod = _script()
    curves = mod.derive_all(DATA)
    assert set(curves) == set(cat)
    for name, c in curves.items():
        got = cat[name].power_cap_curve
        assert list(got.power_frac) == list(c.power_frac), name
        assert list(got.throughput_frac) == list(c.throughput_frac), name
        assert " ".join(got.source.split()) == " ".join(c.source.split()), name


def test_isotonic_fit_makes_measured_points_monotone():
    mod = _script()
    p, t, notes = mod.make_monotone(np.array([0.25, 0.5, 0.75, 1.0]), np.array([0.3, 0.8, 0.7, 1.02]), "x")
    assert np.all(np.diff(t) >= 0) and t[-1] == 1.0
    assert t[1] == pytest.approx(0.75) and t[2] == pytest.approx(0.75)
    assert notes


# ------------------------------------------------------------------------------------------------ look-up


@pytest.mark.parametrize(
    "alias,name",
    [
        ("h100", "H100"), ("H100-SXM", "H100"), ("h100-sxm", "H100"), ("H100 SXM5 80GB", "H100"),
        ("NVIDIA H100", "H100"), ("h200-sxm", "H200"), ("a100-80gb", "A100"), ("A100_SXM4", "A100"),
        ("trn2", "Trainium2"), ("inf2", "Inferentia2"), ("tpu-v5e", "TPU-v5e"), ("TPU v5p", "TPU-v5p"),
        ("google tpu v5e", "TPU-v5e"), ("mi300x", "MI300X"), ("AMD MI300X", "MI300X"), ("910b", "Ascend-910B"),
        ("ascend 910b", "Ascend-910B"), ("k80", "K80"), ("p100", "P100"), ("v100", "V100"),
    ],
)
def test_get_accelerator_aliases(cat, alias, name):
    assert get_accelerator(alias).name == name
    assert get_accelerator(alias, cat).name == name
    assert get_accelerator(alias, dict(cat)).name == name  # plain dict: built-in aliases still work


def test_unknown_accelerator_error_is_one_line_listing_names():
    with pytest.raises(CatalogError) as ei:
        get_accelerator("H1000")
    msg = str(ei.value)
    assert "\n" not in msg
    assert "H1000" in msg and "did you mean 'H100'" in msg
    for n in REQUIRED:
        assert n in msg


def test_catalog_table(cat):
    rows = catalog_table()
    assert [r["name"] for r in rows] == list(cat)
    h = rows[0]
    assert h["board_power_w"] == 700 and h["min_power_cap_frac"] == cat["H100"].min_power_cap_frac
    assert set(h) >= {"vendor", "peak_bf16_tflops", "hbm_tb_per_s", "idle_power_w", "host_power_w", "estimated"}


# ------------------------------------------------------------------------------------------------ throughput


def test_relative_throughput(cat):
    b200, h100, k80 = cat["B200"], cat["H100"], cat["K80"]
    assert relative_throughput(b200, h100, "pre-training") == pytest.approx(2250 / 989.4)
    assert relative_throughput(b200, h100, JobKind.FINE_TUNING) == pytest.approx(2250 / 989.4)
    assert relative_throughput(b200, h100, "batch-inference") == pytest.approx(7.7 / 3.35)
    assert relative_throughput(h100, h100, "batch_inference") == 1.0
    assert relative_throughput(k80, h100, "pre-training") < 0.01
    with pytest.raises(CatalogError, match="unknown job kind"):
        relative_throughput(b200, h100, "training")


# ------------------------------------------------------------------------------------------------ user files


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "my_catalog.yaml"
    p.write_text(text)
    return p


NEW_CHIP = """
accelerators:
  MyChip:
    vendor: Acme
    peak_bf16_tflops: 100
    hbm_gb: 16
    hbm_tb_per_s: 1
    board_power_w: {board}
    idle_power_w: 10
    power_cap_curve:
      power_frac: {pf}
      throughput_frac: {tf}
      source: my lab
"""


def _assert_one_line(err: CatalogError, path: Path, *needles: str) -> None:
    msg = str(err)
    assert "\n" not in msg
    assert str(path) in msg
    for n in needles:
        assert n in msg, (n, msg)


def test_user_catalog_negative_power(tmp_path):
    p = _write(tmp_path, NEW_CHIP.format(board=-300, pf=[0.5, 1.0], tf=[0.8, 1.0]))
    with pytest.raises(CatalogError) as ei:
        load_catalog_file(p)
    _assert_one_line(ei.value, p, "MyChip", "board_power_w")
    assert ei.value.field == "board_power_w"


def test_user_catalog_negative_power_override_of_builtin(tmp_path):
    p = _write(tmp_path, "accelerators:\n  h100-sxm:\n    host_power_w: -1\n")
    with pytest.raises(CatalogError) as ei:
        load_catalog_file(p)
    _assert_one_line(ei.value, p, "H100", "host_power_w")


@pytest.mark.parametrize(
    "pf,tf,field",
    [
        ([0.5, 0.8, 1.0], [0.8, 0.7, 1.0], "power_cap_curve.throughput_frac"),
        ([0.8, 0.5, 1.0], [0.5, 0.7, 1.0], "power_cap_curve.power_frac"),
        ([0.5, 0.9], [0.8, 0.9], "power_cap_curve"),  # does not end at (1, 1)
    ],
)
def test_user_catalog_bad_curve(tmp_path, pf, tf, field):
    p = _write(tmp_path, NEW_CHIP.format(board=300, pf=pf, tf=tf))
    with pytest.raises(CatalogError) as ei:
        load_catalog_file(p)
    _assert_one_line(ei.value, p, "MyChip", field)
    assert ei.value.field == field


@pytest.mark.parametrize(
    "text,needle",
    [
        ("accelerators:\n  A100:\n    estimated: [bogus]\n", "estimated"),
        ("accelerators:\n  A100:\n    colour: red\n", "colour"),
        ("accelerators:\n  A100:\n    hbm_gb: lots\n", "hbm_gb"),
        ("accelerators:\n  A100: {host_power_w: 1}\n  A100: {host_power_w: 2}\n", "duplicate key"),
        ("accelerators:\n  A100: [1, 2\n", "not valid YAML"),
        ("accelerators:\n  A100: {host_power_w: 1}\n  a100-sxm: {host_power_w: 2}\n", "twice"),
        ("accelerators:\n  Foo:\n    vendor: x\n", "missing required field(s)"),
        ("accelerators:\n  Foo:\n    aliases: [h100]\n", "already used by 'H100'"),
        ("version: 2\naccelerators: {}\n", "version"),
        ("- just a list\n", "mapping"),
    ],
)
def test_user_catalog_other_errors(tmp_path, text, needle):
    p = _write(tmp_path, text)
    with pytest.raises(CatalogError) as ei:
        load_catalog_file(p)
    _assert_one_line(ei.value, p, needle)


def test_user_catalog_missing_file(tmp_path):
    with pytest.raises(CatalogError) as ei:
        load_catalog_file(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(ei.value)


def test_user_catalog_merges_over_builtin(tmp_path, cat):
    p = _write(
        tmp_path,
        "accelerators:\n"
        "  NVIDIA H100:\n"
        "    aliases: [hopper]\n"
        "    host_power_w: 300\n"
        "    idle_power_w: 55\n"
        "    sources: {idle_power_w: our nvidia-smi logs}\n"
        + NEW_CHIP.format(board=300, pf=[0.5, 1.0], tf=[0.8, 1.0]).split("accelerators:\n", 1)[1],
    )
    merged = load_catalog_file(p)
    assert list(merged)[: len(cat)] == list(cat) and list(merged)[-1] == "MyChip"
    h = merged["H100"]
    assert (h.host_power_w, h.idle_power_w, h.board_power_w) == (300, 55, 700)
    assert h.sources["host_power_w"] == f"user catalog {p}"
    assert h.sources["idle_power_w"] == "our nvidia-smi logs"
    assert h.sources["board_power_w"] == cat["H100"].sources["board_power_w"]
    assert "idle_power_w" not in h.estimated and "power_cap_curve" in h.estimated
    assert get_accelerator("hopper", merged) is h
    assert get_accelerator("h100-sxm", merged) is h
    assert get_accelerator("mychip", merged).vendor == "Acme"
    # the built-in catalog is untouched
    assert load_catalog()["H100"].host_power_w == 260
    with pytest.raises(CatalogError):
        get_accelerator("hopper")
