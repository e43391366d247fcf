"""The reconciler: keeps the executor's jobs where the planning policy wants them (see docs/service/reconciler.md).

``loop`` holds :class:`Reconciler` (the passes, intents and executor calls), ``world`` the live state as the
simulator's arrays, ``decisions`` a decision as executor actions and the numbers a plan reports,
``counterfactual`` the books of the ``asap`` counterfactual, ``policies`` which policies can run live,
``isolate`` the quarantine of a job or grid event planning fails with.
This package face only re-exports.
"""

from gridshift.service.reconciler.loop import Reconciler
from gridshift.service.reconciler.policies import LIVE_POLICIES, check_live_policy

__all__ = ["LIVE_POLICIES", "Reconciler", "check_live_policy"]
