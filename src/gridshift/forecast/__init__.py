"""Forecasts of grid signals for planners. Forecasters see history only (up to and including the current
slot) — except ``perfect``, an explicit oracle given the actual future."""

from gridshift.forecast.simple import FORECASTERS, Forecaster, make_forecaster

__all__ = ["FORECASTERS", "Forecaster", "make_forecaster"]
