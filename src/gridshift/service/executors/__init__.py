"""Executors: where the reconciler's decisions become running jobs (see docs/service/executors.md).

``make_executor("local", state_dir=...)`` runs jobs as subprocesses of this machine;
``make_executor("ray", address=...)`` runs each job as a detached Ray actor;
``make_executor("slurm", ...)`` as a Slurm batch job; ``make_executor("kubernetes", ...)`` as a Kubernetes Job
(optionally through Kueue, with GridShift's admission check in ``kueue_gate``). Ray and the Kubernetes client
are imported only when such an executor is made.
"""

from gridshift.service.executors.base import (
    EXEC_STATES,
    ExecState,
    ExecStatus,
    Executor,
    ExecutorError,
    JobLaunch,
    Placement,
)
from gridshift.service.executors.registry import EXECUTORS, make_executor

__all__ = ["EXECUTORS", "EXEC_STATES", "ExecState", "ExecStatus", "Executor", "ExecutorError", "JobLaunch",
           "Placement", "make_executor"]
