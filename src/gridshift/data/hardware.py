"""Accelerator specifications and measured power behaviour, as tidy tables with unit-suffixed columns.

Each loader reads one small CSV, renames columns to snake_case with units (``_w`` watts, ``_j`` joules,
``_ms`` milliseconds, ``_per_s`` per second, ``_frac`` a 0–1 fraction, ``_gb`` 1e9 bytes), checks every
numeric cell (non-numeric or negative values raise DataError naming file, line and column) and keeps
all rows. Empty cells are NaN where the source leaves a value unknown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gridshift.data import validate as v
from gridshift.data._cache import cached_parse, source_path

_INF = np.inf


@dataclass(frozen=True)
class _Col:
    src: str
    dst: str
    kind: str = "num"  # num | int | text | date
    nan: bool = True  # missing allowed
    lo: float = 0.0
    hi: float = _INF
    scale: float = 1.0


def _table(p: Path, cols: list[_Col], *, multiline: bool = False) -> tuple[pd.DataFrame, v.Source, pd.DataFrame]:
    raw, src = v.read_csv(p, [c.src for c in cols], multiline=multiline)
    out = {}
    for c in cols:
        if c.kind == "text":
            out[c.dst] = pd.Series(v.text(raw, c.src, src, allow_empty=c.nan), dtype="str")
        elif c.kind == "date":
            s = raw[c.src]
            d = pd.to_datetime(s, format="%Y-%m-%d", errors="coerce")
            bad = (d.isna() & s.notna()).to_numpy()
            if bad.any():
                pos = int(np.argmax(bad))
                raise src.error(f"cannot parse date '{s.iloc[pos]}' (expected YYYY-MM-DD)", pos, c.src)
            out[c.dst] = d
        else:
            x = v.numeric(raw, c.src, src, bounds=(c.lo, c.hi), allow_nan=c.nan, integer=c.kind == "int")
            out[c.dst] = x * c.scale if c.scale != 1.0 else x
    df = pd.DataFrame(out)
    df.attrs["source"] = str(p)
    return df, src, raw


_EPOCH = [
    _Col("Hardware name", "name", "text", nan=False),
    _Col("Manufacturer", "manufacturer", "text"),
    _Col("Type", "type", "text"),
    _Col("Release date", "release_date", "date"),
    _Col("Release price (USD)", "release_price_usd"),
    _Col("FP64 (double precision) performance (FLOP/s)", "fp64_flops"),
    _Col("FP32 (single precision) performance (FLOP/s)", "fp32_flops"),
    _Col("FP16 (half precision) performance (FLOP/s)", "fp16_flops"),
    _Col("TF32 (TensorFloat-32) performance (FLOP/s)", "tf32_tensor_flops"),
    _Col("Tensor-FP16/BF16 performance (FLOP/s)", "bf16_tensor_flops"),
    _Col("FP8 performance (FLOP/s)", "fp8_flops"),
    _Col("FP4 performance (FLOP/s)", "fp4_flops"),
    _Col("INT8 performance (OP/s)", "int8_ops"),
    _Col("ML OP/s", "ml_ops"),
    _Col("Memory size per board (Byte)", "memory_gb", scale=1e-9),
    _Col("Memory bandwidth (byte/s)", "memory_bandwidth_bytes_per_s"),
    _Col("Intranode bandwidth (byte/s)", "intranode_bandwidth_bytes_per_s"),
    _Col("Internode bandwidth (bit/s)", "internode_bandwidth_bits_per_s"),
    _Col("TDP (W)", "tdp_w"),
    _Col("Die Size (mm^2)", "die_size_mm2"),
    _Col("Process size (nm)", "process_nm"),
    _Col("Transistors (millions)", "transistors_millions"),
    _Col("Foundry", "foundry", "text"),
]


def load_epoch_hardware(path: str | Path | None = None) -> pd.DataFrame:
    """Epoch AI's ML hardware table: 169 accelerators (CC BY 4.0), one row each, unknowns as NaN.

    Throughput columns are per second, dense (no sparsity): ``fp64_flops``, ``fp32_flops``,
    ``fp16_flops``, ``tf32_tensor_flops``, ``bf16_tensor_flops`` (tensor FP16/BF16), ``fp8_flops``,
    ``fp4_flops``, ``int8_ops`` and ``ml_ops`` (Epoch's headline "ML OP/s"; its precision varies by
    chip, so prefer a precision-specific column for comparisons). Also
    ``memory_gb`` (per board, 1e9 bytes), ``memory_bandwidth_bytes_per_s``,
    ``intranode_bandwidth_bytes_per_s``, ``internode_bandwidth_bits_per_s``, ``tdp_w``,
    ``release_date`` (datetime64, NaT when unknown), ``release_price_usd``, ``die_size_mm2``,
    ``process_nm``, ``transistors_millions``, and text ``name``, ``manufacturer``, ``type``, ``foundry``.
    """
    return _epoch(source_path("accelerators/epoch", path))


@cached_parse
def _epoch(p: Path) -> pd.DataFrame:
    df, src, _ = _table(p, _EPOCH, multiline=True)
    dup = pd.Series(df["name"]).duplicated().to_numpy()
    if dup.any():
        raise src.error(f"duplicate hardware name '{df['name'].iloc[int(np.argmax(dup))]}'",
                        int(np.argmax(dup)), "Hardware name")
    return df


_MLENERGY = [
    _Col("model", "model", "text", nan=False), _Col("task", "task", "text", nan=False),
    _Col("architecture", "architecture", "text"), _Col("gpu_model", "gpu_model", "text", nan=False),
    _Col("num_gpus", "num_gpus", "int", nan=False, lo=1),
    _Col("total_params_b", "total_params_billion"), _Col("activated_params_b", "activated_params_billion"),
    _Col("batch_size", "batch_size"), _Col("max_num_seqs", "max_num_seqs"),
    _Col("avg_batch_size", "avg_batch_size"), _Col("avg_output_len", "avg_output_tokens"),
    _Col("avg_power_watts", "avg_power_w", nan=False),
    _Col("energy_per_token_joules", "energy_per_token_j"),
    _Col("energy_per_request_joules", "energy_per_request_j"),
    _Col("energy_per_image_joules", "energy_per_image_j"),
    _Col("energy_per_video_joules", "energy_per_video_j"),
    _Col("output_throughput_tokens_per_sec", "output_tokens_per_s"),
    _Col("throughput_images_per_sec", "images_per_s"), _Col("throughput_videos_per_sec", "videos_per_s"),
    _Col("fps", "frames_per_s"), _Col("batch_latency_s", "batch_latency_s"),
    _Col("median_itl_ms", "median_itl_ms"), _Col("p90_itl_ms", "p90_itl_ms"),
    _Col("p95_itl_ms", "p95_itl_ms"), _Col("p99_itl_ms", "p99_itl_ms"),
    _Col("inference_steps", "inference_steps"), _Col("num_frames", "num_frames"),
    _Col("image_height", "image_height_px"), _Col("image_width", "image_width_px"),
    _Col("video_height", "video_height_px"), _Col("video_width", "video_width_px"),
]


def load_mlenergy(path: str | Path | None = None) -> pd.DataFrame:
    """ML.ENERGY Benchmark v3: 1,858 measured serving configurations on H100 and B200 (Apache-2.0).

    One row per (model, task, GPU, GPU count, batch setting). ``avg_power_w`` is the average GPU power
    of the whole configuration (all ``num_gpus`` GPUs); energies are per output token / request / image
    / video in joules; ITL = inter-token latency. Columns that do not apply to a task are NaN (LLM
    tasks have token metrics, diffusion tasks image/video metrics).
    """
    return _mlenergy(source_path("accelerators/mlenergy-v3", path))


@cached_parse
def _mlenergy(p: Path) -> pd.DataFrame:
    return _table(p, _MLENERGY)[0]


_SPLITWISE = [
    _Col("model", "model", "text", nan=False), _Col("hardware", "hardware", "text", nan=False),
    _Col("tensor_parallel", "tensor_parallel", "int", nan=False, lo=1),
    _Col("prompt_size", "prompt_tokens", "int", nan=False), _Col("batch_size", "batch_size", "int", nan=False, lo=1),
    _Col("token_size", "output_tokens", "int", nan=False),
    _Col("prompt_time", "prompt_time_ms", nan=False), _Col("token_time", "token_time_ms", nan=False),
    _Col("e2e_time", "e2e_time_ms", nan=False),
    _Col("peak_power", "peak_power_frac", nan=False, hi=2.0), _Col("average_power", "avg_power_frac", nan=False, hi=2.0),
]


def load_splitwise(path: str | Path | None = None) -> pd.DataFrame:
    """Splitwise performance model (Patel et al., ISCA 2024; MIT): llama2-70b and bloom-176b on A100/H100.

    Per (model, hardware, tensor_parallel, prompt_tokens, batch_size, output_tokens) measurement:
    ``prompt_time_ms`` (prefill), ``token_time_ms`` (per decode step), ``e2e_time_ms``; and
    ``peak_power_frac`` / ``avg_power_frac``, GPU power as a fraction of its power limit. The source
    writes 0 where power was not measured (all H100 rows, part of the A100 rows); those are NaN here and
    ``power_measured`` is False. ``h100-80gb-pcap`` is an H100 under a power cap. Repeated runs of the
    same configuration are separate rows.
    """
    return _splitwise(source_path("accelerators/splitwise", path))


@cached_parse
def _splitwise(p: Path) -> pd.DataFrame:
    df = _table(p, _SPLITWISE)[0]
    measured = (df["peak_power_frac"] > 0) | (df["avg_power_frac"] > 0)
    df[["peak_power_frac", "avg_power_frac"]] = df[["peak_power_frac", "avg_power_frac"]].where(measured)
    df["power_measured"] = measured.to_numpy()
    return df


_ZEUS = [
    _Col("gpu", "gpu", "text", nan=False), _Col("power_limit_W", "power_limit_w", nan=False),
    _Col("max_power_limit_W", "max_power_limit_w", nan=False), _Col("pl_frac", "power_limit_frac", nan=False, hi=1.0),
    _Col("n_configs", "n_configs", "int", nan=False),
    _Col("throughput_retained_median", "throughput_retained_median_frac", nan=False),
    _Col("throughput_retained_p10", "throughput_retained_p10_frac", nan=False),
    _Col("energy_ratio_median", "energy_ratio_median", nan=False),
    _Col("avg_power_ratio_median", "avg_power_ratio_median", nan=False),
]


def load_zeus_powercap(path: str | Path | None = None) -> pd.DataFrame:
    """Zeus power-limit sweep summary (You et al., NSDI 2023): V100, A40, RTX6000, P100 training.

    Per (gpu, power_limit_w): throughput retained versus the maximum limit (median and 10th percentile
    over ``n_configs`` training configurations, fractions) and median energy and average-power ratios
    versus the maximum limit (dimensionless; energy ratio < 1 means capping saves energy).
    """
    return _zeus(source_path("accelerators/zeus-powercap", path))


@cached_parse
def _zeus(p: Path) -> pd.DataFrame:
    return _table(p, _ZEUS)[0]


_MLPERF_INF = [
    _Col("round", "round", "text", nan=False), _Col("system", "system", "text", nan=False),
    _Col("gpu", "gpu", "text", nan=False), _Col("tdp_W", "tdp_w", nan=False),
    _Col("cap_frac", "cap_frac", hi=1.0), _Col("benchmark", "benchmark", "text", nan=False),
    _Col("scenario", "scenario", "text", nan=False), _Col("tokens_per_s", "tokens_per_s", nan=False),
    _Col("system_power_W", "system_power_w", nan=False), _Col("J_per_token_system", "system_j_per_token", nan=False),
    _Col("maxP_tokens_per_s", "maxp_tokens_per_s"),
    _Col("throughput_retained_vs_maxP", "throughput_retained_frac"), _Col("source", "source", "text"),
]
_LIMIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(\(assumed[^)]*\))?\s*$", re.IGNORECASE)


def load_mlperf_inference_powercap(path: str | Path | None = None) -> pd.DataFrame:
    """MLPerf Inference v4.0/v4.1 MaxQ (power-capped) results on 8x H100/H200 versus MaxP throughput.

    ``gpu_power_limit_w`` is NaN where the source says ``n/a``; ``power_limit_assumed`` is True where
    the source marks the limit as assumed. ``cap_frac`` = limit / ``tdp_w``; ``system_power_w`` and
    ``system_j_per_token`` are whole-system; ``throughput_retained_frac`` = MaxQ / MaxP tokens per s.
    """
    return _mlperf_inf(source_path("accelerators/mlperf-inference-powercap", path))


@cached_parse
def _mlperf_inf(p: Path) -> pd.DataFrame:
    df, src, raw = _table(p, [*_MLPERF_INF, _Col("gpu_power_limit_W", "_limit", "text")])
    limits, assumed = [], []
    for pos, cell in enumerate(df.pop("_limit")):
        if not isinstance(cell, str) or cell.strip().lower() == "n/a":
            limits.append(np.nan)
            assumed.append(False)
            continue
        m = _LIMIT.match(cell)
        if not m:
            raise src.error(f"cannot read power limit '{cell}' (expected watts, 'n/a' or 'N(assumed)')",
                            pos, "gpu_power_limit_W")
        limits.append(float(m.group(1)))
        assumed.append(m.group(2) is not None)
    df.insert(3, "gpu_power_limit_w", np.asarray(limits))
    df.insert(4, "power_limit_assumed", np.asarray(assumed, dtype=bool))
    return df


_MLPERF_TRAIN = [
    _Col("round", "round", "text", nan=False), _Col("id", "id", "text", nan=False),
    _Col("system", "system", "text", nan=False), _Col("accelerator", "accelerator", "text", nan=False),
    _Col("nodes", "nodes", "int", nan=False, lo=1), _Col("accelerators", "n_accelerators", "int", nan=False, lo=1),
    _Col("benchmark", "benchmark", "text", nan=False), _Col("energy_kJ", "energy_kj", nan=False),
    _Col("time_min", "time_min", nan=False), _Col("avg_power_kW", "avg_power_kw", nan=False),
    _Col("W_per_accel_all_in", "all_in_w_per_accelerator", nan=False),
    _Col("kW_per_8gpu_node", "kw_per_8gpu_node", nan=False), _Col("source", "source", "text"),
]


def load_mlperf_training_power(path: str | Path | None = None) -> pd.DataFrame:
    """MLPerf Training v4.0 measured all-in power of H100 systems (energy, time, average power).

    ``all_in_w_per_accelerator`` is the whole system's average power divided by its accelerators
    (about 960 W for GPT-3 on 512 H100s), ``kw_per_8gpu_node`` the same per 8-GPU node.
    """
    return _mlperf_train(source_path("accelerators/mlperf-training-power", path))


@cached_parse
def _mlperf_train(p: Path) -> pd.DataFrame:
    return _table(p, _MLPERF_TRAIN)[0]


_EMERALD = [
    _Col("Workload", "workload", "text", nan=False), _Col("GPU power cap", "gpu_power_cap_w", nan=False),
    _Col("throughput", "throughput", nan=False), _Col("total GPU power", "total_gpu_power_w", nan=False),
    _Col("normalized throughput", "throughput_frac", nan=False, hi=1.0),
    _Col("power per GPU", "power_per_gpu_w", nan=False),
]


def load_emerald_dvfs(path: str | Path | None = None) -> pd.DataFrame:
    """Emerald AI DVFS sweep (Colangelo et al., 2025): 8 AI workloads on A100 at GPU caps 100–400 W.

    Columns: ``workload`` (``ft_*`` fine-tuning, ``infer_*`` inference, ``pt_*`` pre-training),
    ``gpu_power_cap_w``, ``throughput`` (workload-specific rate as published; units not stated
    upstream), ``throughput_frac`` (throughput relative to the same workload at 400 W),
    ``total_gpu_power_w`` (all GPUs of the job), ``power_per_gpu_w`` and ``n_gpus``
    (= total / per-GPU power, rounded).
    """
    return _emerald(source_path("accelerators/emerald-dvfs", path))


@cached_parse
def _emerald(p: Path) -> pd.DataFrame:
    df = _table(p, _EMERALD)[0]
    df["n_gpus"] = np.round(df["total_gpu_power_w"] / df["power_per_gpu_w"]).astype("int64")
    return df
