"""Identical jobs merged into one: an exact reduction of every allocation LP.

Jobs whose columns (normalised throughput, objective, use of every coupling row) and rows (requirement,
need, penalty) are equal — the same job type at the same gang with the same weight, as in Gavel's
workloads drawn from 26 measured configurations — are interchangeable. The LP is convex and symmetric in
them, so averaging an optimum over their permutations gives an optimum in which they all have the same
``x``: solving for one representative per class, its objective and coupling use multiplied by the class
size, loses nothing (the coupling prices are the same, and so is the optimum value). On Gavel's own
microbenchmark shape (2,048 jobs of 26 types x 4 gangs) this turns a degenerate LP with thousands of tied
jobs into one with about 100 jobs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import scipy.sparse as sp

from gridshift.plan.allocation.job_lp import JobLP, JobSol

MAX_DENSE_ROWS = 64  # coupling rows compared densely (more: no merging)
MIN_GAIN = 0.75  # merge only when the classes are at most this share of the jobs


def merge_identical(lp: JobLP) -> tuple[JobLP, Callable[[JobSol], JobSol], Callable[[JobSol], JobSol]] | None:
    """``(merged LP, expand, shrink)``, or ``None`` when there is little to merge. ``expand`` maps a
    solution of the merged LP to one of ``lp`` (every member gets its representative's ``x``); ``shrink``
    maps a solution of ``lp`` (a warm start) to the merged LP (members' ``x`` averaged)."""
    J, C = lp.n_jobs, lp.job.size
    K = lp.cap.size
    if J < 4 or C == 0 or K > MAX_DENSE_ROWS:
        return None
    start = np.searchsorted(lp.job, np.arange(J))
    ncol = np.bincount(lp.job, minlength=J)
    pos = np.arange(C) - start[lp.job]
    A = lp.A.tocsc()
    col_cls = _classes(np.column_stack([lp.n, lp.e, A.toarray().T]))  # [C, 2 + K]
    width = int(ncol.max())
    blocks = np.full((J, width), -1.0)
    blocks[lp.job, pos] = col_cls
    pen = np.zeros(J) if lp.pen is None else lp.pen
    cls = _classes(np.column_stack([blocks, lp.req.astype(float), lp.b, lp.beta, pen]))
    first = np.unique(cls, return_index=True)[1]
    if first.size > MIN_GAIN * J:
        return None
    reps = np.sort(first)  # one job per class, in job order: the merged LP's jobs
    new_of_cls = np.empty(first.size, np.int64)
    new_of_cls[cls[reps]] = np.arange(reps.size)
    new = new_of_cls[cls]  # [J] merged job of every job
    mult = np.bincount(new, minlength=reps.size).astype(float)
    keep = np.flatnonzero(np.isin(lp.job, reps))  # the representatives' columns, in order
    m_col = mult[new[lp.job[keep]]]
    small = JobLP(n_jobs=reps.size, job=new[lp.job[keep]], n=lp.n[keep], e=lp.e[keep] * m_col,
                  A=sp.csc_matrix(A[:, keep] @ sp.diags(m_col)), cap=lp.cap, a=lp.a, req=lp.req[reps],
                  b=lp.b[reps], beta=lp.beta[reps], pen=None if lp.pen is None else lp.pen[reps] * mult,
                  f=lp.f, z_lo=lp.z_lo, z_hi=lp.z_hi, time_z=lp.time_z)
    small_start = np.searchsorted(small.job, np.arange(reps.size))
    of_col = small_start[new[lp.job]] + pos  # [C] the merged column every column follows

    def expand(sol: JobSol) -> JobSol:
        x = sol.x[of_col]
        return replace(sol, x=x, value=lp.value(x, sol.z))

    def shrink(sol: JobSol) -> JobSol:
        if sol.x.size != C:
            return sol
        x = np.bincount(of_col, weights=sol.x, minlength=keep.size) / m_col
        return replace(sol, x=x)

    return small, expand, shrink


def _classes(rows: np.ndarray) -> np.ndarray:
    """Class id of every row of a float matrix (equal rows, exactly, share an id): a 64-bit hash of the
    bits, then every row checked against its class's first row (a collision gets a class of its own)."""
    bits = np.ascontiguousarray(rows, dtype=float).view(np.uint64)
    mult = (np.uint64(0x9E3779B97F4A7C15) * (np.arange(bits.shape[1], dtype=np.uint64) * np.uint64(2) + np.uint64(1)))
    with np.errstate(over="ignore"):
        h = (bits ^ (bits >> np.uint64(29))) * mult[None, :]
        h = np.bitwise_xor.reduce(h + np.arange(bits.shape[1], dtype=np.uint64)[None, :], axis=1)
    _, first, cls = np.unique(h, return_index=True, return_inverse=True)
    cls = cls.ravel()
    bad = np.flatnonzero(~np.all(bits == bits[first[cls]], axis=1))
    if bad.size:
        cls[bad] = cls.max() + 1 + np.arange(bad.size)
    return cls
