"""Fitted weights kept between calls, keyed by the refresh point and the exact data they were fitted on.

Models that refit on the refresh grid (:mod:`gridshift.forecast.refit`) fit, at a refresh point ``r``, from
``series[:, : r + 1]`` only. A planner calling ``predict`` every slot on a growing history therefore asks for the
same fit again and again until the next refresh point. :class:`FitCache` keys each fit by ``r``, the absolute
slot of ``series[:, 0]``, the call's shape parameters and a digest of ``series[:, : r + 1]`` (NaNs included), so a
cached fit is reused only where refitting would read exactly the same numbers — the result is the uncached one.
Least recently used fits are dropped beyond ``size``.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np


class FitCache:
    """Least-recently-used store of per-refresh-point fits keyed by :meth:`keys`."""

    def __init__(self, size: int = 256) -> None:
        self.size = int(size)
        self._d: OrderedDict = OrderedDict()
        self.hits = self.misses = 0

    @staticmethod
    def keys(y: np.ndarray, points: np.ndarray, t0_abs: int, extra: tuple) -> dict[int, bytes]:
        """A key per refresh point in ``points``: a digest of ``y[:, : r + 1]`` with ``t0_abs`` and ``extra``."""
        pts = sorted({int(r) for r in np.atleast_1d(points)})
        yt = np.ascontiguousarray(y[:, : pts[-1] + 1].T)  # slot-major: every prefix is one contiguous block
        h = hashlib.blake2b(repr((int(t0_abs), y.shape[0], yt.dtype.str, extra)).encode(), digest_size=20)
        out, prev = {}, 0
        for r in pts:
            h.update(yt[prev: r + 1].tobytes())
            prev = r + 1
            out[r] = h.copy().digest()
        return out

    def get(self, key: bytes):
        v = self._d.get(key)
        if v is None:
            self.misses += 1
        else:
            self.hits += 1
            self._d.move_to_end(key)
        return v

    def put(self, key: bytes, value) -> None:
        self._d[key] = value
        self._d.move_to_end(key)
        while len(self._d) > self.size:
            self._d.popitem(last=False)

    def lookup(self, keys: dict[int, bytes]) -> dict | None:
        """The fits for every key, or None if any is missing."""
        got = {}
        for r, k in keys.items():
            v = self.get(k)
            if v is None:
                return None
            got[r] = v
        return got
