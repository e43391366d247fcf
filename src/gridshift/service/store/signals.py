"""Grid signal values keyed by (zone, signal, at): upserted in batches, read by window."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select

from gridshift.service.store.base import SIGNALS, InvalidSpec, StoreBase, _utc
from gridshift.service.store.rows import SignalPoint


class SignalStore(StoreBase):
    """Signal values: :meth:`upsert_signals`, :meth:`signals_between`."""

    def upsert_signals(self, rows: Iterable[SignalPoint | Mapping[str, Any]]) -> int:
        """Insert or replace signal values keyed by (zone, signal, at); returns the number of rows given."""
        values = []
        for r in rows:
            m = r.__dict__ if isinstance(r, SignalPoint) else r
            try:
                v = float(m["value"])
                item = {"zone": str(m["zone"]), "signal": str(m["signal"]), "at": _utc(m["at"], "signal time"),
                        "value": v, "source": str(m.get("source", "unknown"))}
            except (KeyError, TypeError, ValueError) as exc:
                raise InvalidSpec(f"signal row {len(values)}: {exc!r}") from None
            if not math.isfinite(v):
                raise InvalidSpec(f"signal row {len(values)}: value must be finite", field="value")
            values.append(item)
        if not values:
            return 0
        stmt = self._upsert(SIGNALS)
        stmt = stmt.on_conflict_do_update(index_elements=["zone", "signal", "at"],
                                          set_={"value": stmt.excluded.value, "source": stmt.excluded.source})
        with self._tx() as conn:
            conn.execute(stmt, values)
        return len(values)

    def signals_between(self, zone: str, signal: str, start: datetime, end: datetime) -> list[SignalPoint]:
        """Values with ``start <= at < end``, in time order."""
        q = (select(SIGNALS).where(SIGNALS.c.zone == zone, SIGNALS.c.signal == signal,
                                   SIGNALS.c.at >= _utc(start, "start"), SIGNALS.c.at < _utc(end, "end"))
             .order_by(SIGNALS.c.at))
        with self._tx(readonly=True) as conn:
            return [SignalPoint(r["zone"], r["signal"], r["at"], r["value"], r["source"])
                    for r in conn.execute(q).mappings()]
