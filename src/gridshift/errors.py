"""Error types that carry where a problem is.

Every layer raises a subclass of :class:`GridShiftError`. ``str(err)`` is a single line that names the
file, line and field when they are known, then what is wrong, so the CLI can print it as is (exit code 2)
and the service can return it as a 4xx body.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType


class GridShiftError(Exception):
    """Base class: a problem the user can fix, located by file, line (``row``) and field."""

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        row: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = " ".join(str(message).split())  # always one line
        self.file = str(file) if file is not None else None
        self.row = row
        self.field = field
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = []
        if self.file:
            parts.append(self.file)
        if self.row is not None:
            parts.append(f"line {self.row}")
        if self.field:
            parts.append(f"field '{self.field}'")
        where = ": ".join(parts)
        return f"{where}: {self.message}" if where else self.message


class ScenarioError(GridShiftError):
    """A scenario file is malformed or refers to something that does not exist."""


class DataError(GridShiftError):
    """A data file is missing, corrupt, or fails validation (timestamps, gaps, NaN, units)."""


class CatalogError(GridShiftError):
    """The accelerator catalog is malformed or an accelerator is unknown."""


class PlanError(GridShiftError):
    """A policy produced an invalid decision or could not be built."""


class MissingExtraError(GridShiftError):
    """A feature needs an optional dependency that is not installed; the message names the extra."""


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import ``module`` for ``feature``, or raise :class:`MissingExtraError` naming the extra to install.

    >>> lgb = require("lightgbm", "forecast", "the 'lightgbm' forecaster")  # doctest: +SKIP
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(f"{feature} needs the optional dependency '{module.split('.')[0]}': "
                                f"pip install 'gridshift[{extra}]'") from None
