"""Every forecaster by name: ``make_forecaster(name, **params)``.

=====================  =====================================================================================
name                   model
=====================  =====================================================================================
``perfect``            the actual future (an oracle; the planner hands it the series)
``persistence``        the current value, for every lead time
``seasonal-naive``     the same hour yesterday (``season_h=24``; ``season_h=168`` for last week)
``seasonal-naive-week`` the same hour last week
``blend``              **default**: per-lead-time NNLS blend of naive members, falls back to the best member
``climatology``        hour-of-day × day-type profile of the last weeks (and last year's season): the prior
``shape-blend``        the blend's level with an intra-day shape fitted to actual shapes (for shifting decisions)
``gated``              any model, falling back to the prior's shape at leads where its ranking skill is lower
``ensemble``           ``blend`` plus the LightGBM and MSTL members
``gbm``                LightGBM, direct multi-horizon on calendar, lag and cross-signal features
``mstl``               statsforecast MSTL (daily + weekly seasonality), anchored on the current value
``external``           issued forecasts replayed from a table (``table=``, read by ``data.issued_forecasts``)
``lead-error``         the actual future with errors that grow with lead time (for studies)
``dayahead``           published day-ahead prices for the hours they cover (DE-LU, JP-TK), ``base`` elsewhere
=====================  =====================================================================================

``shape-blend`` and ``gated`` keep their fits between calls (per refresh point and history), so a planner's hourly
``predict`` costs about what the blend's does; which model is the default, and why, is in
docs/guide/forecasting.md (``benchmarks/results/forecast_decisions_2022_2023.json``).
"""

from __future__ import annotations

from gridshift.errors import PlanError
from gridshift.forecast.interface import Forecaster

DEFAULT_MODEL = "blend"
NAIVE_BASELINES = ("persistence", "seasonal-naive")


def _lazy(module: str, cls: str):
    def make(**params):
        import importlib

        return getattr(importlib.import_module(module), cls)(**params)
    make.__name__ = cls
    return make


FORECASTERS = {
    "perfect": _lazy("gridshift.forecast.simple", "Perfect"),
    "persistence": _lazy("gridshift.forecast.simple", "Persistence"),
    "seasonal-naive": _lazy("gridshift.forecast.simple", "SeasonalNaive"),
    "seasonal-naive-week": _lazy("gridshift.forecast.simple", "SeasonalNaiveWeek"),
    "blend": _lazy("gridshift.forecast.ensemble", "Blend"),
    "climatology": _lazy("gridshift.forecast.climatology", "Climatology"),
    "shape-blend": _lazy("gridshift.forecast.shapeblend", "ShapeBlend"),
    "gated": _lazy("gridshift.forecast.gate", "SkillGated"),
    "ensemble": _lazy("gridshift.forecast.ensemble", "Ensemble"),
    "gbm": _lazy("gridshift.forecast.gbm", "GbmForecaster"),
    "mstl": _lazy("gridshift.forecast.stats", "MstlForecaster"),
    "external": _lazy("gridshift.forecast.external", "ExternalForecaster"),
    "lead-error": _lazy("gridshift.forecast.errormodel", "LeadErrorReplay"),
    "dayahead": _lazy("gridshift.forecast.dayahead", "DayAhead"),
}


def make_forecaster(name: str, **params) -> Forecaster:
    """The forecaster called ``name`` built with ``params`` (unknown names and parameters are a
    :class:`~gridshift.errors.PlanError`)."""
    make = FORECASTERS.get(name)
    if make is None:
        raise PlanError(f"unknown forecaster '{name}' (known: {', '.join(FORECASTERS)})", field="forecast")
    try:
        return make(**params)
    except TypeError as e:
        raise PlanError(f"bad parameters for forecaster '{name}': {e}", field="forecast") from e
