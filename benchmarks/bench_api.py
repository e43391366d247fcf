"""Benchmark: sustained job submissions to ``gridshift serve`` over loopback, on SQLite and on PostgreSQL.

For each backend a fresh database is migrated (PostgreSQL: a throwaway server started with the system's
binaries, as the tests do), ``python -m gridshift.cli serve`` runs as a subprocess on a free port
(one uvicorn worker, access log off, rate limit raised above the offered load), and ``--clients`` load
processes keep ``--connections`` keep-alive connections each busy with one ``POST /api/v1/jobs`` at a
time, every one with a fresh ``Idempotency-Key``, spread over several tenant tokens, for ``--seconds``
after a short warm-up. Reported: submissions per second, latency p50/p90/p99/max of the 201 answers, every
answer counted by status code (a broken connection by its exception's name; anything but 201 is an
error), and CPU time per submission of the server, the load clients and PostgreSQL, measured over the
same wall-clock window.

Why the load client is hand-rolled (raw asyncio streams speaking HTTP/1.1, no HTTP library): on the 2-core
target machine the client shares the CPU with the server and the database. The httpx client used before
burned 1.7-2.0 ms of CPU per submission, as much as the server itself, so the benchmark measured half of
its own load generator. Here each request is one pre-built byte string (request line, headers and the JSON
body encoded once; only the 32-hex-digit Idempotency-Key is new per request) and each answer is read as a
status line, headers and a Content-Length body (chunked and close-delimited bodies are handled too), which
costs a small fraction of that. The first 201 answer of each process is parsed as JSON to check that it is a
job; the status of every answer is counted so that errors cannot hide behind the throughput.

Target (2-core machine, PostgreSQL): >= 500 submissions/s with p99 <= 100 ms. The machine may be shared
with other work; the load average before and after each run is recorded with the figures.

    python benchmarks/bench_api.py [--seconds 60] [--connections 8] [--clients 1] [--backends sqlite postgresql]
                                   [--json benchmarks/results/api.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _provenance import git_state  # benchmarks/ is on sys.path when run as a script

from gridshift.testing.serve_process import ServeProcess, free_port

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "support"))

JOB = {"kind": "batch-inference", "work_acc_h": 2.0, "gang_min": 1, "gang_max": 8, "tier": 2,
       "command": "python infer.py --shard 3"}
N_TENANTS = 4
STARTUP_S = 3.0  # time allowed for the client processes to start before the warm-up begins
ANSWER_TIMEOUT_S = 30.0  # a request still unanswered this long after the end counts as a TimeoutError


class Postgres:
    """A throwaway PostgreSQL server (tests/support/pgserver.py), or None without the binaries."""

    def __init__(self) -> None:
        import pgserver

        bindir = pgserver.find_bindir()
        if bindir is None:
            raise RuntimeError("no PostgreSQL binaries (apt-get install postgresql)")
        user = pgserver._server_user()
        self.root = Path(tempfile.mkdtemp(prefix="gridshift-bench-pg-"))
        if user is not None:
            import pwd

            pw = pwd.getpwnam(user)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self.server = pgserver.PgServer(bindir, self.root, free_port(), user)
        self.server.init()
        self.server.start()

    def url(self) -> str:
        return self.server.create_database()

    def pid(self) -> int:
        return int((self.server.data / "postmaster.pid").read_text().split()[0])

    def close(self) -> None:
        try:
            self.server.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def prepare(url: str) -> list[str]:
    """Migrate ``url`` and make one token per tenant; returns the secrets."""
    from gridshift.service.db import upgrade
    from gridshift.service.store import Store

    upgrade(url)
    with Store(url) as store:
        return [store.create_token(f"bench {i}", "tenant", f"tenant-{i}")[1] for i in range(N_TENANTS)]


def cpu_s(pid: int) -> float:
    """CPU time (user + system) a process has used so far, s."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_s(root_pid: int) -> float:
    """CPU time of a process and its children (PostgreSQL's postmaster and backends), s: the running
    children's own time and, through the root's cutime/cstime, that of children which have exited (a
    backend closed with its connection)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        if pid == root_pid:
            total += sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
        elif int(fields[1]) == root_pid:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """One HTTP/1.1 response: (status, body, whether the server keeps the connection open)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length, chunked, keep = None, False, True
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            keep = b"close" not in value.lower()
    if chunked:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            data = await reader.readexactly(size + 2)
            if size == 0:
                break
            parts.append(data[:-2])
        return status, b"".join(parts), keep
    if length is None:  # body until the server closes
        return status, await reader.read(), False
    return status, await reader.readexactly(length) if length else b"", keep


async def _load(host: str, port: int, secrets: list[str], connections: int, start_at: float, warmup_s: float,
                seconds: float, client_no: int) -> dict:
    """Keep ``connections`` keep-alive connections busy with one submission each; latencies (s) of the 201
    answers to submissions started in the measured window, counts of every answer (status code, or the
    exception's name for a broken connection) and this process's CPU time in the window."""
    t_measure, t_end = start_at + warmup_s, start_at + warmup_s + seconds  # wall clock (time.time())
    lat: list[float] = []
    codes: dict[str, int] = {}
    checked: list[str] = []
    body = json.dumps(JOB, separators=(",", ":")).encode()
    clock = time.perf_counter
    wall_minus_perf = time.time() - clock()
    m0, m1 = t_measure - wall_minus_perf, t_end - wall_minus_perf  # window on the perf_counter clock
    cpu: dict[str, float] = {}

    async def cpu_probe() -> None:
        await asyncio.sleep(max(0.0, m0 - clock()))
        cpu["t0"] = time.process_time()
        await asyncio.sleep(max(0.0, m1 - clock()))
        cpu["t1"] = time.process_time()

    async def worker(w: int) -> None:
        secret = secrets[(client_no * connections + w) % len(secrets)]
        head = (f"POST /api/v1/jobs HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {secret}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nIdempotency-Key: ").encode()
        tail = b"\r\n\r\n" + body
        reader = writer = None
        while True:
            t0 = clock()
            if t0 >= m1:
                break
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                writer.write(head + os.urandom(16).hex().encode() + tail)  # a fresh Idempotency-Key each time
                status, answer, keep = await _read_response(reader)
                code = str(status)
                if not checked and status == 201:  # once: the answer is the job (not just a status line)
                    checked.append(json.loads(answer)["id"])
                if not keep:
                    writer.close()
                    reader = writer = None
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, KeyError,
                    IndexError) as exc:
                code = type(exc).__name__
                if writer is not None:
                    writer.close()
                reader = writer = None
                await asyncio.sleep(0.01)
            t1 = clock()
            if t0 >= m0:
                codes[code] = codes.get(code, 0) + 1
                if code == "201":
                    lat.append(t1 - t0)
        if writer is not None:
            writer.close()

    await asyncio.sleep(max(0.0, start_at - time.time()))
    tasks = [asyncio.ensure_future(cpu_probe())] + [asyncio.ensure_future(worker(w)) for w in range(connections)]
    done, stuck = await asyncio.wait(tasks, timeout=max(0.0, m1 - clock()) + ANSWER_TIMEOUT_S)
    for t in stuck:  # a request unanswered ANSWER_TIMEOUT_S after the end: counted, not waited for
        t.cancel()
        codes["TimeoutError"] = codes.get("TimeoutError", 0) + 1
    for t in done:
        t.result()  # an unexpected exception in a worker ends the benchmark
    return {"latency_s": lat, "codes": codes, "cpu_s": cpu.get("t1", 0.0) - cpu.get("t0", 0.0)}


def _client_process(args: tuple) -> dict:
    try:
        import uvloop

        return uvloop.run(_load(*args))
    except ImportError:
        return asyncio.run(_load(*args))


def run_backend(name: str, url: str, a: argparse.Namespace, workdir: Path, db_pid: int | None = None) -> dict:
    secrets = prepare(url)
    srv = ServeProcess(["--db", url, "--rate-per-s", "1000000", "--burst", "1000000", "--no-access-log",
                        "--log-level", "warning"], cwd=workdir, log_path=workdir / f"server-{name}.log")
    port, proc = srv.port, srv.proc
    load_before = os.getloadavg()
    try:
        # Clients and this process share one wall-clock schedule, so the CPU of server and database is read
        # over the window whose submissions the clients count (process start-up falls before it).
        start_at = time.time() + STARTUP_S
        jobs = [("127.0.0.1", port, secrets, a.connections, start_at, a.warmup, a.seconds, i)
                for i in range(a.clients)]
        with mp.get_context("spawn").Pool(a.clients) as pool:
            pending = pool.map_async(_client_process, jobs)
            time.sleep(max(0.0, start_at + a.warmup - time.time()))
            cpu0, db0, t0 = cpu_s(proc.pid), tree_cpu_s(db_pid) if db_pid else 0.0, time.perf_counter()
            time.sleep(max(0.0, start_at + a.warmup + a.seconds - time.time()))
            cpu1, db1, t1 = cpu_s(proc.pid), tree_cpu_s(db_pid) if db_pid else 0.0, time.perf_counter()
            parts = pending.get()
    finally:
        load_after = os.getloadavg()
        srv.stop()
    lat = np.concatenate([np.asarray(p["latency_s"], dtype=float) for p in parts]) * 1000.0
    codes: dict[str, int] = {}
    for p in parts:
        for k, v in p["codes"].items():
            codes[k] = codes.get(k, 0) + v
    ok = int(lat.size)
    pct = np.percentile(lat, [50, 90, 99]) if ok else np.full(3, np.nan)
    out = {
        "backend": name,
        "submissions": ok,
        "submissions_per_s": round(ok / a.seconds, 1),
        "latency_ms": {"p50": round(float(pct[0]), 2), "p90": round(float(pct[1]), 2),
                       "p99": round(float(pct[2]), 2), "max": round(float(lat.max()), 2) if ok else None},
        "responses": codes,
        "errors": sum(v for k, v in codes.items() if k != "201"),
        "server_cpu_ms_per_submission": round((cpu1 - cpu0) * 1000.0 / max(ok, 1), 3),
        "server_cpu_share": round((cpu1 - cpu0) / (t1 - t0), 2),
        "client_cpu_ms_per_submission": round(sum(p["cpu_s"] for p in parts) * 1000.0 / max(ok, 1), 3),
        "postgres_cpu_ms_per_submission": round((db1 - db0) * 1000.0 / max(ok, 1), 3) if db_pid else None,
        "load_avg_1m_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
    }
    total = out["server_cpu_ms_per_submission"] + out["client_cpu_ms_per_submission"] + (
        out["postgres_cpu_ms_per_submission"] or 0.0)
    out["cpu_ms_per_submission_total"] = round(total, 3)
    # what the measured CPU cost per submission would allow if every core did only this work (an estimate)
    out["estimate_submissions_per_s_if_cores_idle"] = round((os.cpu_count() or 1) * 1000.0 / total, 0) if total else None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--connections", type=int, default=8, help="keep-alive connections (requests in flight) per "
                                                               "client process")
    ap.add_argument("--clients", type=int, default=1, help="client processes")
    ap.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"])
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "api.json")
    a = ap.parse_args()

    results = []
    workdir = Path(tempfile.mkdtemp(prefix="gridshift-bench-api-"))
    try:
        for backend in a.backends:
            if backend == "sqlite":
                r = run_backend("sqlite", f"sqlite:///{workdir / 'bench.db'}", a, workdir)
            else:
                pg = Postgres()
                try:
                    r = run_backend("postgresql", pg.url(), a, workdir, db_pid=pg.pid())
                finally:
                    pg.close()
            results.append(r)
            lm = r["latency_ms"]
            print(f"{r['backend']:<11} {r['submissions_per_s']:>7.1f} submissions/s  p50 {lm['p50']:.1f} ms  "
                  f"p99 {lm['p99']:.1f} ms  max {lm['max']} ms  errors {r['errors']}  "
                  f"server {r['server_cpu_ms_per_submission']:.2f} ms CPU/submission ({r['server_cpu_share']:.2f} cores), "
                  f"clients {r['client_cpu_ms_per_submission']:.2f}, postgres {r['postgres_cpu_ms_per_submission']}  "
                  f"load {r['load_avg_1m_before_after']}", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    pg = next((r for r in results if r["backend"] == "postgresql"), None)
    doc = {
        "benchmark": "api_load",
        "what": "POST /api/v1/jobs with a fresh Idempotency-Key, sustained, loopback, one uvicorn worker",
        "seconds": a.seconds, "warmup_s": a.warmup, "connections_per_client": a.connections, "clients": a.clients,
        "target": {"backend": "postgresql", "submissions_per_s": 500, "p99_ms": 100},
        "target_met": None if pg is None else bool(pg["submissions_per_s"] >= 500 and pg["latency_ms"]["p99"] <= 100),
        "results": results,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "shared": "the machine runs other work at the same time; see load_avg_1m_before_after"},
        "code": git_state(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
