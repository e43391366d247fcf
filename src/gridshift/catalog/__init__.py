"""The accelerator catalog: accelerator figures with sources, power-cap curves and throughput.

* :mod:`gridshift.catalog.accelerators` — the packaged ``accelerators.yaml``, user catalogs, look-up by name.
* :mod:`gridshift.catalog.throughput` — measured throughput tables (Gavel's and others), per job type and gang.
* :mod:`gridshift.catalog.estimate` — the one throughput estimator (roofline fit, first-order hardware ratio).
* :mod:`gridshift.catalog.fleet_jobs` — the mixed fleet's job types and their throughput model.
"""

from gridshift.catalog.accelerators import (
    Catalog,
    catalog_table,
    get_accelerator,
    load_catalog,
    load_catalog_file,
    load_yaml,
)
from gridshift.catalog.estimate import relative_throughput

__all__ = ["Catalog", "catalog_table", "get_accelerator", "load_catalog", "load_catalog_file", "load_yaml",
           "relative_throughput"]
