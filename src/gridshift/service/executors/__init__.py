"""Executors: where the reconciler's decisions become running jobs (see docs/service/executors.md).

``make_executor("local", state_dir=...)`` runs jobs as subprocesses of this machine;
``make_executor("ray", address=...)`` runs each job as a detached Ray actor. Ray is imported only when a
Ray executor is made.
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
