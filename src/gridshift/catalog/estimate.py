"""Roofline estimates of throughput on accelerator types nobody measured, calibrated on those measured.

Model. A job type does some (unknown) work per step: ``W`` FLOP and ``Q`` bytes of memory traffic. On an
accelerator with peak ``F`` FLOP/s (catalog ``peak_bf16_tflops``) and memory bandwidth ``B`` bytes/s
(catalog ``hbm_tb_per_s``) a step takes about::

    t = ((W / F)^p + (Q / B)^p)^(1/p)

the classical roofline ``max(W/F, Q/B)`` smoothed (``p -> inf`` is the max, ``p = 1`` adds the two times as
if nothing overlapped). Achieved efficiency is folded into ``W`` and ``Q`` ("effective" FLOP and bytes, i.e.
true work / efficiency), assumed the same on every type. ``t^p`` is linear in ``(W^p, Q^p)``, so a fit on
measured types is a non-negative least-squares problem; it is then refined by least squares on
``log t`` (relative error), see :func:`fit_roofline`. With two measured types the two parameters
interpolate them; at least two are needed.

Catalog caveat: K80 and P100 have no tensor cores and no BF16. Their ``peak_bf16_tflops`` is a stand-in
(K80: its FP32 rate; P100: its FP16 rate), so their "F" is a lower bound on what older frameworks actually
ran at (FP32 on P100 is half of the stand-in). The fit absorbs part of this into ``W``, but a systematic
per-generation efficiency difference is exactly what this model cannot represent: see the cross-validation.

Multi-GPU. Throughput at ``g`` GPUs on a new type = its 1-GPU estimate x the job's measured scaling
``steps(ref, g) / steps(ref, 1)`` on a reference type that measured both (the measured type closest in peak
FLOP/s, unless given).

First-order rule. With a single term the roofline is a hardware ratio: a compute-bound job's throughput
scales with peak FLOP/s (``"flop-ratio"``), a memory-bound one's with memory bandwidth
(``"bandwidth-ratio"``). :func:`relative_throughput` applies that rule by job kind (``pre-training`` and
``fine-tuning`` compute-bound; ``batch-inference``, whose decode streams the weights and KV cache through
HBM, memory-bound); it is what the fleet simulator uses for a job that gives no speed for a type, and
what :func:`extend` falls back to for a job measured on one type only. It ignores achieved versus peak
utilisation, FP8, memory fit, interconnect and prefill/decode mixes; older GPUs without tensor cores (K80,
P100) carry a non-tensor stand-in for ``peak_bf16_tflops``, so their compute-bound ratios are far too low.

Error. :func:`cross_validate` holds out one measured type at a time, fits on the others and predicts it;
it reports MAPE and the median absolute log error per held-out type and pooled, for the roofline and for
the two one-parameter ratios as baselines (the first-order rule's FLOP/s ratio and bandwidth ratio),
both scaled from the same training types. :func:`cv_frame` gives the
same numbers as a DataFrame. Measured figures are in docs/guide/heterogeneity.md.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
import pandas as pd

from gridshift.catalog.throughput import ThroughputTable
from gridshift.errors import CatalogError
from gridshift.model.accelerator import AcceleratorType
from gridshift.model.workload import JobKind

__all__ = [
    "BASELINES",
    "COMPUTE_BOUND_KINDS",
    "MEMORY_BOUND_KINDS",
    "METHODS",
    "P_DEFAULT",
    "RooflineFit",
    "cross_validate",
    "cv_frame",
    "cv_predictions",
    "extend",
    "fit_roofline",
    "fit_table",
    "hardware_features",
    "hardware_ratio",
    "relative_throughput",
    "roofline_steps_per_s",
]

#: Smoothness of the roofline's max (see the module docstring); chosen by the p sweep in
#: docs/guide/heterogeneity.md (the CV figures there are therefore slightly optimistic for this p).
P_DEFAULT = 2.0

BASELINES = ("flop-ratio", "bandwidth-ratio")
METHODS = ("roofline", *BASELINES)

COMPUTE_BOUND_KINDS: frozenset[str] = frozenset({JobKind.PRE_TRAINING.value, JobKind.FINE_TUNING.value})
MEMORY_BOUND_KINDS: frozenset[str] = frozenset({JobKind.BATCH_INFERENCE.value})


# --------------------------------------------------------------------------------------------- model


def roofline_steps_per_s(flop_per_step: float | np.ndarray, bytes_per_step: float | np.ndarray,
                         peak_tflops: float | np.ndarray, hbm_tb_per_s: float | np.ndarray,
                         p: float = P_DEFAULT) -> np.ndarray:
    """Steps per second of a job doing ``flop_per_step`` effective FLOP and ``bytes_per_step`` effective
    bytes per step on hardware with the given peak TFLOP/s and TB/s (broadcasts)."""
    _check_p(p)
    tc = np.asarray(flop_per_step, dtype=float) / (np.asarray(peak_tflops, dtype=float) * 1e12)
    tm = np.asarray(bytes_per_step, dtype=float) / (np.asarray(hbm_tb_per_s, dtype=float) * 1e12)
    if math.isinf(p):
        t = np.maximum(tc, tm)
    else:
        hi = np.maximum(tc, tm)  # scale before the power to avoid under/overflow
        safe = np.where(hi > 0, hi, 1.0)
        t = np.where(hi > 0, safe * ((tc / safe) ** p + (tm / safe) ** p) ** (1.0 / p), 0.0)
    with np.errstate(divide="ignore"):
        return np.where(t > 0, 1.0 / np.where(t > 0, t, 1.0), np.inf)


def _check_p(p: float) -> None:
    if not (isinstance(p, int | float) and p >= 1):
        raise ValueError(f"p must be a number >= 1 (or inf), got {p!r}")


def hardware_ratio(method: str, peak_tflops, hbm_tb_per_s, ref_peak_tflops, ref_hbm_tb_per_s):
    """Throughput on the target over the reference by a one-term roofline (broadcasts): the peak FLOP/s
    ratio for ``"flop-ratio"`` (compute-bound), the memory-bandwidth ratio for ``"bandwidth-ratio"``."""
    return peak_tflops / ref_peak_tflops if method == "flop-ratio" else hbm_tb_per_s / ref_hbm_tb_per_s


def relative_throughput(acc: AcceleratorType, reference: AcceleratorType, kind: str | JobKind) -> float:
    """Throughput of ``acc`` for a job of ``kind`` relative to ``reference`` (1.0 = same speed).

    The first-order rule (see the module docstring): peak BF16 FLOP/s ratio for compute-bound kinds, HBM
    bandwidth ratio for ``batch-inference``.
    """
    k = kind.value if isinstance(kind, Enum) else str(kind)
    k = k.strip().lower().replace("_", "-")
    if k in COMPUTE_BOUND_KINDS:
        method = "flop-ratio"
    elif k in MEMORY_BOUND_KINDS:
        method = "bandwidth-ratio"
    else:
        known = sorted(COMPUTE_BOUND_KINDS | MEMORY_BOUND_KINDS)
        raise CatalogError(f"unknown job kind {kind!r}; expected one of {', '.join(known)}", field="kind")
    return hardware_ratio(method, acc.peak_bf16_tflops, acc.hbm_tb_per_s, reference.peak_bf16_tflops,
                          reference.hbm_tb_per_s)


@dataclass(frozen=True)
class RooflineFit:
    """A job type's fitted effective work per step (true work / achieved efficiency)."""

    flop_per_step: float
    bytes_per_step: float
    p: float
    fitted_on: tuple[str, ...]
    gang: int = 1
    log_rmse: float = 0.0  # RMS of log(predicted / measured) over the fitted points

    def steps_per_s(self, peak_tflops: float | np.ndarray, hbm_tb_per_s: float | np.ndarray) -> np.ndarray:
        return roofline_steps_per_s(self.flop_per_step, self.bytes_per_step, peak_tflops, hbm_tb_per_s, self.p)


def fit_roofline(steps_per_s: Sequence[float], peak_tflops: Sequence[float], hbm_tb_per_s: Sequence[float],
                 *, p: float = P_DEFAULT) -> tuple[float, float]:
    """Effective ``(flop_per_step, bytes_per_step)`` fitting measured ``steps_per_s`` on types with the
    given peak TFLOP/s and TB/s (at least two types, all throughputs > 0).

    Step 1, non-negative least squares on ``t^p = a F^-p + b B^-p`` with each row divided by ``t^p``
    (relative error; exact when the data follow the model). Step 2, bounded least squares on the
    log-time residuals, started from step 1. ``p`` must be finite here.
    """
    from scipy.optimize import least_squares, nnls

    _check_p(p)
    if math.isinf(p):
        raise ValueError("fit_roofline needs a finite p (use a large one, e.g. 16, to approach the max)")
    y = np.asarray(steps_per_s, dtype=float)
    f = np.asarray(peak_tflops, dtype=float)
    b = np.asarray(hbm_tb_per_s, dtype=float)
    if y.ndim != 1 or not (len(y) == len(f) == len(b)) or len(y) < 2:
        raise ValueError("need matching 1-D arrays with at least two measured types")
    if np.any(~np.isfinite(y)) or np.any(y <= 0) or np.any(f <= 0) or np.any(b <= 0):
        raise ValueError("throughputs and hardware figures must be finite and > 0")
    # Work in normalised units: u = (W/1e12)/c, v = (Q/1e12)/c with c the largest measured step time, so
    # every term is O(1) before raising to p.
    t = 1.0 / y
    c = float(t.max())
    tn = t / c
    A = np.stack([f ** -p, b ** -p], axis=1)
    scale = A.max(axis=0)
    An = A / scale
    w = tn ** -p
    x, _ = nnls(An * w[:, None], tn ** p * w)
    x = x / scale  # = (u^p, v^p)

    def resid(z: np.ndarray) -> np.ndarray:
        return np.log(np.maximum(A @ z, 1e-300)) / p - np.log(tn)

    if np.all(x == 0):
        x = np.array([np.mean(tn ** p / A[:, 0]), 0.0])
    xs = np.where(x > 0, x, x.max())
    sol = least_squares(resid, x, bounds=(0.0, np.inf), x_scale=xs, xtol=1e-15, ftol=1e-15, gtol=1e-15)
    z = sol.x if np.sum(resid(sol.x) ** 2) <= np.sum(resid(x) ** 2) else x
    u, v = z ** (1.0 / p)
    return float(u * c * 1e12), float(v * c * 1e12)


# --------------------------------------------------------------------------------------------- hardware


def hardware_features(names: Iterable[str], catalog: Mapping[str, AcceleratorType] | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """``(peak_bf16_tflops, hbm_tb_per_s)`` arrays for accelerator names (aliases accepted)."""
    from gridshift.catalog.accelerators import get_accelerator, load_catalog

    cat = load_catalog() if catalog is None else catalog
    accs = [get_accelerator(n, cat) for n in names]
    return (np.array([a.peak_bf16_tflops for a in accs], dtype=float),
            np.array([a.hbm_tb_per_s for a in accs], dtype=float))


def _nearest(target_tflops: float, candidates: Sequence[tuple[str, float]]) -> str | None:
    """Candidate name closest in log peak FLOP/s (ties: the first)."""
    if not candidates:
        return None
    return min(candidates, key=lambda c: abs(math.log(c[1] / target_tflops)))[0]


# --------------------------------------------------------------------------------------------- fitting


def _measured_points(table: ThroughputTable, job: str, gang: int, types: Sequence[str] | None = None
                     ) -> list[tuple[str, float]]:
    """(type, steps_per_s) of measured entries > 0 for one job at one gang size."""
    accs = list(table.acc_types) if types is None else list(types)
    thr = table.matrix([job], accs, gang)[0]
    meas = table.measured_matrix([job], accs, gang)[0]
    return [(a, float(v)) for a, v, m in zip(accs, thr, meas, strict=True) if m and v > 0]


def _base_gang(table: ThroughputTable, job: str) -> int | None:
    """The gang size with the most measured types for ``job`` (ties: the smallest)."""
    best, n_best = None, 0
    for g in table.gang_axis:
        n = len(_measured_points(table, job, int(g)))
        if n > n_best:
            best, n_best = int(g), n
    return best


def fit_table(table: ThroughputTable, catalog: Mapping[str, AcceleratorType] | None = None, *,
              p: float = P_DEFAULT, gang: int | None = None, types: Sequence[str] | None = None
              ) -> dict[str, RooflineFit]:
    """Roofline fit per job type on its measured entries at ``gang`` (default: the gang size with the
    most measured types), using only ``types`` if given. Jobs with fewer than two points are left out."""
    out: dict[str, RooflineFit] = {}
    for job in table.job_types:
        g = _base_gang(table, job) if gang is None else gang
        if g is None:
            continue
        pts = _measured_points(table, job, g, types)
        if len(pts) < 2:
            continue
        names = [a for a, _ in pts]
        f, b = hardware_features(names, catalog)
        y = np.array([v for _, v in pts])
        w, q = fit_roofline(y, f, b, p=p)
        pred = roofline_steps_per_s(w, q, f, b, p)
        out[job] = RooflineFit(w, q, p, tuple(names), g, float(np.sqrt(np.mean(np.log(pred / y) ** 2))))
    return out


def _predict_base(method: str, pts: Sequence[tuple[str, float]], f_tr: np.ndarray, b_tr: np.ndarray,
                  f_h: float, b_h: float, p: float) -> float:
    y = np.array([v for _, v in pts])
    if method == "roofline":
        w, q = fit_roofline(y, f_tr, b_tr, p=p)
        return float(roofline_steps_per_s(w, q, f_h, b_h, p))
    ratio = hardware_ratio(method, f_h, b_h, f_tr, b_tr)
    return float(np.exp(np.mean(np.log(y * ratio))))  # log-space LS for one scale factor = geometric mean


# --------------------------------------------------------------------------------------------- extend


def extend(table: ThroughputTable, catalog_types: Iterable[str | AcceleratorType] | None = None,
           catalog: Mapping[str, AcceleratorType] | None = None, *, p: float = P_DEFAULT,
           reference: str | None = None, method: str = "roofline") -> ThroughputTable:
    """A copy of ``table`` with missing (job type, accelerator type) entries filled by estimates
    (``measured=False``) for ``catalog_types`` (default: every catalog type).

    Per job type: fit the roofline on its measured entries at the gang size with the most measured types
    (1 GPU for Gavel) and predict each new type there; at other gang sizes the job has, scale by the
    measured ratio on ``reference`` (default: per target, the measured type closest in peak FLOP/s that
    has both sizes). With a single measured type the catalog's first-order rule
    (:func:`relative_throughput`, by the job's kind) is used instead. Existing
    entries are kept as they are; memory fit is not checked (the table's jobs carry no memory needs).

    ``method`` = ``"flop-ratio"`` or ``"bandwidth-ratio"`` uses that one-parameter baseline instead of the
    roofline (geometric mean over the measured types of measured x hardware ratio); the cross-validation
    in docs/guide/heterogeneity.md shows the bandwidth ratio extrapolates to a faster type better than the
    roofline on Gavel's data.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    from gridshift.catalog.accelerators import get_accelerator, load_catalog

    cat = load_catalog() if catalog is None else catalog
    if catalog_types is None:
        targets = list(cat.values())
    else:
        targets = [t if isinstance(t, AcceleratorType) else get_accelerator(t, cat) for t in catalog_types]
    known = {t.name: t for t in targets}
    for a in table.acc_types:  # the table's own types, for features of the training points
        if a not in known:
            try:
                known[a] = get_accelerator(a, cat)
            except CatalogError:
                pass
    recs: list[dict[str, Any]] = []
    for job in table.job_types:
        base = _base_gang(table, job)
        if base is None:
            continue
        pts = [(a, v) for a, v in _measured_points(table, job, base) if a in known]
        if not pts:
            continue
        names = [a for a, _ in pts]
        f_tr = np.array([known[a].peak_bf16_tflops for a in names])
        b_tr = np.array([known[a].hbm_tb_per_s for a in names])
        y = np.array([v for _, v in pts])
        if len(pts) >= 2 and method == "roofline":
            w, q = fit_roofline(y, f_tr, b_tr, p=p)
            how = (f"roofline (p={p:g}) fitted on measured {', '.join(names)} at {base} GPU(s): "
                   f"effective {w:.4g} FLOP and {q:.4g} B per step")
        elif len(pts) >= 2:
            how = f"{method} from measured {', '.join(names)} at {base} GPU(s) (geometric mean)"
        ji = table.job_index(job)[0]
        sizes = [int(g) for g in table.gang_axis[np.any(table.present[ji], axis=1)]]
        for t in targets:
            if t.name in table.acc_types and table.entry(job, t.name, base) is not None:
                continue
            if len(pts) >= 2 and method == "roofline":
                est1 = float(roofline_steps_per_s(w, q, t.peak_bf16_tflops, t.hbm_tb_per_s, p))
            elif len(pts) >= 2:
                est1 = _predict_base(method, pts, f_tr, b_tr, t.peak_bf16_tflops, t.hbm_tb_per_s, p)
            else:
                kind = table.kind(job) or "pre-training"
                est1 = y[0] * relative_throughput(t, known[names[0]], kind)
                how = (f"catalog first-order rule ({kind}) from measured {names[0]} at {base} GPU(s) "
                       "(only one measured type)")
            for g in sizes:
                if t.name in table.acc_types and table.entry(job, t.name, g) is not None:
                    continue
                if g == base:
                    val, src = est1, f"estimated: {how}"
                else:
                    ref = reference
                    cands = []
                    for a in table.acc_types:
                        ag, a1 = table.get(job, a, g), table.get(job, a, base)
                        if ag > 0 and a1 > 0 and table.is_measured(job, a, g) and a in known:
                            cands.append((a, known[a].peak_bf16_tflops))
                    if ref is None:
                        ref = _nearest(t.peak_bf16_tflops, cands)
                    if ref is None or ref not in [c[0] for c in cands]:
                        continue
                    val = est1 * table.get(job, ref, g) / table.get(job, ref, base)
                    src = f"estimated: {how}; x measured {g}/{base}-GPU scaling on {ref}"
                recs.append({"job_type": job, "accelerator": t.name, "gang": g, "steps_per_s": val,
                             "measured": False, "source": src})
    return table.with_entries(recs, board_power_w={t.name: t.board_power_w for t in targets},
                              host_power_w={t.name: t.host_power_w for t in targets})


# --------------------------------------------------------------------------------------------- CV


def cv_predictions(table: ThroughputTable, catalog: Mapping[str, AcceleratorType] | None = None, *,
                   p: float = P_DEFAULT, methods: Sequence[str] = METHODS) -> pd.DataFrame:
    """Leave-one-accelerator-type-out predictions, one row per (method, held-out type, job, gang size).

    For each measured type h: every job measured (> 0) on h and on at least two other types at 1 GPU is
    fitted on those others (each method) and predicted on h at 1 GPU; at g > 1 GPUs the 1-GPU prediction is
    scaled by the job's measured g/1 ratio on the training type closest to h in peak FLOP/s. Entries
    measured as 0 (the job did not run) are not throughput measurements and are skipped.
    Columns: method, held_out, job_type, gang, reference, measured_steps_per_s, predicted_steps_per_s,
    log_err (= ln(predicted / measured)).
    """
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"unknown method {m!r}; expected one of {', '.join(METHODS)}")
    base = 1
    measured_types = [a for a in table.acc_types
                      if np.any(table.measured_matrix(list(table.job_types), [a], base)
                                & (table.matrix(list(table.job_types), [a], base) > 0))]
    f_all, b_all = hardware_features(measured_types, catalog)
    feat = {a: (f, b) for a, f, b in zip(measured_types, f_all, b_all, strict=True)}
    rows = []
    for h in measured_types:
        train = [a for a in measured_types if a != h]
        f_h, b_h = feat[h]
        for job in table.job_types:
            m1 = table.get(job, h, base)
            if not (m1 > 0 and table.is_measured(job, h, base)):
                continue
            pts = _measured_points(table, job, base, train)
            if len(pts) < 2:
                continue
            names = [a for a, _ in pts]
            f_tr = np.array([feat[a][0] for a in names])
            b_tr = np.array([feat[a][1] for a in names])
            preds = {m: _predict_base(m, pts, f_tr, b_tr, f_h, b_h, p) for m in methods}
            for g in (int(x) for x in table.gang_axis):
                mg = table.get(job, h, g)
                if not (mg > 0 and table.is_measured(job, h, g)):
                    continue
                if g == base:
                    ref, scale = None, 1.0
                else:
                    cands = [(a, feat[a][0]) for a in names
                             if table.get(job, a, g) > 0 and table.is_measured(job, a, g)]
                    ref = _nearest(f_h, cands)
                    if ref is None:
                        continue
                    scale = table.get(job, ref, g) / table.get(job, ref, base)
                for m in methods:
                    pred = preds[m] * scale
                    rows.append({"method": m, "held_out": h, "job_type": job, "gang": g, "reference": ref,
                                 "measured_steps_per_s": mg, "predicted_steps_per_s": pred,
                                 "log_err": math.log(pred / mg)})
    return pd.DataFrame(rows, columns=["method", "held_out", "job_type", "gang", "reference",
                                       "measured_steps_per_s", "predicted_steps_per_s", "log_err"])


def _scores(df: pd.DataFrame) -> dict[str, float]:
    rel = np.abs(df["predicted_steps_per_s"] / df["measured_steps_per_s"] - 1.0)
    return {"n": len(df), "mape_pct": float(100 * rel.mean()),
            "median_abs_log_err": float(np.median(np.abs(df["log_err"]))),
            "median_ratio": float(np.exp(np.median(df["log_err"])))}


SCOPES = (("1 GPU", lambda d: d[d["gang"] == 1]), ("all gang sizes", lambda d: d))


def cross_validate(table: ThroughputTable, catalog: Mapping[str, AcceleratorType] | None = None, *,
                   p: float = P_DEFAULT, methods: Sequence[str] = METHODS) -> dict[str, Any]:
    """Leave-one-accelerator-type-out error of the roofline and the baselines (see :func:`cv_predictions`).

    Returns ``{method: {scope: {held-out type or "overall": {"n", "mape_pct", "median_abs_log_err",
    "median_ratio"}}}}`` with scopes ``"1 GPU"`` and ``"all gang sizes"``; "overall" pools every
    held-out prediction. ``median_ratio`` = exp(median log error): > 1 means the method over-predicts.
    Also ``"p"`` and ``"predictions"`` (the DataFrame).
    """
    pred = cv_predictions(table, catalog, p=p, methods=methods)
    out: dict[str, Any] = {"p": p, "predictions": pred}
    for m in methods:
        d = pred[pred["method"] == m]
        out[m] = {}
        for scope, sel in SCOPES:
            ds = sel(d)
            res = {h: _scores(g) for h, g in ds.groupby("held_out", sort=False)}
            res["overall"] = _scores(ds)
            out[m][scope] = res
    return out


def cv_frame(table: ThroughputTable, catalog: Mapping[str, AcceleratorType] | None = None, *,
             p: float = P_DEFAULT, methods: Sequence[str] = METHODS) -> pd.DataFrame:
    """:func:`cross_validate` as a DataFrame: one row per (scope, held-out type, method)."""
    res = cross_validate(table, catalog, p=p, methods=methods)
    rows = []
    for m in methods:
        for scope, by in res[m].items():
            for h, s in by.items():
                rows.append({"scope": scope, "held_out": h, "method": m, **s})
    df = pd.DataFrame(rows, columns=["scope", "held_out", "method", "n", "mape_pct", "median_abs_log_err",
                                     "median_ratio"])
    order = {h: i for i, h in enumerate([*table.acc_types, "overall"])}
    df["_o"] = df["held_out"].map(order)
    df["_m"] = df["method"].map({m: i for i, m in enumerate(methods)})
    df["_s"] = df["scope"].map({s: i for i, (s, _) in enumerate(SCOPES)})
    return df.sort_values(["_s", "_o", "_m"]).drop(columns=["_o", "_m", "_s"]).reset_index(drop=True)
