"""Batch jobs as a :class:`~gridshift.model.workload.JobTable`: drawn from a real trace, or converted from
jobs written inline in a scenario.

Pure functions: arrays in, tables out, no file I/O (``gridshift.workloads.build`` loads the traces).

How a trace becomes jobs (:func:`generate_jobs`), and the assumptions behind it:

* **Arrivals** — ``spec.count`` *consecutive* trace rows starting at a random index (wrapping around to
  the start of the trace, shifted by one trace period, when the window runs past the end). Their
  arrival times are mapped linearly onto ``[0, duration_s)``: the first job arrives at 0 and the span is
  padded by one mean inter-arrival gap so the last job arrives before ``duration_s``. A linear map keeps
  the *relative* spacing of the trace — its bursts and its diurnal/weekly pattern — but stretches or
  compresses its time axis (a 3-day window put into a 7-day scenario has 56-hour "days"). With
  ``spec.window`` larger than the count, the jobs are a random ``spec.count`` (without replacement) of the
  ``spec.window`` jobs drawn as below (thinning): runs at any count share one arrival pattern and one job
  population, so a run at a tenth of the jobs is a tenth of the same jobs.
* **Lengths** — run time on the reference accelerator at the job's full gang, hours: the trace's own
  ``length`` of the same rows, or (``length_pool_h``, e.g. Philly run times) drawn at random from the
  pool; clipped to ``[1 minute, spec.max_length_h]`` and multiplied by ``spec.load_scale``.
* **Kinds** — counts drawn by ``spec.kind_mix`` (multinomial), then dealt out by a *noisy* length rank:
  jobs are ordered by ``log(length) + N(0, (0.5·sd(log length))²)`` and the longest get pre-training,
  then fine-tuning, then batch inference. Long jobs are therefore mostly pre-training, short ones mostly
  batch inference, with overlap.
* **Gangs** — sizes drawn from ``spec.gang_sizes`` (weights ``spec.gang_size_weights``, default ∝ 1/size),
  dealt out by a noisy kind rank (pre-training > fine-tuning > batch inference, noise sd 0.6 ranks), so
  pre-training gets the largest gangs. Pre-training is a rigid gang (``gang_min = gang_max``); interruptible
  fine-tuning and batch inference are elastic down to half (``gang_min = max(1, gang_max // 2)``); a job
  that cannot be interrupted cannot be resized either, so it is rigid.
* **Work** — ``work_acc_h = length_h × gang_max`` (reference type at full gang).
* **Deadlines** — ``arrival + length × (1 + slack)``, slack ~ U(``spec.deadline_slack_frac``); a
  ``spec.no_deadline_frac`` share (or every job, if the slack range is infinite) has none (``inf``).
* **Interruptible** — pre-training (it checkpoints) and batch inference always; fine-tuning with the
  probability that makes the expected share of all jobs ``spec.interruptible_frac`` (clipped to [0, 1], so
  the share cannot fall below the pre-training + batch-inference share). Only interruptible jobs migrate.
* **Overheads, data to move** — per-kind assumptions in :data:`KIND_DEFAULTS`.
* **Tenants** uniform over ``spec.tenants``; priority 1 for a :data:`HIGH_PRIORITY_FRAC` share, else 0.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np

from gridshift.model.scenario import JobGenerator
from gridshift.model.time import S_PER_H, as_utc
from gridshift.model.workload import JOB_KINDS, Job, JobKind, JobTable

# Per-kind assumptions (not measured): time lost writing a checkpoint at pause and reloading it at resume
# (seconds), and the data moved when a job changes site (GB: checkpoint with optimizer state for
# pre-training, weights + adapter/data for fine-tuning, inputs/outputs for batch inference).
KIND_DEFAULTS: dict[JobKind, dict[str, float]] = {
    JobKind.PRE_TRAINING: {"checkpoint_overhead_s": 300.0, "restart_overhead_s": 600.0, "data_move_gb": 500.0},
    JobKind.FINE_TUNING: {"checkpoint_overhead_s": 60.0, "restart_overhead_s": 120.0, "data_move_gb": 50.0},
    JobKind.BATCH_INFERENCE: {"checkpoint_overhead_s": 10.0, "restart_overhead_s": 30.0, "data_move_gb": 20.0},
}
HIGH_PRIORITY_FRAC = 0.05  # share of generated jobs with priority 1 (assumption)
MIN_LENGTH_H = 1.0 / 60.0  # shortest job, hours
_LENGTH_ORDER = (JobKind.PRE_TRAINING, JobKind.FINE_TUNING, JobKind.BATCH_INFERENCE)  # longest first
_KIND_NOISE_FRAC = 0.5  # noise of the kind-by-length deal, as a fraction of sd(log length)
_GANG_NOISE_RANKS = 0.6  # noise of the gang-by-kind deal, in kind ranks


def _kind_column(name: str) -> np.ndarray:
    """Per-kind default ``name`` as an array indexed like JOB_KINDS."""
    return np.array([KIND_DEFAULTS[k][name] for k in JOB_KINDS], dtype=np.float64)


def _window(arrivals_h: np.ndarray, count: int, start: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices and unwrapped arrival times (h) of ``count`` consecutive rows from ``start``."""
    n = arrivals_h.shape[0]
    pos = start + np.arange(count, dtype=np.int64)
    idx = pos % n
    lap = pos // n
    gaps = np.diff(arrivals_h)
    mean_gap = float(gaps.mean()) if n > 1 else 1.0
    period = float(arrivals_h.max() - arrivals_h.min()) + max(mean_gap, 0.0)
    return idx, arrivals_h[idx] + lap * period


def _rescale(t_h: np.ndarray, duration_s: float) -> np.ndarray:
    """Map times linearly onto [0, duration_s): first at 0, last one mean gap before the end."""
    n = t_h.shape[0]
    t = np.sort(t_h - t_h.min())
    span = float(t[-1]) if n else 0.0
    if n < 2 or span <= 0:
        return np.zeros(n)
    out = t / (span * n / (n - 1)) * duration_s
    return np.minimum(out, np.nextafter(duration_s, 0.0))


def _deal(n: int, values_sorted_desc: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Give the largest values to the highest scores: out[j] for job j."""
    out = np.empty(n, dtype=values_sorted_desc.dtype)
    out[np.argsort(-score, kind="stable")] = values_sorted_desc
    return out


def generate_jobs(
    spec: JobGenerator,
    *,
    arrivals_h: np.ndarray,
    lengths_h: np.ndarray,
    duration_s: float,
    type_names: tuple[str, ...],
    speed_by_kind: np.ndarray,
    rng: np.random.Generator,
    length_pool_h: np.ndarray | None = None,
) -> JobTable:
    """Draw ``spec.count`` jobs from a trace (see the module docstring for the method).

    ``arrivals_h``/``lengths_h``: the trace's arrival times and run times, hours (same length).
    ``duration_s``: scenario length, seconds. ``speed_by_kind[k, t]``: throughput of kind ``JOB_KINDS[k]`` on
    ``type_names[t]`` relative to the reference type. ``length_pool_h``: optional run times (hours) to draw
    lengths from instead of the trace's; non-positive and non-finite entries are dropped.
    Vectorised: 100k jobs take well under a second.
    """
    arrivals_h = np.asarray(arrivals_h, dtype=np.float64)
    lengths_h = np.asarray(lengths_h, dtype=np.float64)
    speed_by_kind = np.asarray(speed_by_kind, dtype=np.float64)
    n_trace, n = arrivals_h.shape[0], int(spec.count)
    if n_trace == 0 or lengths_h.shape != arrivals_h.shape:
        raise ValueError("trace must have at least one row and as many lengths as arrivals")
    if not (np.all(np.isfinite(arrivals_h)) and np.all(np.isfinite(lengths_h))):
        raise ValueError("trace arrivals and lengths must be finite")
    if not (duration_s > 0 and np.isfinite(duration_s)):
        raise ValueError(f"duration_s must be a finite number > 0, got {duration_s}")
    if speed_by_kind.shape != (len(JOB_KINDS), len(type_names)):
        raise ValueError(f"speed_by_kind has shape {speed_by_kind.shape}, expected {(len(JOB_KINDS), len(type_names))}")

    # Arrivals: a consecutive window of the trace, rescaled onto the scenario.
    order = np.argsort(arrivals_h, kind="stable")
    arrivals_h, lengths_h = arrivals_h[order], lengths_h[order]
    if spec.window is not None and spec.window > n:
        # thinning: a random n of the jobs the whole window gives (the same jobs, times, kinds, gangs, deadlines)
        whole = generate_jobs(spec.model_copy(update={"count": int(spec.window), "window": None}),
                              arrivals_h=arrivals_h, lengths_h=lengths_h, duration_s=duration_s,
                              type_names=type_names, speed_by_kind=speed_by_kind, rng=rng,
                              length_pool_h=length_pool_h)
        return whole.take(np.sort(rng.choice(int(spec.window), size=n, replace=False)))
    idx, t_h = _window(arrivals_h, n, int(rng.integers(0, n_trace)))
    t_order = np.argsort(t_h, kind="stable")
    idx, t_h = idx[t_order], t_h[t_order]
    arrival_s = _rescale(t_h, float(duration_s))

    # Lengths, hours.
    if length_pool_h is not None:
        pool = np.asarray(length_pool_h, dtype=np.float64)
        pool = pool[np.isfinite(pool) & (pool > 0)]
        if pool.size == 0:
            raise ValueError("length pool has no positive run times")
        length_h = rng.choice(pool, size=n)
    else:
        length_h = lengths_h[idx]
    length_h = np.clip(length_h, MIN_LENGTH_H, max(spec.max_length_h, MIN_LENGTH_H)) * spec.load_scale

    # Kinds: multinomial counts, dealt by noisy length rank (longest -> pre-training).
    mix = np.array([max(float(spec.kind_mix.get(k, 0.0)), 0.0) for k in _LENGTH_ORDER])
    counts = rng.multinomial(n, mix / mix.sum())
    kinds_desc = np.repeat(np.array([JOB_KINDS.index(k) for k in _LENGTH_ORDER], dtype=np.int8), counts)
    log_len = np.log(length_h)
    sd = float(log_len.std()) if n > 1 else 0.0
    kind = _deal(n, kinds_desc, log_len + rng.normal(0.0, _KIND_NOISE_FRAC * sd + 1e-9, n))

    # Gang sizes: drawn by weight, dealt by noisy kind rank (pre-training -> largest).
    sizes = np.asarray(spec.gang_sizes, dtype=np.int64)
    w = np.asarray(spec.gang_size_weights, dtype=np.float64) if spec.gang_size_weights is not None else 1.0 / sizes
    if w.sum() <= 0 or np.any(w < 0):
        raise ValueError("gang_size_weights must be >= 0 with a positive sum")
    gangs_desc = np.sort(rng.choice(sizes, size=n, p=w / w.sum()))[::-1].astype(np.int32)
    rank_of_kind = np.array([len(_LENGTH_ORDER) - 1 - _LENGTH_ORDER.index(k) for k in JOB_KINDS], dtype=np.float64)
    gang_max = _deal(n, gangs_desc, rank_of_kind[kind] + rng.normal(0.0, _GANG_NOISE_RANKS, n))

    # Interruptible: pre-training and batch inference always; fine-tuning tops up to the target share.
    is_pt = kind == JOB_KINDS.index(JobKind.PRE_TRAINING)
    is_ft = kind == JOB_KINDS.index(JobKind.FINE_TUNING)
    n_ft = int(is_ft.sum())
    p_ft = float(np.clip((spec.interruptible_frac * n - (n - n_ft)) / n_ft, 0.0, 1.0)) if n_ft else 0.0
    interruptible = ~is_ft | (rng.random(n) < p_ft)
    gang_min = np.where(is_pt | ~interruptible, gang_max, np.maximum(1, gang_max // 2)).astype(np.int32)

    # Deadlines, seconds since start.
    lo, hi = spec.deadline_slack_frac
    if np.isfinite(hi):
        slack = rng.uniform(lo, hi, n)
        deadline_s = arrival_s + length_h * S_PER_H * (1.0 + slack)
        deadline_s[rng.random(n) < spec.no_deadline_frac] = np.inf
        deadline_s = np.maximum(deadline_s, np.nextafter(arrival_s, np.inf))
    else:
        deadline_s = np.full(n, np.inf)

    tenants = np.asarray(spec.tenants, dtype=object)
    tenant = tenants[rng.integers(0, tenants.size, n)]
    priority = (rng.random(n) < HIGH_PRIORITY_FRAC).astype(np.int32)
    tiers, tier_w = zip(*sorted(spec.tier_mix.items()))
    tier = rng.choice(np.asarray(tiers, np.int8), size=n, p=np.asarray(tier_w) / sum(tier_w)) if len(tiers) > 1 \
        else np.full(n, tiers[0], np.int8)
    short = spec.trace.split("/")[-1].split("-")[0]
    ids = np.char.add(f"{short}-", np.char.zfill(np.arange(n).astype(str), 6)).astype(object)
    return JobTable(
        job_id=ids,
        kind=kind.astype(np.int8),
        tenant=tenant,
        priority=priority,
        arrival_s=arrival_s,
        deadline_s=deadline_s,
        work_acc_h=length_h * gang_max,
        gang_min=gang_min,
        gang_max=gang_max.astype(np.int32),
        speed=speed_by_kind[kind.astype(np.intp)].copy(),
        interruptible=interruptible,
        checkpoint_overhead_s=_kind_column("checkpoint_overhead_s")[kind],
        restart_overhead_s=_kind_column("restart_overhead_s")[kind],
        migratable=interruptible.copy(),
        data_move_gb=_kind_column("data_move_gb")[kind],
        type_names=tuple(type_names),
        tier=tier,
    )


def jobs_to_table(
    jobs: list[Job],
    *,
    start: datetime,
    type_names: tuple[str, ...],
    default_speed_by_kind: np.ndarray,
) -> JobTable:
    """Convert inline jobs into a table; times become seconds since ``start`` (naive datetimes = UTC).

    ``default_speed_by_kind[k, t]`` fills the speed of kind ``JOB_KINDS[k]`` on ``type_names[t]``; a job's own
    ``throughput`` entries (keys matched to type names case-insensitively) override it. Raises ValueError
    naming the job for an unknown type name or an arrival before ``start``. Row order is kept.
    """
    speed_default = np.asarray(default_speed_by_kind, dtype=np.float64)
    if speed_default.shape != (len(JOB_KINDS), len(type_names)):
        raise ValueError(
            f"default_speed_by_kind has shape {speed_default.shape}, expected {(len(JOB_KINDS), len(type_names))}"
        )
    col = {name.lower(): i for i, name in enumerate(type_names)}
    t0 = as_utc(start)
    n = len(jobs)
    kind = np.array([JOB_KINDS.index(j.kind) for j in jobs], dtype=np.int8)
    speed = speed_default[kind.astype(np.intp)].copy() if n else np.zeros((0, len(type_names)))
    arrival_s = np.empty(n)
    deadline_s = np.empty(n)
    for r, j in enumerate(jobs):
        arrival_s[r] = (as_utc(j.arrival) - t0).total_seconds()
        if arrival_s[r] < 0:
            raise ValueError(f"job '{j.job_id}': arrival {j.arrival.isoformat()} is before the scenario start")
        deadline_s[r] = np.inf if j.deadline is None else (as_utc(j.deadline) - t0).total_seconds()
        for key, value in j.throughput.items():
            c = col.get(key.lower())
            if c is None:
                raise ValueError(
                    f"job '{j.job_id}': throughput names accelerator type '{key}', which is not in the "
                    f"scenario (types: {', '.join(type_names) or 'none'})"
                )
            speed[r, c] = value

    def column(name: str, dtype: type) -> np.ndarray:
        return np.array([getattr(j, name) for j in jobs], dtype=dtype)

    return JobTable(
        job_id=column("job_id", object),
        kind=kind,
        tenant=column("tenant", object),
        priority=column("priority", np.int32),
        arrival_s=arrival_s,
        deadline_s=deadline_s,
        work_acc_h=column("work_acc_h", np.float64),
        gang_min=column("gang_min", np.int32),
        gang_max=column("gang_max", np.int32),
        speed=speed,
        interruptible=column("interruptible", bool),
        checkpoint_overhead_s=column("checkpoint_overhead_s", np.float64),
        restart_overhead_s=column("restart_overhead_s", np.float64),
        migratable=column("migratable", bool),
        data_move_gb=column("data_move_gb", np.float64),
        type_names=tuple(type_names),
        tier=column("tier", np.int8),
    )
