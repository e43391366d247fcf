"""Warm starts of the planning LP across epochs whose LPs differ in shape.

From one epoch to the next the planning LP keeps most of its structure but not its shape: classes come and
go, the periods move on by an hour, start-time columns change. HiGHS can only take a basis as a status per
column and row, so each column and row gets a key from what it stands for — its kind, class, pool, site,
service, region, cap level and period — and the next LP's columns and rows take the status of the previous
LP's column or row with the same key (a period matched to the previous LP's period holding its start; a
class by its speed row, allowed pools and deadline hour, whatever its index). What has no match starts
nonbasic at zero (columns) or basic (rows, their slack). The count of basic variables need not come out
right: the basis is passed as *alien*, and HiGHS completes or trims it when it factorises.
"""

from __future__ import annotations

from dataclasses import dataclass

import highspy
import numpy as np

_MUL = np.int64(1_000_003)
_STATUS = (highspy.HighsBasisStatus.kLower, highspy.HighsBasisStatus.kBasic, highspy.HighsBasisStatus.kUpper,
           highspy.HighsBasisStatus.kZero, highspy.HighsBasisStatus.kNonbasic)
BASIC = 1


def key(kind: int, *parts: np.ndarray) -> np.ndarray:
    """int64 key per element of the broadcast ``parts`` (wrapping arithmetic: a hash, collisions are rare and
    only cost a worse start)."""
    arrs = np.broadcast_arrays(*[np.asarray(p, np.int64) for p in parts])
    with np.errstate(over="ignore"):
        h = np.full(arrs[0].shape, kind, np.int64)
        for a in arrs:
            h = h * _MUL + (a + 2)
    return h & np.int64(0x7FFF_FFFF_FFFF_FFFF)  # >= 0: -1 means no key


def pkey(kind: int, per: np.ndarray, *parts: np.ndarray) -> np.ndarray:
    """:func:`key` of ``(*parts, per)``, -1 (no key) where the period ``per`` has none."""
    return np.where(np.asarray(per) >= 0, key(kind, *parts, per), -1)


class ClassIds:
    """Stable small ids for classes across epochs, by speed row, allowed pools and deadline hour."""

    def __init__(self) -> None:
        self._ids: dict[bytes, int] = {}

    def __call__(self, speed: np.ndarray, allowed: np.ndarray, deadline_abs_h: np.ndarray) -> np.ndarray:
        dl = np.where(np.isfinite(deadline_abs_h), np.round(deadline_abs_h), -1).astype(np.int64)
        out = np.empty(speed.shape[0], np.int64)
        for c in range(speed.shape[0]):
            k = speed[c].tobytes() + np.packbits(allowed[c]).tobytes() + dl[c].tobytes()
            out[c] = self._ids.setdefault(k, len(self._ids))
        if len(self._ids) > 1_000_000:  # a very long run: forget old classes
            self._ids.clear()
        return out


@dataclass
class Keyed:
    """Keys of one LP's columns and rows (-1: no key) and, after solving, their basis statuses."""

    col_keys: np.ndarray
    row_keys: np.ndarray
    period_start_h: np.ndarray  # [T] absolute start of each period, hours since the scenario start
    end_h: float  # absolute end of the last period
    col_status: np.ndarray | None = None
    row_status: np.ndarray | None = None


def match_periods(prev: Keyed | None, start_h: np.ndarray) -> np.ndarray:
    """Per period of this LP, the start (in minutes) of the previous LP's period that holds its start, as the
    period's key for looking up the previous basis (-1 where none does: its columns and rows get no key)."""
    if prev is None or not prev.period_start_h.size:
        return np.full(start_h.size, -1, np.int64)
    i = np.searchsorted(prev.period_start_h, start_h + 1e-9, side="right") - 1
    ok = (i >= 0) & (start_h < prev.end_h - 1e-9)
    return np.where(ok, np.round(prev.period_start_h[np.maximum(i, 0)] * 60), -1).astype(np.int64)


def own_periods(start_h: np.ndarray) -> np.ndarray:
    return np.round(start_h * 60).astype(np.int64)


def basis_from(prev: Keyed, col_keys: np.ndarray, row_keys: np.ndarray, row_lower: np.ndarray,
               col_upper: np.ndarray) -> highspy.HighsBasis | None:
    """An alien basis for the LP whose columns and rows have ``col_keys`` and ``row_keys`` (keys of its
    periods matched to ``prev``'s), from ``prev``'s statuses; None if too little matches to be worth it."""
    if prev.col_status is None:
        return None
    cs = _lookup(prev.col_keys, prev.col_status, col_keys, default=0)  # unmatched columns: at zero
    rs = _lookup(prev.row_keys, prev.row_status, row_keys, default=BASIC)  # unmatched rows: slack basic
    cs = np.where((cs == 2) & ~np.isfinite(col_upper), 0, cs)  # at an upper bound that is no more
    rs = np.where((rs == 0) & ~np.isfinite(row_lower), 2, rs)
    matched = (col_keys >= 0) & np.isin(col_keys, prev.col_keys)
    if matched.mean() < 0.3:
        return None
    b = highspy.HighsBasis()
    b.col_status = [_STATUS[s] for s in cs.tolist()]
    b.row_status = [_STATUS[s] for s in rs.tolist()]
    b.alien = True
    b.valid = True
    return b


def statuses(basis: highspy.HighsBasis) -> tuple[np.ndarray, np.ndarray]:
    cs, rs = basis.col_status, basis.row_status
    return np.fromiter(map(int, cs), np.int8, len(cs)), np.fromiter(map(int, rs), np.int8, len(rs))


def _lookup(keys: np.ndarray, status: np.ndarray, want: np.ndarray, default: int) -> np.ndarray:
    ok = keys >= 0
    k, s = keys[ok], status[ok]
    o = np.argsort(k, kind="stable")
    k, s = k[o], s[o]
    i = np.clip(np.searchsorted(k, want), 0, max(k.size - 1, 0))
    hit = (want >= 0) & (k.size > 0) & (k[i] == want if k.size else False)
    return np.where(hit, s[i] if k.size else default, default).astype(np.int8)
