#!/usr/bin/env python3
"""Derive the power-cap curves of the accelerator catalog from measured data.

A curve maps a power cap, as a fraction of board power (TDP), to the fraction of full-power throughput the
accelerator keeps. This script reads the measurements, builds one curve per catalog accelerator and prints
YAML ``power_cap_curve:`` blocks; ``src/gridshift/catalog/accelerators.yaml`` holds exactly the numbers it
prints (rounded to 3 decimals). ``--check`` compares the packaged YAML against a fresh derivation instead.

Method
------
* **A100** (measured): Emerald AI DVFS sweep (``accelerators/emerald_dvfs_sweep.csv``; A100 caps 100-400 W of
  a 400 W board). The file has 8 workload rows, but ``infer_llama_8b``, ``infer_llama_8b_32g`` and
  ``infer_llama_8b_48g`` are one measurement replicated at 16/32/48 GPUs (identical normalized throughput and
  identical per-GPU power), so identical normalized curves are counted once (6 distinct workloads). The curve
  is the median normalized throughput across them at each cap; x = cap / 400 W.
* **V100, P100** (measured): Zeus power-limit sweeps (``accelerators/zeus_powercap_summary.csv``): median
  throughput retained at each power-limit fraction of the GPU's maximum power limit.
* **H100, H200** (shape + one measured anchor): the A100 curve's shape, stretched along the power axis so that
  it passes through the MLPerf Inference MaxQ point (``accelerators/mlperf_inference_powercap.csv``, Offline
  scenario: throughput retained vs the MaxP run at the MaxQ GPU power limit / 700 W). With A(p) the A100
  curve and (p*, r*) the anchor, H(p) = A(1 - s (1 - p)) with s = (1 - A^-1(r*)) / (1 - p*); i.e. each A100
  point (a, t) moves to (1 - (1 - a) / s, t). The map is affine, so the piecewise-linear curve passes exactly
  through the anchor.
* **Everything else** (no published power-cap measurement): the curve of the closest measured family, copied
  as fractions of the type's own board power, with a ``source`` that says it is an estimate and from what.

Every measured curve is made monotone before use: values are clamped to (0, 1] and fitted with isotonic
(pool-adjacent-violators) regression so throughput never decreases as the cap rises; the last point is set to
(1.0, 1.0). The script reports any point that this changed.

Data location: ``--data-dir`` if given; otherwise ``gridshift.data.registry.resolve`` (which looks in
``$GRIDSHIFT_DATA_DIR``, ``../shared/data`` beside the checkout, then the user cache); if that module is
missing or fails, ``$GRIDSHIFT_DATA_DIR``, then ``../shared/data`` beside the repository, read directly.

Usage::

    python scripts/derive_powercap_curves.py [--data-dir DIR] [--check]
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO.parent / "shared" / "data"
CATALOG_YAML = REPO / "src" / "gridshift" / "catalog" / "accelerators.yaml"

EMERALD = "accelerators/emerald_dvfs_sweep.csv"
ZEUS = "accelerators/zeus_powercap_summary.csv"
MLPERF_INF = "accelerators/mlperf_inference_powercap.csv"
# Their names in the data registry (src/gridshift/data/datasets.yaml).
REGISTRY_NAMES = {
    EMERALD: "accelerators/emerald-dvfs",
    ZEUS: "accelerators/zeus-powercap",
    MLPERF_INF: "accelerators/mlperf-inference-powercap",
}

A100_BOARD_W = 400.0  # Emerald sweep: caps are of the A100 SXM4 400 W board

DECIMALS = 3


@dataclass(frozen=True)
class Curve:
    power_frac: tuple[float, ...]
    throughput_frac: tuple[float, ...]
    source: str
    notes: tuple[str, ...] = ()

    def rounded(self) -> Curve:
        return Curve(
            tuple(round(float(x), DECIMALS) for x in self.power_frac),
            tuple(round(float(x), DECIMALS) for x in self.throughput_frac),
            self.source,
            self.notes,
        )


# --------------------------------------------------------------------------------------------------- data


def resolve(rel: str, data_dir: Path | None) -> Path:
    """Path of a shared data file (see module docstring for the order)."""
    if data_dir is not None:
        return data_dir / rel
    try:  # the project's data registry ($GRIDSHIFT_DATA_DIR, ../shared/data, user cache, download)
        if str(REPO / "src") not in sys.path:
            sys.path.append(str(REPO / "src"))  # run from a checkout without installing
        from gridshift.data import registry  # type: ignore[import-not-found]
    except Exception:  # noqa: BLE001 - module absent or not importable: fall back to direct paths
        registry = None
    if registry is not None:
        try:
            ds = registry.dataset_for_path(rel) if hasattr(registry, "dataset_for_path") else None
            p = Path(registry.resolve(ds.name if ds is not None else REGISTRY_NAMES[rel]))
            if p.is_file():
                return p
        except Exception:  # noqa: BLE001 - registry does not know the file, or cannot fetch it
            pass
    env = os.environ.get("GRIDSHIFT_DATA_DIR")
    if env and (Path(env) / rel).is_file():
        return Path(env) / rel
    return DEFAULT_DATA_DIR / rel


# --------------------------------------------------------------------------------------------------- math


def isotonic_non_decreasing(y: np.ndarray) -> np.ndarray:
    """Least-squares non-decreasing fit (pool adjacent violators), equal weights."""
    blocks: list[list[float]] = []  # [mean, count]
    for v in np.asarray(y, dtype=float):
        blocks.append([v, 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, n2 = blocks.pop()
            m1, n1 = blocks.pop()
            blocks.append([(m1 * n1 + m2 * n2) / (n1 + n2), n1 + n2])
    return np.concatenate([np.full(int(n), m) for m, n in blocks])


def make_monotone(power: np.ndarray, thr: np.ndarray, label: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Sort, clamp to (0, 1], isotonic-fit, and pin the end at (1, 1). Returns notes on what changed."""
    order = np.argsort(power)
    p = np.asarray(power, dtype=float)[order]
    t = np.asarray(thr, dtype=float)[order]
    notes: list[str] = []
    if np.any(np.diff(p) <= 0):
        raise ValueError(f"{label}: duplicate power fractions {p.tolist()}")
    if abs(p[-1] - 1.0) > 1e-9:
        raise ValueError(f"{label}: measurements must include full power (last power fraction {p[-1]})")
    clamped = np.clip(t, 1e-3, 1.0)
    if np.any(clamped != t):
        notes.append(f"{label}: clamped throughput to (0, 1] at power_frac {p[clamped != t].round(3).tolist()}")
    fitted = isotonic_non_decreasing(clamped)
    if np.any(np.abs(fitted - clamped) > 1e-12):
        changed = p[np.abs(fitted - clamped) > 1e-12].round(3).tolist()
        notes.append(f"{label}: isotonic fit changed points at power_frac {changed}")
    if abs(fitted[-1] - 1.0) > 1e-12:
        notes.append(f"{label}: full-power point {fitted[-1]:.4f} set to 1.0")
        fitted[-1] = 1.0
    return p, fitted, notes


# --------------------------------------------------------------------------------------------------- curves


def a100_emerald(emerald: pd.DataFrame) -> tuple[Curve, pd.DataFrame]:
    """Median normalized throughput per cap over the distinct Emerald workloads."""
    wide = emerald.pivot_table(index="Workload", columns="GPU power cap", values="normalized throughput")
    wide = wide.sort_index(axis=1)
    distinct = wide.round(9).drop_duplicates()
    dropped = sorted(set(wide.index) - set(distinct.index))
    med = distinct.median(axis=0)
    power = med.index.to_numpy(dtype=float) / A100_BOARD_W
    p, t, notes = make_monotone(power, med.to_numpy(), "A100/Emerald")
    caps = ", ".join(f"{int(c)}" for c in med.index)
    src = (
        "Measured: Emerald AI DVFS sweep on A100 (emerald_dvfs_sweep.csv; Colangelo et al., arXiv 2507.00909), "
        f"GPU power caps {caps} W of the 400 W board. Median normalized throughput over {len(distinct)} "
        f"distinct workloads (fine-tuning, inference, pre-training; {', '.join(dropped)} dropped as duplicates "
        "of the same inference measurement at other GPU counts). "
        + ("Already monotone; no isotonic adjustment needed." if not notes else "Isotonic-fitted: " + "; ".join(notes))
    )
    return Curve(tuple(p), tuple(t), src, tuple(notes)), distinct


def zeus(zeus_df: pd.DataFrame, gpu: str, label: str) -> Curve:
    d = zeus_df[zeus_df["gpu"].str.lower() == gpu].sort_values("pl_frac")
    if d.empty:
        raise ValueError(f"no Zeus rows for {gpu}")
    p, t, notes = make_monotone(d["pl_frac"].to_numpy(), d["throughput_retained_median"].to_numpy(), label)
    lo, hi = int(d["power_limit_W"].min()), int(d["max_power_limit_W"].iloc[0])
    n = int(d["n_configs"].median())
    src = (
        f"Measured: Zeus power-limit sweep on {gpu.upper()} (zeus_powercap_summary.csv; You et al., NSDI 2023), "
        f"power limits {lo}-{hi} W of a {hi} W maximum limit, median throughput retained over ~{n} training "
        "configurations per limit. "
        + ("Already monotone; no isotonic adjustment needed." if not notes else "Isotonic-fitted: " + "; ".join(notes))
    )
    return Curve(tuple(p), tuple(t), src, tuple(notes))


def mlperf_anchor(mlperf: pd.DataFrame, gpu: str) -> tuple[float, float, str]:
    d = mlperf[(mlperf["gpu"] == gpu) & (mlperf["scenario"] == "Offline")].copy()
    d["cap_frac"] = pd.to_numeric(d["cap_frac"], errors="coerce")
    d["throughput_retained_vs_maxP"] = pd.to_numeric(d["throughput_retained_vs_maxP"], errors="coerce")
    d = d.dropna(subset=["cap_frac", "throughput_retained_vs_maxP"])
    if d.empty:
        raise ValueError(f"no MLPerf MaxQ Offline anchor for {gpu}")
    row = d.iloc[0]
    limit = pd.to_numeric(row["gpu_power_limit_W"], errors="coerce")
    p = float(limit) / float(row["tdp_W"]) if np.isfinite(limit) else float(row["cap_frac"])
    what = (
        f"MLPerf Inference {row['round']} {row['system']}, {row['benchmark']} Offline: "
        f"{float(row['throughput_retained_vs_maxP']):.3f} of MaxP throughput at a {int(limit)} W / "
        f"{int(row['tdp_W'])} W GPU power limit"
    )
    return p, float(row["throughput_retained_vs_maxP"]), what


def anchored_shape(base: Curve, p_star: float, r_star: float, what: str, server_note: str) -> Curve:
    """Stretch ``base`` along the power axis so that it passes through (p_star, r_star)."""
    bp = np.asarray(base.power_frac)
    bt = np.asarray(base.throughput_frac)
    if not (bt[0] <= r_star < 1.0):
        raise ValueError(f"anchor throughput {r_star} outside the base curve's range")
    a_star = float(np.interp(r_star, bt, bp))  # A^-1(r*)
    s = (1.0 - a_star) / (1.0 - p_star)
    p = 1.0 - (1.0 - bp) / s
    keep = p > 0
    p, t = p[keep], bt[keep]
    src = (
        f"Shape of the measured A100 curve (Emerald) anchored at one measured point: {what}. "
        f"The A100 curve reaches that throughput at {a_star:.3f} of its board power, so its power axis is "
        f"stretched about full power by s = (1 - {a_star:.3f}) / (1 - {p_star:.3f}) = {s:.3f} "
        "(p -> 1 - (1 - p)/s); the curve passes exactly through the anchor. Only the anchor is measured on "
        f"this GPU; the other points are an estimate. {server_note}"
    )
    return Curve(tuple(p), tuple(t), src)


def copied(base: Curve, base_name: str, target: str, why: str) -> Curve:
    return Curve(
        base.power_frac,
        base.throughput_frac,
        f"ESTIMATE: no published power-cap measurement for {target}. Copies the {base_name} curve "
        f"(as fractions of {target}'s own board power) because {why}.",
    )


def derive_all(data_dir: Path | None = None) -> dict[str, Curve]:
    emerald = pd.read_csv(resolve(EMERALD, data_dir))
    zeus_df = pd.read_csv(resolve(ZEUS, data_dir))
    mlperf = pd.read_csv(resolve(MLPERF_INF, data_dir))

    a100, _ = a100_emerald(emerald)
    v100 = zeus(zeus_df, "v100", "V100/Zeus")
    p100 = zeus(zeus_df, "p100", "P100/Zeus")
    v100 = Curve(
        v100.power_frac,
        v100.throughput_frac,
        v100.source + " Zeus's V100 has a 250 W maximum limit (PCIe board); the fractions are applied to the "
        "catalog's V100 SXM2 300 W board as an assumption.",
        v100.notes,
    )

    def server_note(gpu: str) -> str:
        d = mlperf[(mlperf["gpu"] == gpu) & (mlperf["scenario"] == "Server")]
        r = pd.to_numeric(d["throughput_retained_vs_maxP"], errors="coerce").dropna()
        if r.empty:
            return ""
        return (
            f"The latency-bound Server scenario of the same submission kept {float(r.iloc[0]):.3f}, so for "
            "latency-bound serving this curve is optimistic."
        )

    p_h, r_h, what_h = mlperf_anchor(mlperf, "H100-SXM")
    h100 = anchored_shape(a100, p_h, r_h, what_h, server_note("H100-SXM"))
    p_h2, r_h2, what_h2 = mlperf_anchor(mlperf, "H200-SXM")
    h200 = anchored_shape(a100, p_h2, r_h2, what_h2, server_note("H200-SXM"))

    # Round the measured/anchored curves first so that copies carry the very same printed numbers.
    a100, v100, p100, h100, h200 = (c.rounded() for c in (a100, v100, p100, h100, h200))

    hopper_why = (
        "no measured family exists for it; the H100 curve comes from the contemporaneous (2023-24) accelerator "
        "generation, and it keeps less throughput per cap fraction than the A100 curve, i.e. it is the more "
        "conservative of the two measured shapes"
    )
    return {
        "H100": h100,
        "H200": h200,
        "B200": copied(h100, "H100 (MLPerf-anchored)", "B200", "B200 is the successor of H100 in the same "
                       "NVIDIA HGX platform family and the H100 curve is the closest measured one"),
        "A100": a100,
        "V100": v100,
        "P100": p100,
        "K80": copied(p100, "Zeus P100 (measured)", "K80", "P100 is the closest (and oldest) measured NVIDIA "
                      "GPU; note nvidia-smi does not let a K80 GPU be capped below 100 W (~0.67 of 150 W)"),
        "MI300X": copied(h100, "H100 (MLPerf-anchored)", "MI300X", hopper_why),
        "Trainium2": copied(h100, "H100 (MLPerf-anchored)", "Trainium2", hopper_why),
        "Inferentia2": copied(h100, "H100 (MLPerf-anchored)", "Inferentia2", hopper_why),
        "TPU-v5e": copied(h100, "H100 (MLPerf-anchored)", "TPU-v5e", hopper_why),
        "TPU-v5p": copied(h100, "H100 (MLPerf-anchored)", "TPU-v5p", hopper_why),
        "Ascend-910B": copied(a100, "A100 (Emerald, measured)", "Ascend-910B", "the 910B is an "
                              "A100-generation design (7 nm process and 400 W board in its Epoch row) and the "
                              "A100 curve is measured"),
    }


# --------------------------------------------------------------------------------------------------- output


def _fmt_list(xs: tuple[float, ...]) -> str:
    return "[" + ", ".join(f"{x:.3f}".rstrip("0").rstrip(".") if x != int(x) else f"{x:.1f}" for x in xs) + "]"


def yaml_block(name: str, c: Curve, indent: int = 4) -> str:
    import textwrap

    pad = " " * indent
    src = textwrap.fill(c.source, width=104, initial_indent=pad + "  ", subsequent_indent=pad + "  ")
    return (
        f"{pad[:-2]}# {name}\n"
        f"{pad[:-2]}power_cap_curve:\n"
        f"{pad}power_frac: {_fmt_list(c.power_frac)}\n"
        f"{pad}throughput_frac: {_fmt_list(c.throughput_frac)}\n"
        f"{pad}source: >-\n{src}\n"
    )


def check_packaged(curves: dict[str, Curve]) -> int:
    import yaml

    raw = yaml.safe_load(CATALOG_YAML.read_text())["accelerators"]
    bad = 0
    for name, c in curves.items():
        got = raw.get(name, {}).get("power_cap_curve")
        if got is None:
            print(f"MISSING {name}: no power_cap_curve in {CATALOG_YAML}")
            bad += 1
            continue
        same = (
            list(c.power_frac) == [float(x) for x in got["power_frac"]]
            and list(c.throughput_frac) == [float(x) for x in got["throughput_frac"]]
            and " ".join(c.source.split()) == " ".join(str(got["source"]).split())
        )
        print(f"{'ok      ' if same else 'DIFFERS '} {name}")
        bad += not same
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", type=Path, default=None, help="folder holding accelerators/*.csv")
    ap.add_argument("--check", action="store_true", help="compare with the packaged accelerators.yaml")
    args = ap.parse_args(argv)

    for rel in (EMERALD, ZEUS, MLPERF_INF):
        print(f"# {rel}: {resolve(rel, args.data_dir)}", file=sys.stderr)
    curves = derive_all(args.data_dir)
    for _name, c in curves.items():
        for n in c.notes:
            print(f"# note: {n}", file=sys.stderr)
    if args.check:
        return check_packaged(curves)
    for name, c in curves.items():
        print(yaml_block(name, c))
    return 0


if __name__ == "__main__":
    sys.exit(main())
