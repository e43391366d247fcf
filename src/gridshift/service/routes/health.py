"""``GET /api/v1/health``: database, schema and reconciler status (public; details for an operator token)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from gridshift.service.auth import is_operator
from gridshift.service.db import StateError, current_revision, head_revision
from gridshift.service.deps import ReconcilerDep, StoreDep, threaded
from gridshift.service.schemas import API_PREFIX, DatabaseHealth, HealthOut
from gridshift.service.state import reconciler_status

router = APIRouter(prefix=API_PREFIX, tags=["service"])

PUBLIC_RECONCILER_KEYS = frozenset({"running", "state", "ticks", "errors", "last_tick_at", "last_tick_s", "policy",
                                    "interval_s"})
WRITE_STALL_S = 10.0  # a write transaction holding the lock longer: writes are stuck
BUSY_RECENT_S = 60.0  # a write refused as busy this recently: writes are in trouble


@router.get("/health", response_model=HealthOut,
            summary="Database, schema and reconciler status (details with an operator token)",
            responses={503: {"model": HealthOut, "description": "The database is unreachable or not migrated."}})
@threaded
def health(request: Request, store: StoreDep, reconciler: ReconcilerDep) -> JSONResponse:
    db = DatabaseHealth(backend=store.dialect, reachable=False, expected_revision=head_revision())
    try:
        db.revision = current_revision(store.engine)
        db.reachable = True
        if db.revision != db.expected_revision:
            db.error = f"schema at revision {db.revision or 'none'}, expected {db.expected_revision}"
    except StateError as exc:
        db.error = str(exc)
    ok = db.reachable and db.error is None
    w = store.write_health()  # read without taking the write lock: a stuck writer cannot stall /health
    recent = w["last_busy_at"] is not None and (datetime.now(UTC) - w["last_busy_at"]).total_seconds() < BUSY_RECENT_S
    db.writable = not (recent or (w["write_lock_held_s"] or 0.0) > WRITE_STALL_S)
    rec = reconciler_status(reconciler)
    if is_operator(request, db.reachable):
        db.write_lock_held_s, db.busy_errors, db.last_busy_at = w["write_lock_held_s"], w["busy_errors"], \
            w["last_busy_at"]
    else:  # others see whether things run, not the details
        db.error = None if db.error is None else "database unreachable or not migrated"
        rec = None if rec is None else {k: v for k, v in rec.items() if k in PUBLIC_RECONCILER_KEYS}
    providers = None
    if getattr(request.app.state, "providers", None) is not None:
        puller = request.app.state.providers
        skill = puller.forecast_skill()
        providers = [{**p, "forecast_skill": skill.get(p["zone"]) if skill.get(p["zone"], {}).get("provider")
                      == p["provider"] else None} for p in puller.status()]
        if not is_operator(request, db.reachable):
            providers = [{k: p[k] for k in ("provider", "zone", "stale")} for p in providers]
    body = HealthOut(status=("ok" if db.writable else "degraded") if ok else "unavailable", time=datetime.now(UTC),
                     version=request.app.state.gridshift_version, database=db, reconciler=rec, providers=providers)
    return JSONResponse(jsonable_encoder(body), status_code=200 if ok else 503)
