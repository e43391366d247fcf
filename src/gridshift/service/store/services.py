"""Inference services: specs per tenant and the replica targets the reconciler sets."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from sqlalchemy import delete, insert, select, update

from gridshift.model.service import Service
from gridshift.service.store.base import (
    SERVICES,
    InvalidSpec,
    NotFound,
    PermissionDenied,
    StoreBase,
    VersionConflict,
    _validation_error,
    utcnow,
)
from gridshift.service.store.rows import Principal, ServiceRow, _service


class ServiceStore(StoreBase):
    """Inference services, scoped by :class:`Principal` like jobs."""

    def _service_scope(self, principal: Principal):  # noqa: ANN202
        if principal.role == "operator":
            return None
        if principal.role == "tenant":
            return SERVICES.c.tenant == principal.tenant
        raise PermissionDenied(f"role '{principal.role}' cannot read or change services")

    def put_service(self, principal: Principal, spec: Mapping[str, Any] | Service,
                    replica_targets: Mapping[str, Mapping[str, int]] | None = None) -> ServiceRow:
        """Create or replace an inference service (a tenant only its own)."""
        data = spec.model_dump(mode="json") if isinstance(spec, Service) else dict(spec)
        if principal.role == "tenant":
            if data.get("tenant") not in (None, principal.tenant):
                raise PermissionDenied(f"tenant '{principal.tenant}' cannot define services for '{data['tenant']}'")
            data["tenant"] = principal.tenant
        elif principal.role != "operator":
            raise PermissionDenied(f"role '{principal.role}' cannot change services")
        try:
            svc = Service.model_validate(data)
        except ValidationError as exc:
            raise _validation_error("service spec", exc) from None
        targets = _clean_targets(replica_targets or {})
        now = utcnow()
        with self._tx() as conn:
            row = conn.execute(select(SERVICES).where(SERVICES.c.name == svc.name).with_for_update()).mappings().first()
            if row is not None and principal.role == "tenant" and row["tenant"] != principal.tenant:
                raise PermissionDenied(f"service '{svc.name}' belongs to another tenant")
            values = {"name": svc.name, "tenant": svc.tenant, "spec": svc.model_dump(mode="json"),
                      "replica_targets": targets if replica_targets is not None or row is None
                      else row["replica_targets"], "updated_at": now,
                      "version": 1 if row is None else row["version"] + 1}
            if row is None:
                conn.execute(insert(SERVICES), values)
            else:
                conn.execute(update(SERVICES).where(SERVICES.c.name == svc.name).values(**values))
            return _service(values)

    def get_service(self, principal: Principal, name: str) -> ServiceRow:
        q = select(SERVICES).where(SERVICES.c.name == name)
        scope = self._service_scope(principal)
        if scope is not None:
            q = q.where(scope)
        with self._tx(readonly=True) as conn:
            row = conn.execute(q).mappings().first()
        if row is None:
            raise NotFound(f"no service '{name}'")
        return _service(row)

    def list_services(self, principal: Principal) -> list[ServiceRow]:
        q = select(SERVICES)
        scope = self._service_scope(principal)
        if scope is not None:
            q = q.where(scope)
        with self._tx(readonly=True) as conn:
            return [_service(r) for r in conn.execute(q.order_by(SERVICES.c.name)).mappings()]

    def set_replica_targets(self, name: str, targets: Mapping[str, Mapping[str, int]], *,
                            expect_version: int | None = None) -> ServiceRow:
        """Set a service's replica targets ``{site: {accelerator type: replicas}}`` (the reconciler's job)."""
        clean = _clean_targets(targets)
        with self._tx() as conn:
            row = conn.execute(select(SERVICES).where(SERVICES.c.name == name).with_for_update()).mappings().first()
            if row is None:
                raise NotFound(f"no service '{name}'")
            if expect_version is not None and row["version"] != expect_version:
                raise VersionConflict(f"service '{name}' is at version {row['version']}, not {expect_version}")
            values = {"replica_targets": clean, "updated_at": utcnow(), "version": row["version"] + 1}
            conn.execute(update(SERVICES).where(SERVICES.c.name == name).values(**values))
            return _service({**row, **values})

    def delete_service(self, principal: Principal, name: str) -> bool:
        q = delete(SERVICES).where(SERVICES.c.name == name)
        scope = self._service_scope(principal)
        if scope is not None:
            q = q.where(scope)
        with self._tx() as conn:
            return conn.execute(q).rowcount == 1


def _clean_targets(targets: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for site, per_type in targets.items():
        if not isinstance(per_type, Mapping):
            raise InvalidSpec(f"replica targets for site '{site}' must map accelerator types to counts")
        out[str(site)] = {}
        for acc, n in per_type.items():
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise InvalidSpec(f"replica target {site}/{acc} must be an integer >= 0", field="replica_targets")
            out[str(site)][str(acc)] = n
    return out
