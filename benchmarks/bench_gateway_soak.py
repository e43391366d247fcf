"""A soak of the model gateway: ``--minutes`` (default 10) of sustained load through ``gridshift gateway`` to
three simulated backends (separate processes on loopback, one per site), on the same shared cores as the
load generator. Every ``--window-s`` seconds: requests, errors, error rate, p50/p99 latency at the client,
requests per second, the gateway's RSS and CPU, and the machine's load average. At the end: memory growth
(first window after warm-up to last, and the least-squares slope over the windows), and the gateway's own
accounting (``GET /gateway/usage``) against the requests the client saw answered, so that a lost row shows.

Load: ``--concurrency`` closed-loop async clients (httpx, keep-alive); one request in ``--stream-every`` is a
streamed chat completion of ``--stream-tokens`` tokens, the rest non-streaming chats of 8 tokens; one in four
is of the offline SLO class; callers from two regions. Writes ``benchmarks/results/bench_gateway_soak.json``.

    python benchmarks/bench_gateway_soak.py [--minutes 10] [--concurrency 16] [--window-s 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from _provenance import git_state
from bench_gateway_overhead import cpu_s, rss_mb  # benchmarks/ is on sys.path when run as a script

from gridshift.service.db import upgrade
from gridshift.service.store import Store
from gridshift.testing.gateway_processes import gateway_process, sim_backend

OUT = Path(__file__).resolve().parent / "results" / "bench_gateway_soak.json"
MSG = [{"role": "user", "content": "tell me about the grid"}]
REGIONS = ("europe-west3", "us-east4")




class Window:
    def __init__(self) -> None:
        self.lat_ms: list[float] = []
        self.errors = 0
        self.kinds: dict[str, int] = {}


async def run_load(url: str, key: str, minutes: float, window_s: float, concurrency: int, stream_every: int,
                   stream_tokens: int, gw_pid: int) -> tuple[list[dict], int]:
    windows: list[dict] = []
    cur = Window()
    answered = 0
    n = 0
    end = time.perf_counter() + minutes * 60.0
    t_start = time.perf_counter()

    async def one(c: httpx.AsyncClient, i: int) -> None:
        nonlocal cur, answered
        stream = i % stream_every == 0
        headers = {"Authorization": f"Bearer {key}", "X-GridShift-Region": REGIONS[i % 2],
                   "X-GridShift-SLO": "offline" if i % 4 == 1 else "interactive"}
        body = {"model": "sim-model", "messages": MSG, "max_tokens": stream_tokens if stream else 8,
                "stream": stream}
        t = time.perf_counter()
        ok = False
        try:
            if stream:
                async with c.stream("POST", url, json=body, headers=headers) as r:
                    async for line in r.aiter_lines():
                        if line == "data: [DONE]":
                            ok = r.status_code == 200
                            break
            else:
                r = await c.post(url, json=body, headers=headers)
                ok = r.status_code == 200
        except httpx.HTTPError:
            ok = False
        w = cur
        if ok:
            w.lat_ms.append((time.perf_counter() - t) * 1000.0)
            answered += 1
        else:
            w.errors += 1

    async def worker(c: httpx.AsyncClient) -> None:
        nonlocal n
        while time.perf_counter() < end:
            n += 1
            await one(c, n)

    mark = {"cpu": cpu_s(gw_pid), "t": time.perf_counter()}

    def close_window() -> None:
        nonlocal cur
        w, cur = cur, Window()
        c1, t1 = cpu_s(gw_pid), time.perf_counter()
        a = np.asarray(w.lat_ms) if w.lat_ms else np.full(1, np.nan)
        total = len(w.lat_ms) + w.errors
        if not total:
            return
        windows.append({
            "t_s": round(t1 - t_start, 1), "requests": total, "errors": w.errors,
            "error_rate": round(w.errors / total, 5),
            "rps": round(len(w.lat_ms) / (t1 - mark["t"]), 1),
            "p50_ms": round(float(np.percentile(a, 50)), 2), "p99_ms": round(float(np.percentile(a, 99)), 2),
            "gateway_rss_mb": round(rss_mb(gw_pid), 1),
            "gateway_cpu_frac": round((c1 - mark["cpu"]) / (t1 - mark["t"]), 3),
            "load_average_1m": round(os.getloadavg()[0], 2)})
        print(json.dumps(windows[-1]), flush=True)
        mark.update(cpu=c1, t=t1)

    async def clock() -> None:
        while True:
            await asyncio.sleep(window_s)
            close_window()

    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=concurrency + 8), timeout=60) as c:
        tick = asyncio.create_task(clock())
        await asyncio.gather(*(worker(c) for _ in range(concurrency)))
        tick.cancel()
    close_window()  # the requests answered after the last full window
    return windows, answered


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--window-s", type=float, default=30.0)
    ap.add_argument("--warmup-s", type=float, default=15.0)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--stream-every", type=int, default=5)
    ap.add_argument("--stream-tokens", type=int, default=16)
    ap.add_argument("--json", type=Path, default=OUT)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-gw-soak-"))
    db = f"sqlite:///{tmp / 'gs.db'}"
    upgrade(db)
    with Store(db) as st:
        _, key = st.create_token("soak", "tenant", "soak")
        _, op_key = st.create_token("ops", "operator")
    backends = [sim_backend(tmp / f"b{i}.log", ttft_ms=5, itl_ms=2, capacity=256) for i in range(3)]
    cfg = {"default_region": REGIONS[0],
           "latency_ms": {r: {"europe-west3": 5 if r == REGIONS[0] else 90, "europe-north1": 25 if r == REGIONS[0]
                              else 100, "us-east4": 90 if r == REGIONS[0] else 5} for r in REGIONS},
           "sites": [{"name": name, "zone": zone, "region": region, "carbon_g_per_kwh": ci,
                      "backends": [{"id": f"{name}-1", "url": b.base, "accelerator": "H100", "max_running": 256}]}
                     for (name, zone, region, ci), b in zip(
                         [("frankfurt", "DE-LU", "europe-west3", 350), ("stockholm", "SE", "europe-north1", 30),
                          ("virginia", "US-MIDA-PJM", "us-east4", 380)], backends)]}
    (tmp / "backends.yaml").write_text(json.dumps(cfg))
    gw = gateway_process(["--db", db, "--backends", str(tmp / "backends.yaml"), "--rate-per-s", "1000000",
                          "--burst", "1000000", "--log-level", "warning"], log_path=tmp / "gw.log")
    load_start = [round(x, 2) for x in os.getloadavg()]
    try:
        url = gw.base + "/v1/chat/completions"
        asyncio.run(run_load(url, key, args.warmup_s / 60.0, args.warmup_s, args.concurrency, args.stream_every,
                             args.stream_tokens, gw.proc.pid))
        before = httpx.get(gw.base + "/gateway/usage", headers={"Authorization": f"Bearer {op_key}"},
                           params={"tenant": "soak"}, timeout=30).json()["usage"]
        windows, answered = asyncio.run(run_load(url, key, args.minutes, args.window_s, args.concurrency,
                                                 args.stream_every, args.stream_tokens, gw.proc.pid))
        time.sleep(2.0)  # the accounting writer flushes every 0.5 s
        after = httpx.get(gw.base + "/gateway/usage", headers={"Authorization": f"Bearer {op_key}"},
                          params={"tenant": "soak"}, timeout=30).json()["usage"]
    finally:
        log_tail = gw.tail()[-2000:]
        for p in (gw, *backends):
            p.stop()
    load_end = [round(x, 2) for x in os.getloadavg()]

    def ok_rows(rows: list[dict]) -> int:
        return sum(r["requests"] for r in rows)

    rss = np.asarray([w["gateway_rss_mb"] for w in windows])
    t_min = np.asarray([w["t_s"] for w in windows]) / 60.0
    slope = float(np.polyfit(t_min, rss, 1)[0]) if len(rss) >= 2 else float("nan")
    total = sum(w["requests"] for w in windows)
    errors = sum(w["errors"] for w in windows)
    p50s, p99s = [w["p50_ms"] for w in windows], [w["p99_ms"] for w in windows]
    summary = {
        "requests": total, "errors": errors, "error_rate": round(errors / total, 6) if total else None,
        "mean_rps": round(float(np.mean([w["rps"] for w in windows])), 1),
        "p50_ms_median_of_windows": round(float(np.median(p50s)), 2), "p50_ms_range": [min(p50s), max(p50s)],
        "p99_ms_median_of_windows": round(float(np.median(p99s)), 2), "p99_ms_range": [min(p99s), max(p99s)],
        "rss_first_window_mb": float(rss[0]), "rss_last_window_mb": float(rss[-1]),
        "rss_growth_mb": round(float(rss[-1] - rss[0]), 1), "rss_slope_mb_per_min": round(slope, 3),
        "rss_max_mb": float(rss.max()),
        "gateway_cpu_frac_mean": round(float(np.mean([w["gateway_cpu_frac"] for w in windows])), 3),
        "accounted_requests": ok_rows(after) - ok_rows(before), "client_seen_requests": total,
        "client_answered": answered,
        "accounting_matches": ok_rows(after) - ok_rows(before) == total,
        "load_average_start": load_start, "load_average_end": load_end,
        "load_average_1m_range": [min(w["load_average_1m"] for w in windows),
                                  max(w["load_average_1m"] for w in windows)],
    }
    out = {"summary": summary, "windows": windows, "settings": {
        "minutes": args.minutes, "window_s": args.window_s, "warmup_s": args.warmup_s,
        "concurrency": args.concurrency, "stream_every": args.stream_every, "stream_tokens": args.stream_tokens,
        "backends": "gridshift.testing.sim_backend x3 (TTFT 5 ms, ITL 2 ms), one per site, loopback",
        "database": "SQLite (WAL) in a temporary directory",
        "latency": "at the client, whole request (streams: to [DONE]); percentiles per window",
        "machine": f"{os.cpu_count()} cores shared by the backends, the gateway, the load generator and other "
                   "work (see load averages)",
        "python": sys.version.split()[0]}, "gateway_log_tail": log_tail, **git_state()}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
