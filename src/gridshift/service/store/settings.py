"""Settings changed at run time (the planning policy), with who changed them and when."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from gridshift.service.store.base import SETTINGS, StoreBase, utcnow


class SettingStore(StoreBase):
    """Settings: :meth:`get_setting`, :meth:`put_setting` (an upsert)."""

    def get_setting(self, key: str) -> dict[str, Any] | None:
        """A setting changed at run time (``put_setting``), or None if never set."""
        with self._tx(readonly=True) as conn:
            row = conn.execute(select(SETTINGS.c.value).where(SETTINGS.c.key == key)).first()
        return None if row is None else dict(row[0])

    def put_setting(self, key: str, value: Mapping[str, Any], *, actor: str | None = None) -> None:
        """Store (or replace) a setting, with who changed it and when: one ``INSERT ... ON CONFLICT (key) DO
        UPDATE``, so two first writes of the same key do not race."""
        now = utcnow()
        doc = {"value": dict(value), "updated_at": now, "updated_by": actor}
        stmt = self._upsert(SETTINGS).values(key=key, **doc)
        stmt = stmt.on_conflict_do_update(index_elements=[SETTINGS.c.key], set_=doc)
        with self._tx() as conn:
            conn.execute(stmt)
