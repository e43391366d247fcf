"""A throwaway single-node Slurm cluster for tests and benchmarks, from Debian's packages (Slurm 22.05).

``SlurmCluster(root).start()`` writes a minimal ``slurm.conf`` and ``gres.conf`` into ``root`` (SlurmUser
root, ``select/cons_tres``, ``proctrack/linuxproc``, ``task/none``, no accounting), starts ``munged`` with
its own key and socket there, then ``slurmctld`` and one ``slurmd`` (node ``gs-node1`` on 127.0.0.1 with
``cpus`` CPUs and ``gpus`` GPUs of one type, shown to Slurm as GRES backed by device nodes in
``root/dev``), one partition per site; state, spool, logs and pid files are all in ``root``. Clients find it
through ``env()`` (``SLURM_CONF``). ``stop()`` cancels every job and stops the daemons by their pid files.
Needs root and ``apt-get install slurmctld slurmd slurm-client munge``.

``nodes=N`` defines N nodes (``gs-node1`` … ``gs-nodeN``) on this one machine, one ``slurmd -N <name>`` each,
with its own port, spool directory, pid and log file (Slurm's ``%n``), all in every partition.
``power_saving=True`` configures Slurm's power saving for idle nodes as a site would, with a
``SuspendProgram`` and a ``ResumeProgram`` that only record their calls (one line ``<unix time> <hostlist>``
in ``root/power/suspend.calls`` and ``resume.calls``) and, for resume, have the node's running ``slurmd``
restart the node's ``slurmd`` with ``-b``, as a booted node's would start; ``SuspendTime`` is a year (Slurm
22.05 refuses manual power-downs with ``SuspendTime=INFINITE``), so Slurm never powers a node down by itself:
only ``scontrol update NodeName=… State=POWER_DOWN`` does.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

NODE = "gs-node1"
# Slurm 22.05 runs its power saving only when SuspendTime is not INFINITE ("PowerSave is disabled" refuses
# State=POWER_DOWN): a year of idleness, so Slurm never powers a node down by itself here.
SUSPEND_TIME_S = 365 * 86400
SUSPEND_TIMEOUT_S = 2
RESUME_TIMEOUT_S = 30
# The power-saving programs of the test cluster: they record the call; resume then restarts the node's slurmd
# with ``-b`` (it reports a fresh boot, as a powered-up node's would: Slurm waits for one, see slurm.conf's
# ResumeProgram). Nothing on this machine is switched off.
SUSPEND_SCRIPT = """#!/bin/sh
echo "$(date +%s) $1" >> {calls}
"""
RESUME_SCRIPT = """#!/bin/sh
echo "$(date +%s) $1" >> {calls}
export SLURM_CONF={conf}
for n in $({scontrol} show hostnames "$1"); do
  pidfile=$(echo "{pid_file}" | sed "s/%n/$n/")
  pid=$(cat "$pidfile" 2>/dev/null)
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null
    i=0; while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
  fi
  {slurmd} -b -N "$n" </dev/null >/dev/null 2>&1  # slurmctld runs this without fds 0-2: slurmd needs them
done
"""
DAEMONS = ("munged", "slurmctld", "slurmd")


def missing() -> str | None:
    """Why a cluster cannot be started here (None: it can)."""
    if os.geteuid() != 0:
        return "needs root (SlurmUser root)"
    for exe in (*DAEMONS, "sbatch", "squeue", "scontrol", "mungekey"):
        if shutil.which(exe) is None and not Path("/usr/sbin", exe).exists():
            return f"'{exe}' not found (apt-get install slurmctld slurmd slurm-client munge)"
    return None


def _exe(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


class SlurmCluster:
    """One controller and one node (or ``nodes``) in ``root`` (see the module docstring)."""

    def __init__(self, root: str | Path, *, sites: Sequence[str] = ("site-a", "site-b"), cpus: int | None = None,
                 gpus: int = 8, gpu_type: str = "h100", min_job_age_s: int = 300, kill_wait_s: int = 5,
                 message_timeout_s: int = 3, nodes: int = 1, power_saving: bool = False) -> None:
        self.root = Path(root).resolve()
        self.nodes = (NODE,) if nodes <= 1 else tuple(f"gs-node{i + 1}" for i in range(int(nodes)))
        self.power_saving = bool(power_saving)
        self.sites = tuple(sites)
        self.cpus = int(cpus or os.cpu_count() or 1)
        self.gpus, self.gpu_type = int(gpus), gpu_type
        self.min_job_age_s, self.kill_wait_s, self.message_timeout_s = min_job_age_s, kill_wait_s, message_timeout_s
        self.conf = self.root / "slurm.conf"
        self.munge_socket = self.root / "munge" / "munge.sock"
        self.ctld_port, *self.node_ports = free_ports(1 + len(self.nodes))
        self.slurmd_port = self.node_ports[0]

    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def _pid_file(self, name: str) -> Path:
        return self.root / f"{name}.pid"

    def _pid(self, name: str) -> int | None:
        try:
            return int(self._pid_file(name).read_text().strip())
        except (OSError, ValueError):
            return None

    def write_config(self) -> None:
        r = self.root
        for d in ("state", "spool", "munge", "dev", "log"):
            (r / d).mkdir(parents=True, exist_ok=True)
        os.chmod(r / "munge", 0o700)
        devs = []
        for i in range(self.gpus):
            dev = r / "dev" / f"nvidia{i}"
            if not dev.exists():
                os.mknod(dev, 0o600 | 0o020000, os.makedev(1, 3))  # character devices like /dev/null
            devs.append(str(dev))
        gres = f" Gres=gpu:{self.gpu_type}:{self.gpus}" if self.gpus else ""
        many = len(self.nodes) > 1  # one slurmd per node name: per-node spool, pid and log files (%n)
        spool, pid, log = (r / "spool" / "%n", r / "slurmd-%n.pid", r / "log" / "slurmd-%n.log") if many else \
            (r / "spool", r / "slurmd.pid", r / "log" / "slurmd.log")
        lines = [
            "ClusterName=gridshift-test", "SlurmctldHost=localhost(127.0.0.1)", "SlurmUser=root", "SlurmdUser=root",
            f"SlurmctldPort={self.ctld_port}", f"SlurmdPort={self.slurmd_port}", "AuthType=auth/munge",
            f"AuthInfo=socket={self.munge_socket}", "CredType=cred/munge", f"StateSaveLocation={r / 'state'}",
            f"SlurmdSpoolDir={spool}", f"SlurmctldPidFile={r / 'slurmctld.pid'}",
            f"SlurmdPidFile={pid}", f"SlurmctldLogFile={r / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={log}", "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
            "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core", "SchedulerType=sched/builtin",
            "MpiDefault=none", "ReturnToService=1", "SlurmdParameters=config_overrides",
            "GresTypes=gpu" if self.gpus else "", "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none", "MailProg=/bin/true", f"MinJobAge={self.min_job_age_s}",
            f"KillWait={self.kill_wait_s}", f"MessageTimeout={self.message_timeout_s}", "MaxJobCount=100000",
            "SchedulerParameters=defer_batch,sched_interval=2", "SlurmdTimeout=30", "InactiveLimit=0",
            *self._power_lines(),
            *(f"NodeName={n} NodeAddr=127.0.0.1 NodeHostname={socket.gethostname()}{f' Port={port}' if many else ''} "
              f"CPUs={self.cpus} RealMemory=1000{gres} State=UNKNOWN" for n, port in zip(self.nodes, self.node_ports)),
        ]
        for i, site in enumerate(self.sites):
            lines.append(f"PartitionName={site} Nodes={','.join(self.nodes)} MaxTime=INFINITE State=UP"
                         f"{' Default=YES' if i == 0 else ''}")
        self.conf.write_text("\n".join(x for x in lines if x) + "\n")
        gres_lines = ["AutoDetect=off"]
        if self.gpus:
            gres_lines += [f"NodeName={n} Name=gpu Type={self.gpu_type} File={r / 'dev'}/nvidia[0-{self.gpus - 1}]"
                           for n in self.nodes]
        (r / "gres.conf").write_text("\n".join(gres_lines) + "\n")
        if not (r / "munge.key").exists():
            subprocess.run([_exe("mungekey"), "-c", "-k", str(r / "munge.key")], check=True, capture_output=True)
            os.chmod(r / "munge.key", 0o600)

    @property
    def suspend_calls(self) -> Path:
        return self.root / "power" / "suspend.calls"

    @property
    def resume_calls(self) -> Path:
        return self.root / "power" / "resume.calls"

    def _power_lines(self) -> list[str]:
        """slurm.conf's power saving (with ``power_saving``): the two programs, written here, and the timeouts."""
        if not self.power_saving:
            return []
        d = self.root / "power"
        d.mkdir(exist_ok=True)
        for name, text, calls in (("suspend", SUSPEND_SCRIPT, self.suspend_calls),
                                  ("resume", RESUME_SCRIPT, self.resume_calls)):
            prog = d / f"{name}.sh"
            pid_file = self.root / ("slurmd-%n.pid" if len(self.nodes) > 1 else "slurmd.pid")
            prog.write_text(text.format(calls=calls, conf=self.conf, scontrol=_exe("scontrol"), slurmd=_exe("slurmd"),
                                        pid_file=pid_file))
            os.chmod(prog, 0o755)
        return [f"SuspendProgram={d / 'suspend.sh'}", f"ResumeProgram={d / 'resume.sh'}", f"SuspendTime={SUSPEND_TIME_S}",
                f"SuspendTimeout={SUSPEND_TIMEOUT_S}", f"ResumeTimeout={RESUME_TIMEOUT_S}"]

    def _run(self, argv: list[str]) -> None:
        res = subprocess.run(argv, env=self.env(), capture_output=True, text=True, timeout=30)
        if res.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({res.returncode}): {res.stderr.strip()}{self.logs()}")

    def logs(self, lines: int = 15) -> str:
        out = []
        for f in sorted((self.root / "log").glob("*.log")):
            tail = f.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"\n--- {f.name}\n" + "\n".join(tail))
        return "".join(out)

    def start_munge(self) -> None:
        r = self.root
        self._run([_exe("munged"), "--force", f"--socket={self.munge_socket}", f"--key-file={r / 'munge.key'}",
                   f"--log-file={r / 'log' / 'munged.log'}", f"--pid-file={r / 'munged.pid'}",
                   f"--seed-file={r / 'munged.seed'}"])

    def start_controller(self, *, clear: bool = False) -> None:
        self._run([_exe("slurmctld"), "-c" if clear else "-i"])
        self.wait_controller()

    def start_node(self, name: str | None = None) -> None:
        """Start the slurmd of node ``name`` (default: every node)."""
        for n in self.nodes if name is None else (name,):
            if len(self.nodes) > 1:
                (self.root / "spool" / n).mkdir(parents=True, exist_ok=True)
            self._run([_exe("slurmd"), "-N", n])

    def start(self, timeout_s: float = 30.0) -> SlurmCluster:
        self.write_config()
        self.start_munge()
        self.start_controller(clear=True)
        self.start_node()
        for n in self.nodes:
            self.wait_node_idle(timeout_s, n)
        return self

    def _query(self, argv: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run(argv, env=self.env(), capture_output=True, text=True, timeout=30)

    def wait_controller(self, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._query([_exe("scontrol"), "ping"]).stdout.count("UP"):
                return
            time.sleep(0.1)
        raise RuntimeError(f"slurmctld did not come up in {timeout_s:g} s{self.logs()}")

    def wait_node_idle(self, timeout_s: float = 30.0, node: str = NODE) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            out = self._query([_exe("sinfo"), "-h", "-n", node, "-o", "%T"]).stdout.strip()
            if out.split("\n")[0] in ("idle", "mixed", "allocated"):
                return
            time.sleep(0.1)
        raise RuntimeError(f"node {node} not idle after {timeout_s:g} s{self.logs()}")

    def _slurmd_pid_names(self) -> list[str]:
        return ["slurmd"] if len(self.nodes) == 1 else [f"slurmd-{n}" for n in self.nodes]

    def _stop_pid(self, name: str, timeout_s: float = 10.0) -> None:
        pid = self._pid(name)
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def stop_controller(self) -> None:
        """Stop slurmctld (jobs keep running on the node; its state is kept for a restart)."""
        self._stop_pid("slurmctld")

    def stop(self) -> None:
        """Cancel every job, then stop slurmd, slurmctld and munged."""
        if self._pid("slurmctld") is not None:
            self._query([_exe("scancel"), "--full", "--signal=KILL", "--user=root"])
            self._query([_exe("scancel"), "--user=root"])
            deadline = time.monotonic() + 10.0
            while time.monotonic() < deadline and self._query([_exe("squeue"), "-h", "-t", "R,CG,S"]).stdout.strip():
                time.sleep(0.1)
        for name in (*self._slurmd_pid_names(), "slurmctld", "munged"):
            self._stop_pid(name)


__all__ = ["NODE", "RESUME_TIMEOUT_S", "SUSPEND_TIMEOUT_S", "SlurmCluster", "missing"]
