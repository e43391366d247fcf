"""Offline work in the shape of OpenAI's Batch API: ``POST /v1/files`` (a JSONL file, purpose ``batch``),
``POST /v1/batches`` (its requests, one endpoint, a completion window), ``GET /v1/batches/{id}``,
``POST /v1/batches/{id}/cancel``, ``GET /v1/batches``, ``GET /v1/files/{id}`` and ``/content``.

A batch is deferred like deferrable batch work: when it is created, the gateway looks at the carbon
intensity the store holds for the sites' zones over the completion window (the signals ``gridshift serve``
pulls ahead, or forecasts pushed to it) and starts the batch at the hour whose cleanest site is cleanest,
leaving ``RESERVE_FRAC`` of the window to finish; without signals ahead it starts at once. Its requests then
run through the router as the ``offline`` SLO class (so they also follow the grid hour by hour), a few at a
time; the answers form the output file (``{"id", "custom_id", "response": {"status_code", "body"}, "error"}``
per line) and failures the error file. Files and batches are rows of ``gateway_files`` and
``gateway_batches`` in the service's database; a batch left running by a stopped gateway runs again from its
start when the gateway comes back (its answers are written only when it completes).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
from datetime import datetime, timedelta
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine

from gridshift.model.time import utcnow
from gridshift.service.gateway.errors import GatewayError
from gridshift.service.tables import GatewayBatchRecord, GatewayFileRecord

log = logging.getLogger("gridshift.gateway")

ENDPOINTS = {"/v1/chat/completions": "chat", "/v1/completions": "completions", "/v1/embeddings": "embeddings"}
WINDOW = re.compile(r"^(\d{1,3})h$")
RESERVE_FRAC = 0.25
MAX_LINES = 50_000
CONCURRENCY = 4

FILES = GatewayFileRecord.__table__
BATCHES = GatewayBatchRecord.__table__


def _ts(t: datetime | None) -> int | None:
    return None if t is None else int(t.timestamp())


def file_object(r: Any) -> dict[str, Any]:
    return {"id": r["id"], "object": "file", "bytes": len(r["content"]), "created_at": _ts(r["created_at"]),
            "filename": r["filename"], "purpose": r["purpose"], "status": "processed"}


def batch_object(r: Any) -> dict[str, Any]:
    return {"id": r["id"], "object": "batch", "endpoint": r["endpoint"], "errors": None,
            "input_file_id": r["input_file_id"], "completion_window": r["completion_window"], "status": r["status"],
            "output_file_id": r["output_file_id"], "error_file_id": r["error_file_id"],
            "created_at": _ts(r["created_at"]), "in_progress_at": _ts(r["in_progress_at"]),
            "expires_at": _ts(r["expires_at"]), "completed_at": _ts(r["completed_at"]),
            "request_counts": {"total": r["total"], "completed": r["completed"], "failed": r["failed"]},
            "metadata": r["meta"], "gridshift_start_at": _ts(r["start_at"]), "gridshift_start_reason": r["start_reason"]}


def parse_upload(content_type: str, body: bytes) -> tuple[str, str, bytes]:
    """(purpose, filename, file bytes) of a multipart/form-data upload (the stdlib's MIME parser)."""
    if not content_type.startswith("multipart/form-data"):
        raise GatewayError(400, "expected multipart/form-data with 'file' and 'purpose'", param="file")
    msg = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            fields[str(name)] = (part.get_filename(), part.get_payload(decode=True) or b"")
    if "file" not in fields:
        raise GatewayError(400, "no 'file' part in the upload", param="file")
    purpose = fields.get("purpose", (None, b""))[1].decode(errors="replace").strip()
    if purpose != "batch":
        raise GatewayError(400, f"purpose must be 'batch', got '{purpose}'", param="purpose")
    return purpose, fields["file"][0] or "upload.jsonl", fields["file"][1]


def parse_lines(content: bytes, endpoint: str) -> list[dict[str, Any]]:
    """The batch's requests; a bad line is a 400 naming its number."""
    out = []
    for i, line in enumerate(content.decode("utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            req = json.loads(line)
        except ValueError:
            raise GatewayError(400, f"input file line {i} is not JSON", param="input_file_id") from None
        if not isinstance(req, dict) or not isinstance(req.get("body"), dict) or "custom_id" not in req:
            raise GatewayError(400, f"input file line {i}: expected custom_id, method, url, body",
                               param="input_file_id")
        if req.get("url", endpoint) != endpoint:
            raise GatewayError(400, f"input file line {i}: url {req.get('url')} is not the batch's {endpoint}",
                               param="input_file_id")
        if not isinstance(req["body"].get("model"), str):
            raise GatewayError(400, f"input file line {i}: body.model missing", param="input_file_id")
        out.append(req)
        if len(out) > MAX_LINES:
            raise GatewayError(400, f"more than {MAX_LINES} requests in one batch", param="input_file_id")
    if not out:
        raise GatewayError(400, "the input file has no requests", param="input_file_id")
    return out


def choose_start(store: Any, zones: list[str], now: datetime, window: timedelta) -> tuple[datetime, str]:
    """The hour within the first (1 − RESERVE_FRAC) of the window whose cleanest zone is cleanest."""
    latest = now + window * (1 - RESERVE_FRAC)
    best: dict[datetime, float] = {}
    for z in zones:
        try:
            pts = store.signals_between(z, "carbon_g_per_kwh", now - timedelta(hours=1), latest)
        except Exception:  # noqa: BLE001 (no signals: start now)
            continue
        for p in pts:
            slot = max(p.at, now)
            best[slot] = min(best.get(slot, float("inf")), float(p.value))
    if not best:
        return now, "no carbon signals ahead: started at once"
    t = min(best, key=lambda k: (best[k], k))
    return t, f"cleanest hour in the window: {best[t]:.0f} g/kWh at the cleanest site"


class Batches:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add_file(self, tenant: str, filename: str, purpose: str, content: bytes) -> dict[str, Any]:
        row = {"id": f"file-{secrets.token_hex(12)}", "tenant": tenant, "filename": filename[:256],
               "purpose": purpose, "created_at": utcnow(), "content": content}
        with self.engine.begin() as c:
            c.execute(insert(FILES), row)
        return file_object(row)

    def _one(self, table: Any, tenant: str | None, row_id: str, what: str) -> Any:
        """The row ``row_id`` of ``table`` (the tenant's own unless ``tenant`` is None), else a 404."""
        q = select(table).where(table.c.id == row_id)
        if tenant is not None:
            q = q.where(table.c.tenant == tenant)
        with self.engine.connect() as c:
            r = c.execute(q).mappings().first()
        if r is None:
            raise GatewayError(404, f"no {what} '{row_id}'", param=f"{what}_id", code="not_found")
        return r

    def file(self, tenant: str | None, file_id: str) -> Any:
        return self._one(FILES, tenant, file_id, "file")

    def create(self, tenant: str, body: dict[str, Any], store: Any, zones: list[str]) -> dict[str, Any]:
        endpoint = body.get("endpoint")
        if endpoint not in ENDPOINTS:
            raise GatewayError(400, f"endpoint must be one of {', '.join(ENDPOINTS)}", param="endpoint")
        m = WINDOW.match(str(body.get("completion_window", "")))
        if m is None or not 1 <= int(m.group(1)) <= 168:
            raise GatewayError(400, "completion_window must be like '24h' (1h to 168h)", param="completion_window")
        f = self.file(tenant, str(body.get("input_file_id")))
        lines = parse_lines(f["content"], endpoint)
        now = utcnow()
        window = timedelta(hours=int(m.group(1)))
        start, why = choose_start(store, zones, now, window)
        row = {"id": f"batch_{secrets.token_hex(12)}", "tenant": tenant, "endpoint": endpoint,
               "input_file_id": f["id"], "completion_window": m.group(0), "status": "validating",
               "created_at": now, "start_at": start, "expires_at": now + window, "in_progress_at": None,
               "completed_at": None, "output_file_id": None, "error_file_id": None, "total": len(lines),
               "completed": 0, "failed": 0, "meta": body.get("metadata"), "start_reason": why}
        with self.engine.begin() as c:
            c.execute(insert(BATCHES), row)
        return batch_object(row)

    def get(self, tenant: str | None, batch_id: str) -> Any:
        return self._one(BATCHES, tenant, batch_id, "batch")

    def list(self, tenant: str | None, limit: int = 20) -> list[dict[str, Any]]:
        q = select(BATCHES).order_by(BATCHES.c.created_at.desc()).limit(limit)
        if tenant is not None:
            q = q.where(BATCHES.c.tenant == tenant)
        with self.engine.connect() as c:
            return [batch_object(r) for r in c.execute(q).mappings()]

    def set(self, batch_id: str, **values: Any) -> None:
        with self.engine.begin() as c:
            c.execute(update(BATCHES).where(BATCHES.c.id == batch_id).values(**values))

    def cancel(self, tenant: str | None, batch_id: str) -> dict[str, Any]:
        r = self.get(tenant, batch_id)
        if r["status"] in ("validating", "in_progress"):
            self.set(batch_id, status="cancelled", completed_at=utcnow())
        return batch_object(self.get(tenant, batch_id))

    def due(self, now: datetime) -> list[Any]:
        q = select(BATCHES).where(BATCHES.c.status.in_(("validating", "in_progress")), BATCHES.c.start_at <= now)
        with self.engine.connect() as c:
            return list(c.execute(q.order_by(BATCHES.c.start_at)).mappings())


async def run_batch(batches: Batches, fwd: Any, row: Any) -> None:
    """Run one batch's requests through the router (offline class) and write its output and error files."""
    from gridshift.service.gateway.proxy import Call

    batches.set(row["id"], status="in_progress", in_progress_at=utcnow(), completed=0, failed=0)
    f = await asyncio.to_thread(batches.file, None, row["input_file_id"])
    lines = parse_lines(f["content"], row["endpoint"])
    out: list[str | None] = [None] * len(lines)
    err: list[str | None] = [None] * len(lines)
    sem = asyncio.Semaphore(CONCURRENCY)
    kind = ENDPOINTS[row["endpoint"]]

    async def one(i: int, req: dict[str, Any]) -> None:
        body = {k: v for k, v in req["body"].items() if k != "stream"}
        rid = f"batch_req_{secrets.token_hex(8)}"
        async with sem:
            call = Call(tenant=row["tenant"], model=body["model"], endpoint=kind, slo_class="offline",
                        region=fwd.config.default_region, residency=None, body=body)
            try:
                if body["model"] not in fwd.registry.models():
                    raise GatewayError(404, f"model '{body['model']}' is not served here", code="model_not_found")
                resp = await fwd.forward(call)
                data = json.loads(bytes(resp.body))
                if resp.status_code >= 400:
                    raise GatewayError(resp.status_code, str(data.get("error", {}).get("message")))
                out[i] = json.dumps({"id": rid, "custom_id": req["custom_id"], "response": {
                    "status_code": resp.status_code, "request_id": rid, "body": data}, "error": None})
            except GatewayError as e:
                err[i] = json.dumps({"id": rid, "custom_id": req["custom_id"], "response": None,
                                     "error": {"code": e.code or "error", "message": e.message}})

    await asyncio.gather(*(one(i, r) for i, r in enumerate(lines)))
    if (await asyncio.to_thread(batches.get, None, row["id"]))["status"] == "cancelled":
        return
    ok = [x for x in out if x is not None]
    bad = [x for x in err if x is not None]
    out_id = (await asyncio.to_thread(batches.add_file, row["tenant"], f"{row['id']}_output.jsonl", "batch_output",
                                      ("\n".join(ok) + "\n").encode()))["id"] if ok else None
    err_id = (await asyncio.to_thread(batches.add_file, row["tenant"], f"{row['id']}_errors.jsonl", "batch_output",
                                      ("\n".join(bad) + "\n").encode()))["id"] if bad else None
    batches.set(row["id"], status="completed", completed_at=utcnow(), output_file_id=out_id, error_file_id=err_id,
                completed=len(ok), failed=len(bad))


async def batch_clock(batches: Batches, fwd: Any, every_s: float = 2.0) -> None:
    """Start the batches whose hour has come (one at a time); expire those past their window."""
    while True:
        try:
            now = utcnow()
            for row in await asyncio.to_thread(batches.due, now):
                if row["expires_at"] <= now:
                    batches.set(row["id"], status="expired", completed_at=now)
                    continue
                await run_batch(batches, fwd, row)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 (the clock keeps going)
            log.exception("batch clock")
        await asyncio.sleep(every_s)
