"""The issued-forecast table format shared by its reader (:mod:`gridshift.data.issued_forecasts`) and the model
that replays it (:mod:`gridshift.forecast.external`): required columns and the quantile-column names."""

from __future__ import annotations

from collections.abc import Iterable

REQUIRED = ("issue_time", "target_time", "value")


def quantile_columns(columns: Iterable[object]) -> dict[float, str]:
    """The quantile columns ``{level: name}`` (``q0.1`` → 0.1), ordered by level."""
    out = {}
    for c in columns:
        if isinstance(c, str) and c.startswith("q"):
            try:
                lv = float(c[1:])
            except ValueError:
                continue
            if 0 < lv < 1:
                out[lv] = c
    return dict(sorted(out.items()))
