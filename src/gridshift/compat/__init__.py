"""Deprecated import paths, kept working for one release (0.2) and then removed.

The tree was regrouped into layers in 0.2 (see ``docs/reference/architecture.md``): ``gridshift.assemble``
became :mod:`gridshift.world.build`, ``gridshift.hetero`` was folded into ``catalog``, ``plan.allocation``,
``sim`` and ``studies``, and so on. Importing an old path still works through :func:`install`, which maps
the old name onto the module that now holds its contents and warns with a :class:`DeprecationWarning` naming
the new path. :data:`gridshift.compat.aliases.MOVED` is the whole table.
"""

from gridshift.compat.aliases import MOVED, install

__all__ = ["MOVED", "install"]
