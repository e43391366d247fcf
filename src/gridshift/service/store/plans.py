"""Plans: the reconciler's newest plans with their items (where, when and why per job)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import delete, func, insert, select

from gridshift.service.store.base import PLAN_ITEMS, PLANS, InvalidSpec, _utc, utcnow
from gridshift.service.store.jobs import JobStore
from gridshift.service.store.rows import Plan, PlanItem, Principal, _plan_item


class PlanStore(JobStore):
    """Plans: :meth:`save_plan`, :meth:`current_plan`, :meth:`job_plan`."""

    def save_plan(self, policy: str, items: Iterable[PlanItem | Mapping[str, Any]], summary: Mapping[str, Any],
                  *, horizon_s: float | None = None, keep: int | None = 100) -> Plan:
        """Store a new current plan; keeps the newest ``keep`` plans (None = all)."""
        now = utcnow()
        clean: list[PlanItem] = []
        for it in items:
            if isinstance(it, Mapping):
                try:
                    it = PlanItem(**it)
                except TypeError as exc:
                    raise InvalidSpec(f"plan item {len(clean)}: {exc}") from None
            start = None if it.start_at is None else _utc(it.start_at, "plan item start_at")
            clean.append(PlanItem(it.job_id, it.site, it.accelerator, None if it.gang is None else int(it.gang),
                                  start, it.power_cap_frac, it.why))
        with self._tx() as conn:
            plan_id = conn.execute(insert(PLANS).returning(PLANS.c.id),
                                   {"created_at": now, "policy": policy, "horizon_s": horizon_s,
                                    "summary": dict(summary)}).scalar_one()
            if clean:
                conn.execute(insert(PLAN_ITEMS), [{"plan_id": plan_id, **it.__dict__} for it in clean])
            if keep is not None:
                cutoff = conn.execute(select(PLANS.c.id).order_by(PLANS.c.id.desc()).offset(max(keep, 1)).limit(1)
                                      ).scalar()
                if cutoff is not None:
                    conn.execute(delete(PLAN_ITEMS).where(PLAN_ITEMS.c.plan_id <= cutoff))
                    conn.execute(delete(PLANS).where(PLANS.c.id <= cutoff))
        return Plan(plan_id, now, policy, horizon_s, dict(summary), tuple(clean))

    def current_plan(self) -> Plan | None:
        """The newest plan with its items, or None."""
        with self._tx(readonly=True) as conn:
            p = conn.execute(select(PLANS).order_by(PLANS.c.id.desc()).limit(1)).mappings().first()
            if p is None:
                return None
            rows = conn.execute(select(PLAN_ITEMS).where(PLAN_ITEMS.c.plan_id == p["id"])
                                .order_by(PLAN_ITEMS.c.id)).mappings()
            items = tuple(_plan_item(r) for r in rows)
        return Plan(p["id"], p["created_at"], p["policy"], p["horizon_s"], p["summary"], items)

    def job_plan(self, principal: Principal, job_id: str) -> list[PlanItem]:
        """The current plan's items for one job (where, when and why)."""
        with self._tx(readonly=True) as conn:
            job_id = self._select_job(conn, principal, job_id, lock=False).id
            latest = select(func.max(PLANS.c.id)).scalar_subquery()
            rows = conn.execute(select(PLAN_ITEMS).where(PLAN_ITEMS.c.plan_id == latest, PLAN_ITEMS.c.job_id == job_id)
                                .order_by(PLAN_ITEMS.c.id)).mappings()
            return [_plan_item(r) for r in rows]

