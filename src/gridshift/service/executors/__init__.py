"""Executors: where the reconciler's decisions become running jobs (see docs/executors.md).

``make_executor("local", state_dir=...)`` runs jobs as subprocesses of this machine;
``make_executor("ray", address=...)`` runs each job as a detached Ray actor. Ray is imported only when a
Ray executor is made.
"""

from __future__ import annotations

from typing import Any

from gridshift.service.executors.base import (
    EXEC_STATES,
    ExecState,
    ExecStatus,
    Executor,
    ExecutorError,
    JobLaunch,
    Placement,
)

EXECUTORS: tuple[str, ...] = ("local", "ray")


def make_executor(name: str, **options: Any) -> Executor:
    """An executor by name with its options (keyword arguments of LocalExecutor / RayExecutor)."""
    if name == "local":
        from gridshift.service.executors.local import LocalExecutor

        cls: type[Executor] = LocalExecutor
    elif name == "ray":
        from gridshift.service.executors.ray_exec import RayExecutor

        cls = RayExecutor
    else:
        raise ExecutorError(f"unknown executor '{name}' (known: {', '.join(EXECUTORS)})", retryable=False)
    try:
        return cls(**options)
    except TypeError as e:
        raise ExecutorError(f"bad options for the {name} executor: {e}", retryable=False) from None


__all__ = ["EXECUTORS", "EXEC_STATES", "ExecState", "ExecStatus", "Executor", "ExecutorError", "JobLaunch",
           "Placement", "make_executor"]
