"""Consoles and the one-line failure path shared by every command module."""

from __future__ import annotations

import typer
from rich.console import Console

from gridshift.errors import GridShiftError

err = Console(stderr=True)
out = Console()


def fail(e: GridShiftError, scenario_file: str | None = None) -> None:
    """Print ``error: <one line>`` on stderr and exit with code 2."""
    if scenario_file and e.file is None:
        e.file = scenario_file
    err.print(f"error: {e}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(2)
