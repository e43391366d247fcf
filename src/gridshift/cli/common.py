"""Consoles and the one-line failure path shared by every command module."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console
from typer.core import TyperGroup
from typer.exceptions import Abort

from gridshift.errors import GridShiftError


def _console(stderr: bool) -> Console:
    """A terminal gets its own width; a pipe or a file gets whole lines, so no table cuts or wraps a number."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else 4096)


err = _console(stderr=True)
out = _console(stderr=False)

_TYPE_NAMES = {"str": "TEXT", "int": "INTEGER", "float": "FLOAT", "path": "PATH", "file": "FILE",
               "directory": "DIRECTORY", "datetime": "DATETIME", "int range": "INTEGER RANGE",
               "float range": "FLOAT RANGE"}


def _help_type(self, ctx) -> str | None:  # noqa: ANN001
    """The value placeholder in ``--help``: none for a flag (``--quiet``, not ``--quiet <bool>``), click's
    names for the rest (TEXT, INTEGER, PATH; a repeatable option shows its item's type)."""
    if getattr(self, "is_flag", False) or getattr(self, "count", False):
        return None
    if self.metavar is not None:
        return self.metavar
    label = _display_type(self, ctx).strip("<>")
    while label.startswith("list[") and label.endswith("]"):
        label = label[5:-1]
    return _TYPE_NAMES.get(label, label)


try:  # typer >= 0.20 prints python annotations ('<bool>', '<list[str]>') as placeholders
    from typer.core import TyperArgument, TyperOption, _TyperParameter

    _display_type = _TyperParameter.display_type
    TyperOption.display_type_rich = _help_type
    TyperArgument.display_type_rich = _help_type
except (ImportError, AttributeError):  # pragma: no cover (older typer: click's own placeholders)
    pass


try:  # typer >= 0.24 carries its own copy of click
    from typer import _click as click
except ImportError:  # pragma: no cover
    import click


class OneLineErrors(TyperGroup):
    """The root command: click's own usage errors (a bad option value, an unknown option, a missing argument)
    as one line ``error: …`` naming the option, exit code 2 — not click's usage box."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            rv = super().main(*args, standalone_mode=False, **kwargs)
        except click.exceptions.ClickException as e:
            if type(e).__name__ == "NoArgsIsHelpError":  # the help was printed
                sys.exit(e.exit_code)
            err.print(f"error: {' '.join(e.format_message().split())}", markup=False, highlight=False,
                      soft_wrap=True)
            sys.exit(e.exit_code)
        except Abort:
            err.print("aborted", markup=False, highlight=False)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)  # typer.Exit(n) comes back as n


def fail(e: GridShiftError, scenario_file: str | None = None) -> None:
    """Print ``error: <one line>`` on stderr and exit with code 2."""
    if scenario_file and e.file is None:
        e.file = scenario_file
    err.print(f"error: {e}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@contextmanager
def progress_after(message: str, quiet: bool = False, delay_s: float = 1.0) -> Iterator[None]:
    """A spinner with ``message`` on stderr, shown only once the block has run for
    ``delay_s`` (so quick steps print nothing); never with ``quiet``."""
    if quiet:
        yield
        return
    status = err.status(message, spinner="dots")
    lock = threading.Lock()
    state = {"shown": False, "done": False}

    def show() -> None:
        with lock:
            if not state["done"]:
                status.start()
                state["shown"] = True

    timer = threading.Timer(delay_s, show)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        with lock:
            state["done"] = True
            if state["shown"]:
                status.stop()
