"""First-order throughput of one accelerator type relative to another, from catalog figures alone.

This is a roofline-style estimate used only when a job gives no throughput for a type and no measured table
covers it:

* compute-bound kinds (``pre-training``, ``fine-tuning``): ratio of dense peak BF16 tensor FLOP/s;
* memory-bound ``batch-inference`` (decode streams the weights and KV cache through HBM): ratio of memory
  bandwidth.

It ignores everything else that matters in practice: achieved versus peak utilisation (which differs by
generation and software stack), FP8 use, whether the model fits in memory, interconnect and parallelism,
and prefill (compute-bound) versus decode (memory-bound) mixes. Older GPUs without tensor cores (K80, P100)
carry a non-tensor stand-in for ``peak_bf16_tflops``, so their compute-bound ratios are far too low; measured
tables (e.g. Gavel's per-job throughputs) refine these estimates later and take precedence over them.
"""

from __future__ import annotations

from enum import Enum

from gridshift.errors import CatalogError
from gridshift.model.accelerator import AcceleratorType
from gridshift.model.workload import JobKind

COMPUTE_BOUND_KINDS: frozenset[str] = frozenset({JobKind.PRE_TRAINING.value, JobKind.FINE_TUNING.value})
MEMORY_BOUND_KINDS: frozenset[str] = frozenset({JobKind.BATCH_INFERENCE.value})


def relative_throughput(acc: AcceleratorType, reference: AcceleratorType, kind: str | JobKind) -> float:
    """Throughput of ``acc`` for a job of ``kind`` relative to ``reference`` (1.0 = same speed).

    A first-order roofline estimate (see the module docstring): peak BF16 FLOP/s ratio for compute-bound
    kinds, HBM bandwidth ratio for ``batch-inference``.
    """
    k = kind.value if isinstance(kind, Enum) else str(kind)
    k = k.strip().lower().replace("_", "-")
    if k in COMPUTE_BOUND_KINDS:
        return acc.peak_bf16_tflops / reference.peak_bf16_tflops
    if k in MEMORY_BOUND_KINDS:
        return acc.hbm_tb_per_s / reference.hbm_tb_per_s
    known = sorted(COMPUTE_BOUND_KINDS | MEMORY_BOUND_KINDS)
    raise CatalogError(f"unknown job kind {kind!r}; expected one of {', '.join(known)}", field="kind")
