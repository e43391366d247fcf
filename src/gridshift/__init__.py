"""GridShift: plan and simulate AI compute so that it follows the power grid.

The public surface is small: load a scenario, assemble it against the data registry, run policies, and
write a report. Everything else lives in the subpackages (model, catalog, data, workloads, plan, sim,
report).
"""

from gridshift.errors import GridShiftError
from gridshift.model import Scenario
from gridshift.plan.base import Decision, Observation, Policy
from gridshift.plan.registry import register
from gridshift.scenario_io import load_scenario, parse_scenario
from gridshift.sim.engine import simulate
from gridshift.sim.result import PolicyRun

__version__ = "0.1.0"

__all__ = ["GridShiftError", "Scenario", "Decision", "Observation", "Policy", "register", "load_scenario",
           "parse_scenario", "simulate", "PolicyRun", "__version__"]
