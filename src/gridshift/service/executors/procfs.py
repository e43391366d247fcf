"""Linux processes through ``/proc`` for the local executor: one process's state, a process group's live
members, a job wrapper found by its command line, and :class:`ProcTable`, one scan of ``/proc`` indexed by
process group so that a ``report`` of N jobs reads ``/proc`` once instead of N times."""

from __future__ import annotations

import os
from pathlib import Path


def proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state letter, process group, start time in clock ticks since boot) of ``pid``, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return rest[0], int(rest[2]), int(rest[19])


class ProcTable:
    """A snapshot of every process: pid -> (state, pgid, start ticks), and the live (not zombie) members of
    each process group. Read once per reconciler pass (``LocalExecutor.report``)."""

    def __init__(self) -> None:
        self.stat: dict[int, tuple[str, int, int]] = {}
        self.groups: dict[int, dict[int, str]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                st = proc_stat(int(entry))
                if st is not None:
                    self.stat[int(entry)] = st
                    if st[0] not in "ZX":
                        self.groups.setdefault(st[1], {})[int(entry)] = st[0]

    def members(self, pgid: int | None) -> dict[int, str]:
        return dict(self.groups.get(pgid, {})) if pgid else {}

    def alive(self, pid: int | None, start_ticks: int | None) -> str | None:
        st = self.stat.get(pid) if pid else None
        if st is None or st[0] in "ZX" or (start_ticks is not None and st[2] != start_ticks):
            return None
        return st[0]


def proc_alive(pid: int | None, start_ticks: int | None, table: ProcTable | None = None) -> str | None:
    """The state letter of ``pid`` if it is the same process (start time matches) and not a zombie."""
    if table is not None:
        return table.alive(pid, start_ticks)
    if not pid:
        return None
    st = proc_stat(pid)
    if st is None or st[0] in "ZX" or (start_ticks is not None and st[2] != start_ticks):
        return None
    return st[0]


def group_members(pgid: int | None, table: ProcTable | None = None) -> dict[int, str]:
    """Live processes of group ``pgid`` and their state letters (from ``table`` when given)."""
    if table is not None:
        return table.members(pgid)
    out: dict[int, str] = {}
    if not pgid:
        return out
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = proc_stat(int(entry))
            if st is not None and st[1] == pgid and st[0] not in "ZX":
                out[int(entry)] = st[0]
    return out


def find_wrapper(exit_file: Path) -> tuple[int, int] | None:
    """(pid, start ticks) of a live wrapper started with ``exit_file``, found by its command line."""
    needle = str(exit_file).encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if needle in args and any(a.endswith(b"_wrap.py") for a in args):
            st = proc_stat(int(entry))
            if st is not None and st[0] not in "ZX":
                return int(entry), st[2]
    return None


__all__ = ["ProcTable", "find_wrapper", "group_members", "proc_alive", "proc_stat"]
