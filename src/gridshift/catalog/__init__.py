"""The accelerator catalog: accelerator figures with sources, power-cap curves and throughput.

* :mod:`gridshift.catalog.accelerators` — the packaged ``accelerators.yaml``, user catalogs, look-up by name.
* :mod:`gridshift.catalog.throughput` — throughput of one accelerator type relative to another.
"""

from gridshift.catalog.accelerators import (
    Catalog,
    catalog_table,
    get_accelerator,
    load_catalog,
    load_catalog_file,
    load_yaml,
)
from gridshift.catalog.throughput import relative_throughput

__all__ = ["Catalog", "catalog_table", "get_accelerator", "load_catalog", "load_catalog_file", "load_yaml",
           "relative_throughput"]
