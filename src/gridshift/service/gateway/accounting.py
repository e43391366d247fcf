"""Per-request accounting: tokens in and out, energy, carbon and cost, per tenant, model and site.

Energy: what the backend reported for the request (``usage.energy_joules`` in its answer or its stream's usage
chunk: not an OpenAI field; a backend that meters its accelerators may add it), else output tokens × the
backend's joules per token (the backends file, else the catalog: board power
over the decode throughput of one accelerator, see :func:`~gridshift.service.gateway.backends.catalog_joules_per_token`);
prompt tokens count ``PREFILL_SHARE`` of an output token (prefill runs batched and compute-bound: an
assumption, stated in docs/service/gateway.md). Carbon = energy × the site zone's carbon intensity; cost =
energy × the zone's price. Every request is one row of the ``gateway_usage`` table in the service's database
(created by migration 0005: the gateway migrates the database when it starts), written by a buffered writer
(flushed every ``FLUSH_S`` and on shutdown); the totals (Prometheus counters and ``GET /gateway/usage``) start
from the stored rows, so they survive a restart. The same transaction adds the rows to ``gateway_demand``
(requests and tokens per minute, model, caller region and SLO class): the observed demand the reconciler
plans inference services with (:meth:`gridshift.service.store.Store.observed_demand`).
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from sqlalchemy import func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from gridshift.model.time import utcnow
from gridshift.service.tables import GatewayDemandRecord, GatewayUsageRecord

log = logging.getLogger("gridshift.gateway")

PREFILL_SHARE = 0.1
FLUSH_S = 0.5
J_PER_KWH = 3.6e6

USAGE = GatewayUsageRecord.__table__
DEMAND = GatewayDemandRecord.__table__
UNKNOWN_REGION = "unknown"


@dataclass
class UsageRecord:
    at: datetime
    tenant: str
    model: str
    site: str | None
    backend: str | None
    accelerator: str | None
    slo_class: str
    endpoint: str
    status: str  # ok | error | aborted
    prompt_tokens: int
    completion_tokens: int
    energy_j: float
    carbon_g: float
    cost_usd: float
    ttft_ms: float | None
    failovers: int
    region: str | None = None


def reported_energy_j(usage: Any) -> float | None:
    """The energy a backend reported for one request (``usage.energy_joules``: a finite number ≥ 0), or None."""
    v = usage.get("energy_joules") if isinstance(usage, dict) else None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        return None
    return float(v)


def usage_of(tokens_in: int, tokens_out: int, j_per_token: float, carbon_g_per_kwh: float | None,
             price_usd_per_mwh: float | None, measured_j: float | None = None) -> tuple[float, float, float]:
    """(energy J, carbon g, cost USD) of one request: the backend's ``measured_j`` if it reported one, else
    the tokens at ``j_per_token``."""
    energy_j = measured_j if measured_j is not None else (tokens_out + PREFILL_SHARE * tokens_in) * j_per_token
    kwh = energy_j / J_PER_KWH
    return energy_j, kwh * (carbon_g_per_kwh or 0.0), kwh / 1000.0 * (price_usd_per_mwh or 0.0)


def demand_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Usage rows summed per minute, model, caller region and SLO class (``gateway_demand``'s rows)."""
    out: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        at = r["at"]
        start = at.replace(second=0, microsecond=0)
        key = (start, r["model"], r.get("region") or UNKNOWN_REGION, r["slo_class"])
        d = out.setdefault(key, {"window_start": start, "model": key[1], "region": key[2], "slo_class": key[3],
                                 "requests": 0, "prompt_tokens": 0, "completion_tokens": 0})
        d["requests"] += 1
        d["prompt_tokens"] += int(r["prompt_tokens"])
        d["completion_tokens"] += int(r["completion_tokens"])
    return list(out.values())


def add_demand(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Add the usage ``rows`` to ``gateway_demand`` (an upsert that adds to a minute already stored)."""
    agg = demand_rows(rows)
    if not agg:
        return
    stmt = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(DEMAND)
    stmt = stmt.on_conflict_do_update(
        index_elements=[DEMAND.c.window_start, DEMAND.c.model, DEMAND.c.region, DEMAND.c.slo_class],
        set_={c: DEMAND.c[c] + stmt.excluded[c] for c in ("requests", "prompt_tokens", "completion_tokens")})
    conn.execute(stmt, agg)


class Accounting:
    """Stores usage rows and keeps the Prometheus counters."""

    SUMS = ("prompt_tokens", "completion_tokens", "energy_j", "carbon_g", "cost_usd", "failovers")

    def __init__(self, engine: Engine, registry: CollectorRegistry) -> None:
        self.engine = engine
        self._buf: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._children: dict[tuple[str, str, str, str], tuple[Any, ...]] = {}  # the counters' label children
        labels = ("tenant", "model")
        self.requests = Counter("gridshift_gateway_requests", "Inference requests answered by the gateway.",
                                ("tenant", "model", "site", "status"), registry=registry)
        self.tokens = Counter("gridshift_gateway_tokens", "Tokens in (prompt) and out (completion).",
                              ("tenant", "model", "direction"), registry=registry)
        self.energy = Counter("gridshift_gateway_energy_joules", "Energy of the requests.", labels, registry=registry)
        self.carbon = Counter("gridshift_gateway_carbon_grams", "Carbon of the requests.", labels, registry=registry)
        # a gauge, not a counter: day-ahead prices go negative, and so may the running total of energy cost
        self.cost = Gauge("gridshift_gateway_cost_usd_total", "Energy cost of the requests so far (negative prices "
                          "make it fall).", labels, registry=registry)
        self.failovers = Counter("gridshift_gateway_failovers", "Attempts moved to another backend or site.",
                                 ("model",), registry=registry)
        self.ttft = Histogram("gridshift_gateway_ttft_seconds", "Time to first byte through the gateway.",
                              ("model", "site"), registry=registry,
                              buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        for row in self.totals(group=("tenant", "model", "site", "status")):
            self.requests.labels(row["tenant"], row["model"], row["site"] or "", row["status"]).inc(row["requests"])
        for row in self.totals():
            self._count(row["tenant"], row["model"], row)

    def _count(self, tenant: str, model: str, r: dict[str, Any]) -> None:
        self.tokens.labels(tenant, model, "in").inc(r["prompt_tokens"])
        self.tokens.labels(tenant, model, "out").inc(r["completion_tokens"])
        self.energy.labels(tenant, model).inc(r["energy_j"])
        self.carbon.labels(tenant, model).inc(r["carbon_g"])
        self.cost.labels(tenant, model).inc(r["cost_usd"])

    def _children_of(self, tenant: str, model: str, site: str, status: str) -> tuple[Any, ...]:
        key = (tenant, model, site, status)
        ch = self._children.get(key)
        if ch is None:
            ch = self._children[key] = (
                self.requests.labels(tenant, model, site, status), self.tokens.labels(tenant, model, "in"),
                self.tokens.labels(tenant, model, "out"), self.energy.labels(tenant, model),
                self.carbon.labels(tenant, model), self.cost.labels(tenant, model))
        return ch

    def record(self, rec: UsageRecord) -> None:
        """Queue the row for the database, then count it (a counter's failure never loses the row)."""
        row = dict(rec.__dict__)  # every field is a scalar: no deep copy needed
        with self._lock:
            self._buf.append(row)
        try:
            requests, tin, tout, energy, carbon, cost = self._children_of(rec.tenant, rec.model, rec.site or "",
                                                                          rec.status)
            requests.inc()
            tin.inc(rec.prompt_tokens)
            tout.inc(rec.completion_tokens)
            energy.inc(rec.energy_j)
            carbon.inc(rec.carbon_g)
            cost.inc(rec.cost_usd)
        except ValueError:
            log.exception("could not count a usage row in the metrics")

    def flush(self) -> int:
        with self._lock:
            rows, self._buf = self._buf, []
        if not rows:
            return 0
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(USAGE), rows)
                add_demand(conn, rows)
        except Exception:  # keep the rows for the next flush: accounting loses nothing on a database hiccup
            log.exception("could not store %d usage rows; retrying", len(rows))
            with self._lock:
                self._buf[:0] = rows
            return 0
        return len(rows)

    def _run(self) -> None:
        while not self._stop.wait(FLUSH_S):
            self.flush()
        self.flush()

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="gateway-accounting", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.flush()

    def totals(self, tenant: str | None = None, group: tuple[str, ...] = ("tenant", "model")) -> list[dict[str, Any]]:
        """Stored totals per ``group`` (pending rows flushed first)."""
        self.flush()
        cols = [USAGE.c[g] for g in group]
        q = select(*cols, func.count().label("requests"),
                   *[func.coalesce(func.sum(USAGE.c[s]), 0).label(s) for s in self.SUMS]).group_by(*cols)
        if tenant is not None:
            q = q.where(USAGE.c.tenant == tenant)
        with self.engine.connect() as conn:
            rows = conn.execute(q.order_by(*cols)).mappings().all()
        return [dict(r) for r in rows]

    def now(self) -> datetime:
        return utcnow()
