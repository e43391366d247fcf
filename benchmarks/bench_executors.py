"""Benchmark: dispatch throughput and report passes of the Slurm executor against a real Slurm, beside the
local executor.

Slurm: a throwaway single-node Slurm 22.05 (gridshift.testing.slurm_cluster: slurmctld, slurmd and munged
on this machine, ``sched/builtin``, no accounting, a node of 16 CPUs so that 16 jobs run and the rest
queue). After ``recover()`` (a listing of the queue, as the reconciler's first pass does),
``SlurmExecutor.start`` submits ``--jobs`` GridShift jobs (each ``sleep 3600``, one CPU, no GRES), one after
the other as the reconciler does; measured: starts per second (each start writes the job's script and its
record twice and runs one ``sbatch``) over the first 500 and over the last 500 (with the queue full), beside
bare ``sbatch`` of the same script. Then, with every job known to Slurm, ``report()`` (one ``squeue`` of
the whole queue in its text format, parsed, plus a status per job) is timed ``--repeats`` times, and that
``squeue`` alone. The jobs are cancelled at the end.

Local: ``--local-jobs`` jobs (``sleep 3600`` processes under the wrapper) on a ``LocalExecutor``; measured:
starts per second, ``report()`` (one scan of /proc for every job) and, for comparison, a status per job
read the way ``report()`` did before (every job's status reads all of /proc).

Needs root, Debian's slurmctld, slurmd, slurm-client and munge. All times are wall-clock seconds on this
machine (2 cores, shared); the load average is recorded.

    python benchmarks/bench_executors.py [--jobs 10000] [--local-jobs 500] [--repeats 5]
                                         [--json benchmarks/results/bench_executors.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _provenance import git_state  # benchmarks/ is on sys.path when run as a script

from gridshift.data import files
from gridshift.service.executors import JobLaunch, Placement
from gridshift.service.executors.local import LocalExecutor
from gridshift.service.executors.slurm import SlurmExecutor
from gridshift.testing.slurm_cluster import SlurmCluster, missing

ROOT = Path(__file__).resolve().parents[1]
SLEEP = ["sleep", "3600"]


def launch(job_id: str) -> JobLaunch:
    return JobLaunch(job_id, SLEEP, placement=Placement("site-a", "cpu", gang=1), work_acc_h=1.0)


def summary(xs: list[float]) -> dict:
    return {"mean_s": round(statistics.fmean(xs), 4), "median_s": round(statistics.median(xs), 4),
            "min_s": round(min(xs), 4), "max_s": round(max(xs), 4), "n": len(xs)}


def bench_slurm(n_jobs: int, repeats: int, root: Path) -> dict:
    cluster = SlurmCluster(root / "slurm", sites=("site-a",), cpus=16, gpus=0, min_job_age_s=3600).start()
    try:
        ex = SlurmExecutor(root / "state", slurm_conf=cluster.conf, timeout_s=120.0)
        ex.recover()  # as the reconciler does before its first pass: a listing of the queue
        marks = {}
        t0 = time.perf_counter()
        for i in range(n_jobs):
            ex.start(launch(f"bench-{i:05d}"))
            if i + 1 in (500, n_jobs - 500):
                marks[i + 1] = time.perf_counter()
            if (i + 1) % 1000 == 0:
                print(f"  slurm: {i + 1} submitted, {time.perf_counter() - t0:.1f} s", flush=True)
        t_end = time.perf_counter()
        first = 500 / (marks[500] - t0) if n_jobs >= 1000 else n_jobs / (t_end - t0)
        last = 500 / (t_end - marks[n_jobs - 500]) if n_jobs >= 1000 else None
        # bare sbatch of the same kind of job, for comparison (then cancelled)
        script = root / "bare.sh"
        script.write_text("#!/bin/bash\nsleep 3600\n")
        t = time.perf_counter()
        bare_ids = [ex.cli.sbatch(["--job-name=bare", "--partition=site-a", "--output=/dev/null", "--export=NONE"],
                                  str(script)) for _ in range(200)]
        bare_rate = 200 / (time.perf_counter() - t)
        ex.cli.scancel(*bare_ids)
        reports, squeues = [], []
        states: dict[str, int] = {}
        for _ in range(repeats):
            t = time.perf_counter()
            sts = ex.report()
            reports.append(time.perf_counter() - t)
            t = time.perf_counter()
            ex.cli.squeue()
            squeues.append(time.perf_counter() - t)
        for st in sts:
            states[st.state] = states.get(st.state, 0) + 1
        assert len(sts) == n_jobs, (len(sts), n_jobs)
        return {"jobs_known_to_slurm": n_jobs, "states_in_report": states,
                "starts_per_s_first_500": round(first, 1),
                "starts_per_s_last_500": None if last is None else round(last, 1),
                "starts_total_s": round(t_end - t0, 1), "bare_sbatch_per_s": round(bare_rate, 1),
                "report": summary(reports), "squeue_all": summary(squeues)}
    finally:
        cluster.stop()


def bench_local(n_jobs: int, repeats: int, root: Path) -> dict:
    ex = LocalExecutor(root / "local", stop_grace_s=2.0)
    try:
        t = time.perf_counter()
        for i in range(n_jobs):
            ex.start(launch(f"local-{i:05d}"))
        start_rate = n_jobs / (time.perf_counter() - t)
        n_procs = sum(1 for e in os.listdir("/proc") if e.isdigit())
        reports, per_job = [], []
        for _ in range(repeats):
            t = time.perf_counter()
            sts = ex.report()
            reports.append(time.perf_counter() - t)
            t = time.perf_counter()
            for st in sts:
                ex.status(st.job_id)  # the old report: every job's status reads all of /proc
            per_job.append(time.perf_counter() - t)
        assert all(st.state == "running" for st in sts)
        return {"jobs": n_jobs, "processes_on_machine": n_procs, "starts_per_s": round(start_rate, 1),
                "report_one_scan": summary(reports), "status_per_job_scan_each": summary(per_job)}
    finally:
        for i in range(n_jobs):
            rec = ex.record(f"local-{i:05d}")
            if rec and rec.get("pgid"):
                try:
                    os.killpg(rec["pgid"], 9)
                except ProcessLookupError:
                    pass


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--local-jobs", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "bench_executors.json")
    a = ap.parse_args()
    why = missing()
    if why is not None:
        print(f"bench_executors: Slurm cannot run here: {why}", file=sys.stderr)
        return 2
    root = Path(tempfile.mkdtemp(prefix="gs-bench-exec-"))
    os.chmod(root, 0o711)
    load_before = os.getloadavg()
    try:
        print(f"local executor, {a.local_jobs} jobs", flush=True)
        local = bench_local(a.local_jobs, a.repeats, root)
        print(json.dumps(local, indent=1), flush=True)
        print(f"slurm executor, {a.jobs} jobs", flush=True)
        slurm = bench_slurm(a.jobs, a.repeats, root)
        print(json.dumps(slurm, indent=1), flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    slurm_version = subprocess.run([shutil.which("slurmctld") or "/usr/sbin/slurmctld", "-V"], capture_output=True,
                                   text=True).stdout.strip()
    out = {"benchmark": "executors", "code": git_state(), "machine": {"cpus": os.cpu_count(),
           "python": platform.python_version(), "slurm": slurm_version,
           "load_avg_before": [round(x, 2) for x in load_before],
           "load_avg_after": [round(x, 2) for x in os.getloadavg()]},
           "conventions": "wall-clock seconds; one process submitting sequentially; Slurm on the same machine "
                          "(single node, 16 CPUs configured, sched/builtin, no accounting)",
           "slurm": slurm, "local": local}
    a.json.parent.mkdir(parents=True, exist_ok=True)
    files.write_json_atomic(a.json, out, indent=1)
    print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
