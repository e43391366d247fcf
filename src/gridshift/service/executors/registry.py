"""Executors by name: ``make_executor("local", ...)``, ``make_executor("ray", ...)``, ``make_executor("slurm", ...)``,
``make_executor("kubernetes", ...)``."""

from __future__ import annotations

from typing import Any

from gridshift.service.executors.base import Executor, ExecutorError

EXECUTORS: tuple[str, ...] = ("local", "ray", "slurm", "kubernetes")


def make_executor(name: str, **options: Any) -> Executor:
    """An executor by name with its options (keyword arguments of LocalExecutor / RayExecutor / SlurmExecutor /
    KubernetesExecutor)."""
    if name == "local":
        from gridshift.service.executors.local import LocalExecutor

        cls: type[Executor] = LocalExecutor
    elif name == "ray":
        from gridshift.service.executors.ray_exec import RayExecutor

        cls = RayExecutor
    elif name == "slurm":
        from gridshift.service.executors.slurm import SlurmExecutor

        cls = SlurmExecutor
    elif name == "kubernetes":
        from gridshift.service.executors.kube import KubernetesExecutor

        cls = KubernetesExecutor
    else:
        raise ExecutorError(f"unknown executor '{name}' (known: {', '.join(EXECUTORS)})", retryable=False)
    try:
        return cls(**options)
    except TypeError as e:
        raise ExecutorError(f"bad options for the {name} executor: {e}", retryable=False) from None
