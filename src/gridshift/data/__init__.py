"""Real reference data: a registry of pinned files, resolution/download, validation and tidy loaders.

See :mod:`gridshift.data.registry` (where files come from), :mod:`gridshift.data.validate` (shared
checks, ``fill_gaps``) and :mod:`gridshift.data.loaders` (one function per dataset).
"""

from __future__ import annotations

from gridshift.data.loaders import *  # noqa: F403
from gridshift.data.loaders import __all__ as _loader_names
from gridshift.data.registry import (
    Dataset,
    cache_dir,
    data_dirs,
    dataset_for_path,
    dataset_years,
    download_file,
    get_dataset,
    load_registry,
    resolve,
    verify,
)
from gridshift.data.validate import FillReport, fill_gaps

__all__ = [
    *_loader_names,
    "Dataset",
    "FillReport",
    "cache_dir",
    "data_dirs",
    "dataset_for_path",
    "dataset_years",
    "download_file",
    "fill_gaps",
    "get_dataset",
    "load_registry",
    "resolve",
    "verify",
]
