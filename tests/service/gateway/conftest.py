"""Fixtures of the gateway tests: a service database with tokens, simulated backends as separate processes on
loopback (one per site), and ``gridshift gateway`` itself as a child process started through the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gridshift.service.db import upgrade
from gridshift.service.store import Store
from gridshift.testing.gateway_processes import ChildProcess, gateway_process, sim_backend


@dataclass
class World:
    dir: Path
    db: str
    tenant_key: str
    operator_key: str
    other_keys: dict[str, str]
    backends: dict[str, ChildProcess]
    config_path: Path
    gateway: ChildProcess | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def start(self) -> ChildProcess:
        self.gateway = gateway_process(["--db", self.db, "--backends", str(self.config_path), "--rate-per-s", "500",
                                        "--burst", "500", "--grid-refresh-s", "3600"], log_path=self.dir / "gw.log")
        return self.gateway

    def restart(self) -> ChildProcess:
        assert self.gateway is not None
        self.gateway.stop()
        return self.start()

    def store(self) -> Store:
        return Store(self.db)


def make_world(tmp: Path, sites: list[dict[str, Any]], backend_opts: dict[str, dict[str, Any]],
               extra_config: dict[str, Any] | None = None) -> World:
    db = f"sqlite:///{tmp / 'gs.db'}"
    upgrade(db)
    st = Store(db)
    _, tenant = st.create_token("app", "tenant", "acme")
    _, op = st.create_token("ops", "operator")
    others = {t: st.create_token(f"{t}-app", "tenant", t)[1] for t in ("eu-only", "tiny", "nowhere")}
    st.close()
    procs = {}
    for name, opts in backend_opts.items():
        procs[name] = sim_backend(tmp / f"{name}.log", **opts)
    for s in sites:
        for b in s["backends"]:
            b["url"] = procs[b.pop("proc")].base
    cfg = {"sites": sites, **(extra_config or {})}
    path = tmp / "backends.yaml"
    path.write_text(json.dumps(cfg))
    return World(tmp, db, tenant, op, others, procs, path)


SITES = [
    {"name": "dirty", "zone": "PL", "region": "europe-central2", "residency": "eu", "carbon_g_per_kwh": 700,
     "price_usd_per_mwh": 60, "backends": [{"id": "dirty-1", "proc": "dirty", "accelerator": "H100"}]},
    {"name": "clean", "zone": "SE", "region": "europe-north1", "residency": "eu", "carbon_g_per_kwh": 30,
     "price_usd_per_mwh": 60, "backends": [{"id": "clean-1", "proc": "clean", "accelerator": "H100"},
                                           {"id": "clean-2", "proc": "clean2", "accelerator": "H100"}]},
    {"name": "far", "zone": "US-CAL-CISO", "region": "us-west1", "residency": "us", "carbon_g_per_kwh": 200,
     "price_usd_per_mwh": 60, "backends": [{"id": "far-1", "proc": "far", "accelerator": "A100"}]},
]
CONFIG = {
    "default_region": "europe-west3",
    "latency_ms": {"europe-west3": {"europe-central2": 20, "europe-north1": 30, "us-west1": 150}},
    "tenants": {"eu-only": {"residency": ["eu"]}, "tiny": {"rate_per_s": 0.2, "burst": 1},
                "nowhere": {"residency": ["mars"]}},
    "slo": {"interactive": {"ttft_ms": 1000}},
    "cooldown_s": 1.0, "stream_idle_timeout_s": 1.5, "first_byte_timeout_s": 5, "request_timeout_s": 3,
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    import copy

    tmp = tmp_path_factory.mktemp("gateway")
    w = make_world(tmp, copy.deepcopy(SITES), {"dirty": {"ttft_ms": 10, "itl_ms": 2}, "clean": {"ttft_ms": 10, "itl_ms": 2},
                                               "clean2": {"ttft_ms": 10, "itl_ms": 2},
                                               "far": {"ttft_ms": 10, "itl_ms": 2}}, copy.deepcopy(CONFIG))
    try:
        w.start()
        yield w
    finally:
        if w.gateway is not None:
            w.gateway.stop()
        for p in w.backends.values():
            p.stop()
