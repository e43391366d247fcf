"""All data loaders in one namespace (implemented in grid, network, traces, gavel and hardware).

Every loader takes an optional explicit ``path=`` (a file to read instead of the registry's), resolves
through :mod:`gridshift.data.registry` otherwise, validates with :mod:`gridshift.data.validate` (raising
:class:`gridshift.errors.DataError` naming file, line and column) and caches parsed results in-process,
keyed on the file's resolved path, mtime and size. Returned frames are copies: mutate them freely.
"""

from __future__ import annotations

from gridshift.data.gavel import load_gavel_colocated, load_gavel_throughputs
from gridshift.data.grid import (
    available_load_regions,
    available_price_zones,
    available_zones,
    load_carbon,
    load_grid_load,
    load_price,
)
from gridshift.data.hardware import (
    load_emerald_dvfs,
    load_epoch_hardware,
    load_mlenergy,
    load_mlperf_inference_powercap,
    load_mlperf_training_power,
    load_splitwise,
    load_zeus_powercap,
)
from gridshift.data.network import GRID_ZONE_TO_DATA_ZONE, load_latency_matrix, load_region_zone_map
from gridshift.data.traces import (
    load_azure_llm,
    load_gaia,
    load_mooncake,
    load_philly_node_sequence,
    load_philly_runtimes,
)

__all__ = [
    "GRID_ZONE_TO_DATA_ZONE",
    "available_load_regions",
    "available_price_zones",
    "available_zones",
    "load_azure_llm",
    "load_carbon",
    "load_emerald_dvfs",
    "load_epoch_hardware",
    "load_gaia",
    "load_gavel_colocated",
    "load_gavel_throughputs",
    "load_grid_load",
    "load_latency_matrix",
    "load_mlenergy",
    "load_mlperf_inference_powercap",
    "load_mlperf_training_power",
    "load_mooncake",
    "load_philly_node_sequence",
    "load_philly_runtimes",
    "load_price",
    "load_region_zone_map",
    "load_splitwise",
    "load_zeus_powercap",
]
