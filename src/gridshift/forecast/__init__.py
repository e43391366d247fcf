"""Forecasts of grid signals for planners and backtests. Forecasters see history only (up to and including
the current slot) — except ``perfect`` and ``lead-error``, explicit oracles given the actual future.

``make_forecaster(name, **params)`` builds any model by name (see :mod:`gridshift.forecast.registry`);
``DEFAULT_MODEL`` is the one to use when nothing better is known.
"""

from gridshift.forecast.interface import (
           DEFAULT_LEVELS,
           Forecast,
           Forecaster,
           ProbForecaster,
)
from gridshift.forecast.registry import DEFAULT_MODEL, FORECASTERS, make_forecaster

__all__ = ["DEFAULT_LEVELS", "DEFAULT_MODEL", "FORECASTERS", "Forecast", "Forecaster", "ProbForecaster",
           "make_forecaster"]
