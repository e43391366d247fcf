"""GridShift: plan and simulate AI compute so that it follows the power grid.

The public surface is small: load a scenario, build it against the data registry, run policies, and
write a report. Everything else lives in the layers (see ``docs/reference/architecture.md``): ``model``,
``data``, ``catalog``, ``workloads``, ``world``, ``forecast``, ``plan``, ``sim``, ``report``, ``studies``,
``service``, ``grid``, ``cli``.
"""

from gridshift import compat as _compat
from gridshift.data.scenario import load_scenario, parse_scenario
from gridshift.errors import GridShiftError
from gridshift.model import Scenario
from gridshift.plan.base import Decision, Observation, Policy
from gridshift.plan.registry import register
from gridshift.sim.engine import simulate
from gridshift.sim.result import PolicyRun

_compat.install()

__version__ = "0.1.0"

__all__ = ["GridShiftError", "Scenario", "Decision", "Observation", "Policy", "register", "load_scenario",
           "parse_scenario", "simulate", "PolicyRun", "__version__"]
