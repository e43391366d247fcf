"""What a scenario becomes once built against the data: the scenario, its world and signals (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gridshift.model.accelerator import AcceleratorType
from gridshift.model.scenario import Scenario
from gridshift.world.arrays import Signals, World


@dataclass
class Assembled:
    scenario: Scenario
    world: World
    signals: Signals
    accelerators: dict[str, AcceleratorType]
    notes: list[str]  # what was filled or assumed, for the report
    # the carbon signal each zone plans and accounts on ("lca", "direct", "marginal", "constant"), and the
    # intensity [Z, n_slots] g/kWh "as_planned" and of every basis all zones have, to report carbon under each
    carbon_basis: dict[str, str] = field(default_factory=dict)
    carbon_bases: dict[str, np.ndarray] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        s, f = self.scenario, self.world.fleet
        return {
            "scenario": s.name,
            "time_range_utc": f"{s.time_range.start.isoformat()} – {s.time_range.end.isoformat()}",
            "slot_duration_s": s.slot_duration_s,
            "sites": ", ".join(f"{x.name} ({x.zone}, PUE {x.pue})" for x in s.sites),
            "accelerators": ", ".join(f"{f.type_names[k]} × {int(f.pool_count[f.pool_type == k].sum())}"
                                      for k in range(len(f.type_names))),
            "batch_jobs": len(self.world.jobs),
            "services": ", ".join(self.world.services.names) or "none",
            "notes": "; ".join(self.notes) or "none",
        }
