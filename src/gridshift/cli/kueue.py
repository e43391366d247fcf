"""Command line: ``gridshift kueue-gate`` — run GridShift's Kueue admission check controller
(``controllerName: gridshift.io/grid-gate``) against a cluster (docs/service/executors.md)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from gridshift.errors import GridShiftError

GATE_OPTIONS = ("pools", "api_url", "kubeconfig", "context", "timeout_s")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""

    @app.command("kueue-gate")
    def kueue_gate(
        kube_config: Annotated[Path | None, typer.Option(
            help="The Kubernetes executor's YAML options file; the gate reads its pools, api_url, kubeconfig and "
                 "context (the rest is the executor's).")] = None,
        namespace: Annotated[str | None, typer.Option(help="Watch Workloads in this namespace only (default: "
                                                           "all namespaces).")] = None,
        check_name: Annotated[str, typer.Option(help="The AdmissionCheck to create (kept if it exists); add it to "
                                                     "your ClusterQueues.")] = "gridshift-grid-gate",
        unplanned: Annotated[str, typer.Option(help="ready | pending: the check on Workloads without GridShift "
                                                    "annotations.")] = "ready",
        resync_s: Annotated[float, typer.Option(min=1.0, help="Full pass every this many seconds.")] = 10.0,
        once: Annotated[bool, typer.Option("--once", help="One pass, print what it did, exit.")] = False,
    ) -> None:
        """Hold Kueue Workloads until GridShift's planned start, give capacity back on grid events, pin the
        site and the power profile when admitting them."""
        from gridshift.cli.common import fail, out

        try:
            from gridshift.cli.serve import kube_options
            from gridshift.service.executors.kueue_gate import GridGate

            opts = kube_options(kube_config) if kube_config is not None else {}
            if unplanned not in ("ready", "pending"):
                raise GridShiftError(f"use ready or pending, got '{unplanned}'", field="unplanned")
            gate = GridGate(namespace=namespace, unplanned=unplanned,  # type: ignore[arg-type]
                            **{k: v for k, v in opts.items() if k in GATE_OPTIONS})
            gate.ensure_admission_check(check_name)
            if once:
                done = gate.sync_once()
                out.print(f"{done['workloads']} workloads, {done['written']} checks updated", markup=False,
                          highlight=False)
                return
        except GridShiftError as e:
            fail(e)
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        out.print(f"grid gate running (AdmissionCheck {check_name}, controller {gate.controller_name})",
                  markup=False, highlight=False)
        gate.run(stop, resync_s=resync_s)
