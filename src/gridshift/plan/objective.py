"""The scenario's objective as a cost per facility MWh, and the score every policy gets on it."""

from __future__ import annotations

import numpy as np

from gridshift.model.scenario import Objective


def unit_cost(obj: Objective, carbon_g_per_kwh: np.ndarray, price_usd_per_mwh: np.ndarray) -> np.ndarray:
    """Objective per MWh drawn: t CO2/MWh for ``carbon``, USD/MWh for ``cost``, USD/MWh with the carbon
    priced in for ``weighted``."""
    t_per_mwh = np.asarray(carbon_g_per_kwh, float) / 1000.0
    if obj.kind == "carbon":
        return t_per_mwh
    if obj.kind == "cost":
        return np.asarray(price_usd_per_mwh, float)
    return np.asarray(price_usd_per_mwh, float) + obj.carbon_price_usd_per_t * t_per_mwh
