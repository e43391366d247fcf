"""Forecasts computed once per epoch and shared: every consumer that asks for the same forecaster (name and
parameters), signal and slot gets the same array, computed once — within one policy's run and across the
policies of a run (they are simulated one after another on the same ``Signals``). The cache lives on the
object it forecasts and keeps the most recent ``MAX_ENTRIES`` forecasts."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

MAX_ENTRIES = 50_000


def forecaster_key(name: str, params: dict | None) -> str:
    return name + json.dumps(params or {}, sort_keys=True, default=str)


def shared(owner, key: tuple, t: int, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """``compute()`` once per (``key``, slot ``t``) for ``owner``; the result is read-only."""
    store = vars(owner).setdefault("_shared_forecasts", OrderedDict())
    k = (key, t)
    hit = store.get(k)
    if hit is None:
        hit = np.asarray(compute())
        hit.setflags(write=False)
        store[k] = hit
        if len(store) > MAX_ENTRIES:
            store.popitem(last=False)
    return hit
