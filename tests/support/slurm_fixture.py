"""A real Slurm (Debian's 22.05 packages) for the Slurm executor's tests: ``slurm_cluster`` starts one for the
test module (:class:`gridshift.testing.slurm_cluster.SlurmCluster`) and stops it afterwards. Without Slurm
the tests are skipped, unless ``CI`` or ``GRIDSHIFT_REQUIRE_SLURM`` is set: then they fail."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest

from gridshift.testing.slurm_cluster import SlurmCluster, missing


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") or os.environ.get("GRIDSHIFT_REQUIRE_SLURM"):
        pytest.fail(f"Slurm is required: {reason}")
    pytest.skip(f"Slurm not available: {reason}")


def start_cluster(**kw) -> Iterator[SlurmCluster]:
    why = missing()
    if why is not None:
        _unavailable(why)
    root = tempfile.mkdtemp(prefix="gs-slurm-")
    os.chmod(root, 0o711)
    cluster = SlurmCluster(root, **kw)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
