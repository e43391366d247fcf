"""Run one job command and record how it ended.

    python _wrap.py --exit-file PATH [--orphan-kill] [--user UID:GID] [--rlimit NAME=N ...] [--env-file JSON]
                    -- CMD [ARGS...]

The executor starts this wrapper as the leader of a new session and process group, with the signals it relays
blocked until its handlers are installed; the command runs in the same group. A catchable signal sent to the
wrapper (SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2) is relayed to every other process of the group and does
not end the wrapper; the checkpoint signal (``$GRIDSHIFT_CHECKPOINT_SIGNAL``) only to the processes that
handle it, so a command still starting up is not ended by it. An ending signal (SIGTERM, SIGINT, SIGHUP)
that arrives before the command is started ends the wrapper without starting it. SIGSTOP, SIGCONT and
SIGKILL go to the group directly. When the command ends the wrapper writes PATH atomically as JSON: ``exit_code``
(negative: killed by that signal), ``reason`` and ``ended_at`` (UTC). With ``--orphan-kill`` the job is
stopped when the wrapper's parent dies (SIGTERM, SIGKILL 10 s later) and the command is killed when the
wrapper itself is killed. The command starts with the ``--rlimit`` limits (NOFILE, NPROC, AS, CPU; soft =
hard), the environment of ``--env-file`` (a JSON object; else the wrapper's own) and, with ``--user``, as that uid and gid with no supplementary groups; the wrapper keeps the rights it
was started with (it writes PATH). Standard library only (the atomic writer, gridshift/data/files.py, is loaded by
path), so it starts fast.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
ENDING = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _atomic_writer():
    """``gridshift/data/files.py``, the project's one atomic writer, loaded by path: this script runs under
    ``python -I`` and imports nothing of the package, so that it starts fast."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("_gridshift_files", Path(__file__).resolve().parents[2] / "data"
                                                  / "files.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def write_exit(path: str, exit_code: int, reason: str) -> None:
    data = {"exit_code": exit_code, "reason": reason, "ended_at": datetime.now(UTC).isoformat()}
    _atomic_writer().write_json_atomic(path, data)


def describe(code: int) -> str:
    if code == 0:
        return "exit code 0"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}"
    return f"exit code {code}"


def _checkpoint_signal() -> int | None:
    """The checkpoint signal (``$GRIDSHIFT_CHECKPOINT_SIGNAL``, default SIGUSR1), unless it is one that
    ends a job on purpose."""
    name = os.environ.get("GRIDSHIFT_CHECKPOINT_SIGNAL", "SIGUSR1").upper()
    try:
        sig = signal.Signals[name if name.startswith("SIG") else f"SIG{name}"]
    except KeyError:
        return None
    return None if sig in ENDING else int(sig)


def catches(pid: int, signum: int) -> bool:
    """Does ``pid`` have a handler installed for ``signum``, and the signal not blocked? Only then is it
    safe to send it a signal whose default action ends the process: a program that has not yet installed its
    checkpoint handler (still starting) or never does is not sent the checkpoint signal (``/proc/<pid>/status``:
    SigCgt, SigBlk, SigIgn)."""
    bit = 1 << (signum - 1)
    masks = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("SigCgt:", "SigBlk:", "SigIgn:")):
                    masks[line[:6]] = int(line.split(":", 1)[1].strip(), 16)
    except (OSError, ValueError, IndexError):
        return False
    return bool(masks.get("SigCgt", 0) & bit) and not (masks.get("SigBlk", 0) | masks.get("SigIgn", 0)) & bit


def _group_others(pgid: int) -> list[int]:
    """Pids in process group ``pgid`` other than this one."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(rest[2]) == pgid and rest[0] not in "ZX":
            pids.append(int(entry))
    return pids


USAGE = ("usage: _wrap.py --exit-file PATH [--orphan-kill] [--user UID:GID] [--rlimit NAME=N ...] [--env-file JSON] "
         "-- CMD [ARGS...]")


def _values(opts: list[str], name: str) -> list[str]:
    return [opts[i + 1] for i, o in enumerate(opts[:-1]) if o == name]


def _limits(specs: list[str]) -> list[tuple[int, int]]:
    """``NAME=N`` (NOFILE, NPROC, AS, CPU) as (resource, value) pairs, else ValueError."""
    import resource

    out = []
    for spec in specs:
        name, _, value = spec.partition("=")
        out.append((getattr(resource, f"RLIMIT_{name}"), int(value)))
    return out


def _drop(user: tuple[int, int] | None, limits: list[tuple[int, int]], prctl) -> None:
    """In the command's child before exec: the limits (while still privileged, never above the hard limit
    an unprivileged wrapper may not raise), then no supplementary groups, the gid, the uid; the parent-death
    signal last (a change of user clears it)."""
    import resource

    for res, value in limits:
        hard = resource.getrlimit(res)[1]
        if os.geteuid() != 0 and hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(res, (value, value))
    if user is not None:
        os.setgroups([])
        os.setgid(user[1])
        os.setuid(user[0])
        if os.getuid() != user[0] or os.getgid() != user[1] or os.getgroups():
            os._exit(126)
    if prctl is not None:  # the command also dies if the wrapper itself is killed (PR_SET_PDEATHSIG, Linux)
        prctl(1, int(signal.SIGKILL), 0, 0, 0)


def main(argv: list[str]) -> int:
    if "--" not in argv:
        print(USAGE, file=sys.stderr)
        return 2
    sep = argv.index("--")
    opts, cmd = argv[:sep], argv[sep + 1:]
    if "--exit-file" not in opts or not cmd:
        print(USAGE, file=sys.stderr)
        return 2
    exit_file = opts[opts.index("--exit-file") + 1]
    orphan_kill = "--orphan-kill" in opts
    try:
        users = [tuple(int(x) for x in u.split(":")) for u in _values(opts, "--user")]
        user = users[-1] if users else None
        limits = _limits(_values(opts, "--rlimit"))
        if user is not None and len(user) != 2:
            raise ValueError(user)
        env = None
        for env_file in _values(opts, "--env-file")[-1:]:
            import json

            with open(env_file) as f:
                env = {str(k): str(v) for k, v in json.load(f).items()}
    except (ValueError, AttributeError, OSError) as e:
        print(f"{USAGE} ({e})", file=sys.stderr)
        return 2
    parent = os.getppid()
    child: subprocess.Popen | None = None
    checkpoint = _checkpoint_signal()
    early: list[int] = []  # ending signals that came before the command was started

    def on_signal(signum: int, frame: object) -> None:
        if child is None and signum in ENDING:
            early.append(signum)
        for pid in _group_others(os.getpgrp()):
            if signum == checkpoint and not catches(pid, signum):
                continue  # not (yet) handled there: its default action would end the job
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    for sig in FORWARDED:
        signal.signal(sig, on_signal)
    # The executor starts the wrapper with these signals blocked; now that the handlers are in place, take
    # them (one sent meanwhile is delivered here). The command inherits the unblocked mask.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
    if early:
        write_exit(exit_file, -early[0], f"{describe(-early[0])} before the command started")
        return 128 + early[0]
    drop = user is not None or limits or orphan_kill
    prctl = None
    if drop:
        import resource  # noqa: F401 (loaded here, not in the forked child)

        if orphan_kill:
            import ctypes

            prctl = ctypes.CDLL(None, use_errno=True).prctl

    def preexec() -> None:
        # Between fork and exec the child still has this wrapper's handlers: a checkpoint signal sent then
        # (the job looks as if it handled it) would stay pending across exec and end the command by its
        # default action. The forwarded signals are blocked around the fork (so the child does not look
        # ready), set to their defaults here, then unblocked: the command is sent the checkpoint signal only
        # once it installs its own handler.
        for sig in FORWARDED:
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
        if drop:
            _drop(user, limits, prctl)

    signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
    try:
        child = subprocess.Popen(cmd, preexec_fn=preexec, env=env)
    except FileNotFoundError:
        write_exit(exit_file, 127, f"command not found: {cmd[0]}")
        return 127
    except PermissionError:
        write_exit(exit_file, 126, f"command not executable: {cmd[0]}")
        return 126
    except OSError as e:
        write_exit(exit_file, 126, f"could not start {cmd[0]}: {e.strerror or e}")
        return 126
    except subprocess.SubprocessError as e:  # the limits or the change of user failed in the child
        write_exit(exit_file, 126, f"could not start {cmd[0]} with its limits and user: {e}")
        return 126
    finally:  # signals that came meanwhile are delivered here now, and forwarded as usual
        signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)

    if orphan_kill:
        def watch_parent() -> None:
            while child.poll() is None:
                if os.getppid() != parent:
                    on_signal(signal.SIGTERM, None)
                    os.killpg(os.getpgrp(), signal.SIGCONT)
                    deadline = time.monotonic() + 10.0
                    while child.poll() is None and time.monotonic() < deadline:
                        time.sleep(0.1)
                    for pid in _group_others(os.getpgrp()):
                        try:
                            os.kill(pid, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                    return
                time.sleep(1.0)

        threading.Thread(target=watch_parent, daemon=True).start()

    code = child.wait()
    write_exit(exit_file, code, describe(code))
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
