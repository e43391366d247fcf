"""The model gateway's added latency: the same non-streaming requests sent directly to simulated backends,
through ``gridshift gateway`` and through LiteLLM's proxy (if a ``litellm`` executable is given), on loopback,
all processes on the same machine (2 cores shared by backends, proxy and load generator).

Load is open-loop at fixed rates (``--rates``, requests/s): request ``i`` is sent at ``t0 + i / rate`` whatever
the answers before it, from one asyncio process with aiohttp's client (keep-alive pool), and its latency is
measured at the client from that scheduled time (so a target, or a load generator, that falls behind is charged
for it: no coordinated omission). At most ``--max-inflight`` requests are outstanding; a send that would pass
that is counted as ``shed`` and the target as saturated. Each rate runs ``--rounds`` rounds; a round gives each
target ``--warmup`` s then ``--seconds`` s, targets taking turns so that a change in the shared machine's load
falls on all of them. Percentiles pool a target's rounds; added latency = the target's percentile minus the
direct one's. CPU per request: the answering process's own user + system time (``/proc``), and the load
generator's. Then ``--streams`` concurrent streams through the gateway (each ``--stream-tokens`` tokens):
completed, failed, TTFT. Memory: the gateway's RSS sampled over ``--soak-s`` more seconds of load.
Writes ``benchmarks/results/bench_gateway_overhead.json``:
``{"gridshift": {"p50_ms", "p99_ms", "rps"}, "litellm": {...}, "direct": {...}}`` at the highest rate, plus every
rate in ``by_rate``, streams, memory, settings, the machine's load average and the commit.

    python benchmarks/bench_gateway_overhead.py [--rates 100,500] [--rounds 3] [--seconds 10] [--litellm PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx
import numpy as np
from _provenance import git_state  # benchmarks/ is on sys.path when run as a script

from gridshift.service.db import upgrade
from gridshift.service.store import Store
from gridshift.testing.gateway_processes import ChildProcess, gateway_process, sim_backend

OUT = Path(__file__).resolve().parent / "results" / "bench_gateway_overhead.json"
LITELLM_KEY = "sk-" + secrets.token_hex(24)
BODY = {"model": "sim-model", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 1}


async def load(url: str, headers: dict[str, str], seconds: float, concurrency: int, body: dict) -> dict:
    lat: list[float] = []
    errors = 0
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=concurrency + 8), timeout=30) as c:
        end = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < end:
                t = time.perf_counter()
                try:
                    r = await c.post(url, json=body, headers=headers)
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    lat.append((time.perf_counter() - t) * 1000.0)
                else:
                    errors += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    a = np.asarray(lat)
    return {"p50_ms": round(float(np.percentile(a, 50)), 3), "p99_ms": round(float(np.percentile(a, 99)), 3),
            "rps": round(len(a) / wall, 1), "requests": len(a), "errors": errors}


async def open_loop(url: str, headers: dict[str, str], rate: float, seconds: float, max_inflight: int,
                    body: dict) -> dict:
    """``rate × seconds`` requests sent on a fixed schedule; latency from each one's scheduled time (ms)."""
    lat: list[float] = []
    errors = shed = inflight = 0
    data = json.dumps(body).encode()
    h = {"content-type": "application/json", **headers}
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as s:
        async def one(at: float) -> None:
            nonlocal errors, inflight
            inflight += 1
            try:
                async with s.post(url, data=data, headers=h) as r:
                    await r.read()
                    ok = r.status == 200
            except (aiohttp.ClientError, TimeoutError):
                ok = False
            inflight -= 1
            if ok:
                lat.append((time.perf_counter() - at) * 1000.0)
            else:
                errors += 1

        n = int(rate * seconds)
        tasks = []
        c0 = time.process_time()
        t0 = time.perf_counter() + 0.05
        for i in range(n):
            at = t0 + i / rate
            wait = at - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            if inflight >= max_inflight:
                shed += 1
                continue
            tasks.append(asyncio.create_task(one(at)))
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - t0
        gen_cpu = time.process_time() - c0
    return {"latencies_ms": lat, "rps": round(len(lat) / wall, 1), "requests": len(lat), "errors": errors,
            "shed": shed, "generator_cpu_ms_per_request": round(1000 * gen_cpu / max(1, len(lat) + errors), 3)}


def summary(rounds: list[dict], rate: float) -> dict:
    a = np.concatenate([np.asarray(r["latencies_ms"]) for r in rounds]) if rounds else np.zeros(1)
    n = sum(r["requests"] for r in rounds)
    return {"rate_target": rate, "p50_ms": round(float(np.percentile(a, 50)), 3),
            "p90_ms": round(float(np.percentile(a, 90)), 3), "p99_ms": round(float(np.percentile(a, 99)), 3),
            "rps": round(float(np.mean([r["rps"] for r in rounds])), 1), "requests": n,
            "errors": sum(r["errors"] for r in rounds), "shed": sum(r["shed"] for r in rounds),
            "saturated": any(r["shed"] > 0 or r["rps"] < 0.97 * rate for r in rounds),
            "rounds_p50_ms": [round(float(np.percentile(r["latencies_ms"], 50)), 3) if r["latencies_ms"] else None
                              for r in rounds],
            "rounds_p99_ms": [round(float(np.percentile(r["latencies_ms"], 99)), 3) if r["latencies_ms"] else None
                              for r in rounds],
            "cpu_ms_per_request": round(float(np.mean([r["cpu_ms_per_request"] for r in rounds])), 3),
            "generator_cpu_ms_per_request": round(float(np.mean([r["generator_cpu_ms_per_request"]
                                                                  for r in rounds])), 3)}


async def streams(url: str, headers: dict[str, str], n: int, tokens: int) -> dict:
    body = {**BODY, "max_tokens": tokens, "stream": True}
    ttft: list[float] = []
    done = failed = 0
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=n + 8), timeout=60) as c:
        async def one() -> None:
            nonlocal done, failed
            t = time.perf_counter()
            first = None
            try:
                async with c.stream("POST", url, json=body, headers=headers) as r:
                    async for line in r.aiter_lines():
                        if first is None and line.startswith("data: {"):
                            first = (time.perf_counter() - t) * 1000.0
                        if line == "data: [DONE]":
                            done += 1
                            break
                    else:
                        failed += 1
            except httpx.HTTPError:
                failed += 1
            if first is not None:
                ttft.append(first)

        await asyncio.gather(*(one() for _ in range(n)))
    a = np.asarray(ttft) if ttft else np.zeros(1)
    return {"streams": n, "completed": done, "failed": failed, "ttft_p50_ms": round(float(np.percentile(a, 50)), 2),
            "ttft_p99_ms": round(float(np.percentile(a, 99)), 2)}


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (and its reaped children) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def litellm_proxy(exe: str, backends: list[ChildProcess], tmp: Path) -> ChildProcess:
    cfg = tmp / "litellm.yaml"
    lines = ["model_list:"]
    for b in backends:
        lines += ["  - model_name: sim-model", "    litellm_params:", "      model: openai/sim-model",
                  f"      api_base: {b.base}/v1", "      api_key: none"]
    lines += ["general_settings:", f"  master_key: {LITELLM_KEY}",  # it authenticates, as the gateway does
              "litellm_settings:", "  drop_params: true", "  telemetry: false",
              "router_settings:", "  routing_strategy: simple-shuffle"]
    cfg.write_text("\n".join(lines) + "\n")
    env = {**os.environ, "LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False"}
    return ChildProcess([exe, "--config", str(cfg), "--host", "127.0.0.1", "--port", "{port}", "--num_workers", "1"],
                        log_path=tmp / "litellm.log", ready_path="/health/liveliness", timeout_s=180, env=env)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", default="100,500", help="Open-loop rates, requests/s (comma-separated).")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--max-inflight", type=int, default=512)
    ap.add_argument("--concurrency", type=int, default=32, help="Closed-loop clients of the memory soak.")
    ap.add_argument("--streams", type=int, default=200)
    ap.add_argument("--stream-tokens", type=int, default=20)
    ap.add_argument("--soak-s", type=float, default=60.0)
    ap.add_argument("--litellm", default=None, help="Path of the litellm executable (LiteLLM's proxy).")
    ap.add_argument("--json", type=Path, default=OUT)
    args = ap.parse_args()

    load0 = [round(x, 2) for x in os.getloadavg()]
    tmp = Path(tempfile.mkdtemp(prefix="bench-gw-"))
    db = f"sqlite:///{tmp / 'gs.db'}"
    upgrade(db)
    with Store(db) as st:
        _, key = st.create_token("bench", "tenant", "bench")
    backends = [sim_backend(tmp / f"b{i}.log", ttft_ms=0.5, itl_ms=5, capacity=512) for i in range(2)]
    cfg = {"sites": [{"name": f"s{i}", "zone": f"Z{i}", "carbon_g_per_kwh": 100 + i,
                      "backends": [{"id": f"b{i}", "url": b.base, "accelerator": "H100", "max_running": 512}]}
                     for i, b in enumerate(backends)]}
    (tmp / "backends.yaml").write_text(json.dumps(cfg))
    gw = gateway_process(["--db", db, "--backends", str(tmp / "backends.yaml"), "--rate-per-s", "1000000",
                          "--burst", "1000000", "--log-level", "warning"], log_path=tmp / "gw.log")
    lite = None
    results: dict = {}
    try:
        lite = litellm_proxy(args.litellm, backends, tmp) if args.litellm else None
        targets = {"direct": (backends[0].base + "/v1/chat/completions", {}),
                   "gridshift": (gw.base + "/v1/chat/completions", {"Authorization": f"Bearer {key}"})}
        if lite is not None:
            targets["litellm"] = (lite.base + "/v1/chat/completions", {"Authorization": f"Bearer {LITELLM_KEY}"})
        rss0 = rss_mb(gw.proc.pid)
        pids = {"direct": backends[0].proc.pid, "gridshift": gw.proc.pid}
        if lite is not None:
            pids["litellm"] = lite.proc.pid
        rates = [float(x) for x in args.rates.split(",")]
        by_rate: dict[str, dict] = {}
        for rate in rates:
            rounds: dict[str, list[dict]] = {name: [] for name in targets}
            for _ in range(args.rounds):
                for name, (url, h) in targets.items():
                    asyncio.run(open_loop(url, h, rate, args.warmup, args.max_inflight, BODY))
                    c0 = cpu_s(pids[name])
                    r = asyncio.run(open_loop(url, h, rate, args.seconds, args.max_inflight, BODY))
                    # CPU per request of the process answering (the proxy's own work; for direct, the backend's):
                    # unlike latency on a shared machine, this does not depend on what else runs
                    r["cpu_ms_per_request"] = round(1000 * (cpu_s(pids[name]) - c0) / max(1, r["requests"]), 3)
                    rounds[name].append(r)
                    q = np.percentile(r["latencies_ms"], [50, 99]) if r["latencies_ms"] else [np.nan, np.nan]
                    print(f"{rate:g}/s {name}: p50 {q[0]:.2f} ms, p99 {q[1]:.2f} ms, {r['rps']} rps, "
                          f"shed {r['shed']}, errors {r['errors']}, load {os.getloadavg()[0]:.1f}", flush=True)
            out = {name: summary(rs, rate) for name, rs in rounds.items()}
            for name in ("gridshift", "litellm"):
                if name in out:
                    out[name]["added_p50_ms"] = round(out[name]["p50_ms"] - out["direct"]["p50_ms"], 3)
                    out[name]["added_p99_ms"] = round(out[name]["p99_ms"] - out["direct"]["p99_ms"], 3)
            out["load_average"] = [round(x, 2) for x in os.getloadavg()]
            by_rate[f"{rate:g}"] = out
        results.update(by_rate[f"{max(rates):g}"])
        results["by_rate"] = by_rate
        results["streams_direct"] = asyncio.run(streams(targets["direct"][0], {}, args.streams, args.stream_tokens))
        results["streams_gridshift"] = asyncio.run(streams(*targets["gridshift"], args.streams, args.stream_tokens))
        print(results["streams_direct"], results["streams_gridshift"], flush=True)
        rss1 = rss_mb(gw.proc.pid)
        samples = []
        t_end = time.perf_counter() + args.soak_s
        while time.perf_counter() < t_end:
            asyncio.run(load(*targets["gridshift"], min(10.0, args.soak_s), args.concurrency, BODY))
            samples.append(round(rss_mb(gw.proc.pid), 1))
        results["memory"] = {"rss_start_mb": round(rss0, 1), "rss_after_load_mb": round(rss1, 1),
                             "rss_soak_samples_mb": samples, "soak_s": args.soak_s}
    finally:
        for p in (gw, lite, *backends):
            if p is not None:
                p.stop()
    out = {**results, "settings": {
        "load": "open-loop at fixed rates, latency from each request's scheduled send time, aiohttp client",
        "rates": args.rates, "rounds": args.rounds, "seconds": args.seconds, "warmup_s": args.warmup,
        "max_inflight": args.max_inflight, "soak_concurrency": args.concurrency, "body": BODY,
        "backend": "gridshift.testing.sim_backend x2 (TTFT 0.5 ms, max_tokens 1), loopback",
        "machine": f"{os.cpu_count()} cores shared by backends, proxy and the load generator",
        "litellm": "litellm proxy, one worker, simple-shuffle over the same two backends" if lite else "not run",
        "python": sys.version.split()[0],
        "load_average_at_start": load0, "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
        **git_state()}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
