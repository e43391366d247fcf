"""Forecasts computed once per epoch and shared: every consumer that asks for the same forecaster (name and
parameters), signal and slot gets the same array, computed once. The cache lives on the ``Signals`` object
it forecasts and keeps only the current slot's entries."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np


def forecaster_key(name: str, params: dict | None) -> str:
    return name + json.dumps(params or {}, sort_keys=True, default=str)


def shared(signals, key: tuple, t: int, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """``compute()`` once per (``key``, slot ``t``) for this ``signals`` object; the result is read-only."""
    store = vars(signals).setdefault("_shared_forecasts", {"t": None, "items": {}})
    if store["t"] != t:
        store["t"], store["items"] = t, {}
    hit = store["items"].get(key)
    if hit is None:
        hit = np.asarray(compute())
        hit.setflags(write=False)
        store["items"][key] = hit
    return hit
