"""Which code a benchmark result was measured on (the planner changes often: results name their code)."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def git_state() -> dict:
    """Commit and uncommitted files of the checkout (results files excluded)."""
    def git(*args: str) -> str:
        r = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return r.stdout.rstrip()
    return {"commit": git("rev-parse", "--short", "HEAD"),
            "dirty": [x[3:] for x in git("status", "--porcelain", "--untracked-files=no").splitlines()
                      if not x[3:].startswith("benchmarks/results/")]}
