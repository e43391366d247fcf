"""The table of moved modules and the import hook that serves the old names (deprecated)."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType

#: old module path -> the module that now holds its public names
MOVED: dict[str, str] = {
    "gridshift.assemble": "gridshift.world.build",
    "gridshift.sim.world": "gridshift.world.arrays",
    "gridshift.sim.events": "gridshift.world.events",
    "gridshift.sim.accounting": "gridshift.world.accounting",
    "gridshift.plan.score": "gridshift.sim.score",
    "gridshift.runner": "gridshift.sim.runner",
    "gridshift.scenario_io": "gridshift.data.scenario",
    "gridshift.events_io": "gridshift.data.events",
    "gridshift.explain": "gridshift.report.explain",
    "gridshift.flex": "gridshift.studies.flex",
    "gridshift.cli_common": "gridshift.cli.common",
    "gridshift.cli_capacity": "gridshift.cli.capacity",
    "gridshift.cli_flex": "gridshift.cli.flex",
    "gridshift.cli_forecast": "gridshift.cli.forecast",
    "gridshift.cli_headroom": "gridshift.cli.headroom",
    "gridshift.cli_hetero": "gridshift.cli.hetero",
    "gridshift.cli_serve": "gridshift.cli.serve",
    "gridshift.cli_sweep": "gridshift.cli.sweep",
    "gridshift.cli_ven": "gridshift.cli.ven",
    "gridshift.hetero": "gridshift.plan.allocation",
    "gridshift.hetero.problem": "gridshift.plan.allocation.problem",
    "gridshift.hetero.policies": "gridshift.plan.allocation.policies",
    "gridshift.hetero.rounds": "gridshift.plan.allocation.rounds",
    "gridshift.hetero.lp_base": "gridshift.plan.allocation.job_lp",
    "gridshift.hetero.sim": "gridshift.sim.rounds",
    "gridshift.hetero.throughput": "gridshift.catalog.throughput",
    "gridshift.hetero.estimate": "gridshift.catalog.estimate",
    "gridshift.hetero.fleet_jobs": "gridshift.catalog.fleet_jobs",
    "gridshift.hetero.gavel_repro": "gridshift.studies.gavel",
    "gridshift.hetero.fleet_example": "gridshift.studies.hetero_fleet",
    "gridshift.service.api": "gridshift.service.app",
    "gridshift.service.models": "gridshift.service.tables",
    "gridshift.service.serve_process": "gridshift.testing.serve_process",
    "gridshift.service.reconcile_core": "gridshift.service.reconciler.world",
    "gridshift.service.counterfactual": "gridshift.service.reconciler.counterfactual",
    "gridshift.forecast.signals": "gridshift.data.series",
    "gridshift.forecast.run": "gridshift.studies.forecast_backtest",
}


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, old: str, new: str) -> None:
        self.old, self.new = old, new

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        warnings.warn(f"{self.old} is deprecated and will be removed in 0.3; import {self.new}",
                      DeprecationWarning, stacklevel=2)
        return importlib.import_module(self.new)

    def exec_module(self, module: ModuleType) -> None:
        """The module is the new one, already executed."""


class _AliasFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):  # noqa: ANN001 (importlib's signature)
        new = MOVED.get(fullname)
        if new is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(fullname, new))


def install() -> None:
    """Serve the old import paths (idempotent). The finder goes first: a submodule of an aliased package
    (``gridshift.hetero.policies``) would otherwise be found again under its old name and run twice."""
    if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _AliasFinder())
