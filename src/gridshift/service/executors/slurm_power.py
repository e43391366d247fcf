"""DR shedding of whole idle nodes through Slurm's own power saving (``SuspendProgram`` / ``ResumeProgram``).

While a site is under a grid event that asks for less power, :meth:`NodePower.step` powers down the idle
nodes of the site's partition; when the event is over it powers them up again. Each call is one reconcile
step (the reconciler makes it once a pass); per node:

1. an idle node is drained first (``scontrol update NodeName=N State=DRAIN Reason="gridshift: grid event E:
   powered down while idle"``), so that no job starts on it between the check and the power-down;
2. read again: still idle (base state IDLE, no CPU allocated, not completing) → ``State=POWER_DOWN`` (Slurm
   runs its ``SuspendProgram`` with the node's name); a job that started meanwhile → ``State=UNDRAIN`` and
   the node is left alone;
3. while the event lasts the node is kept drained: Slurm 22.05 clears the drain flag when it powers a node
   down, and would otherwise power an idle node up again (``ResumeProgram``) for a queued job;
4. when no event covers its site any more: ``State=POWER_UP`` (Slurm runs ``ResumeProgram`` and waits up to
   ``ResumeTimeout`` for the node's slurmd to register) and ``State=UNDRAIN``. A node still powering down
   cannot be powered up before ``SuspendTimeout``: it is asked again at the next step. The node stays in the
   record until it is seen up.

Never touched: a node that is not idle (running, suspended or completing jobs; ``POWER_DOWN`` on a busy node
would power it down when its jobs end, so it is never asked for), one drained, failing or down by an operator
or Slurm (a drain reason that is not GridShift's), one Slurm's power saving already has, one in
``SuspendExcNodes`` or in a partition of ``SuspendExcParts``. A node GridShift powered down whose drain
reason someone changed is left to them. The nodes GridShift powered down are kept in
``STATE_DIR/slurm-power.json``, so a restarted service restores them.

Every change, and every node left alone with its reason (once, until the reason changes), is a decision
``{"at", "node", "site", "event", "action", "reason"}`` (action ``power_down``, ``power_up``, ``drain``,
``released``, ``wait`` or ``skip``), returned by :meth:`NodePower.step`, logged, and kept in the last
``KEEP`` of ``STATE_DIR/slurm-power.json``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from gridshift.service.executors.base import ExecutorError, utc_now
from gridshift.service.executors.local import read_json, write_json_atomic
from gridshift.service.executors.slurm_cli import SlurmCli

log = logging.getLogger("gridshift.executors.slurm")

REASON = "gridshift: grid event"  # the drain reason GridShift sets starts with this
KEEP = 200  # decisions kept in the state file
POWER_FLAGS = frozenset({"POWER_DOWN", "POWERING_DOWN", "POWERED_DOWN", "POWERING_UP", "POWER_UP"})
# flags of a node GridShift must leave alone (besides DRAIN with someone else's reason and the power flags)
HANDS_OFF = frozenset({"FAIL", "MAINTENANCE", "NOT_RESPONDING", "REBOOT_REQUESTED", "REBOOT_ISSUED", "COMPLETING",
                       "RESERVED", "PLANNED"})
_REDRAIN_WAIT_S = 3.0  # after POWER_DOWN, how long to wait for Slurm to start powering down (to drain again)


def reason_for(event: str) -> str:
    return f"{REASON} {event}: powered down while idle"


class NodePower:
    """The nodes GridShift powered down for grid events, and the step that keeps Slurm matching the events
    in force (see the module docstring). ``partition(site)`` maps a site to its partition."""

    def __init__(self, cli: SlurmCli, path: Path, partition: Callable[[str], str]) -> None:
        self.cli, self.path, self.partition = cli, Path(path), partition
        doc = read_json(self.path) or {}
        self.nodes: dict[str, dict[str, Any]] = dict(doc.get("nodes") or {})
        self.decisions: list[dict[str, Any]] = list(doc.get("decisions") or [])
        self._said: dict[str | None, str] = {}  # the last skip said per node (said once until it changes)

    # ------------------------------------------------------------------ Slurm's view

    def _config(self) -> dict[str, str]:
        out = self.cli.scontrol("show", "config")
        conf = {}
        for line in out.splitlines():
            key, eq, value = line.partition("=")
            if eq:
                conf[key.strip()] = value.strip()
        return conf

    def _hostnames(self, hostlist: str) -> set[str]:
        if not hostlist or hostlist == "(null)":
            return set()
        plain = ",".join(part.split(":", 1)[0] for part in _split_hostlist(hostlist))  # "n[1-4]:2": all of them
        return {h.strip() for h in self.cli.scontrol("show", "hostnames", plain).split() if h.strip()}

    def power_saving_problem(self, conf: Mapping[str, str]) -> str | None:
        """Why Slurm cannot power nodes down on request (None: it can)."""
        missing = [k for k in ("SuspendProgram", "ResumeProgram") if conf.get(k) in (None, "", "(null)")]
        if missing:
            return f"Slurm's power saving is not configured: no {' and no '.join(missing)} in slurm.conf"
        if conf.get("SuspendTime", "NONE").split()[0].upper() in ("NONE", "INFINITE", "-1"):
            return ("Slurm's power saving is off (SuspendTime=INFINITE: Slurm 22.05 then refuses State=POWER_DOWN); "
                    "set SuspendTime to a long time, e.g. 31536000")
        return None

    # ------------------------------------------------------------------ the step

    def step(self, events: Mapping[str, str], now: datetime | None = None) -> list[dict[str, Any]]:
        """Match Slurm to ``events`` (site → id of the grid event asking that site for less power now): power
        down the idle nodes of those sites' partitions, power up the nodes of sites no event covers any more.
        Returns this step's decisions."""
        if not events and not self.nodes:
            return []
        at = (now or utc_now()).isoformat()
        out: list[dict[str, Any]] = []

        def decide(node: str | None, site: str | None, event: str | None, action: str, reason: str) -> None:
            if action in ("skip", "wait") and self._said.get(node) == reason:
                return  # said already: once until it changes
            self._said[node] = reason if action in ("skip", "wait") else ""
            d = {"at": at, "node": node, "site": site, "event": event, "action": action, "reason": reason}
            out.append(d)
            log.info("slurm node power: %s %s (site %s, event %s): %s", action, node or "-", site, event, reason)

        conf = self._config()
        problem = self.power_saving_problem(conf)
        if problem is not None:
            decide(None, None, None, "skip", problem)
            return self._save(out)
        nodes = {n["name"]: n for n in self.cli.nodes()}
        excluded = self._hostnames(conf.get("SuspendExcNodes", ""))
        excluded_parts = {p.strip() for p in conf.get("SuspendExcParts", "").split(",") if p.strip() not in ("", "(null)")}
        wanted: dict[str, tuple[str, str]] = {}  # node -> (site, event)
        for site, event in sorted(events.items()):
            try:
                part = self.partition(site)
            except ExecutorError as e:
                decide(None, site, event, "skip", e.message)
                continue
            for name, n in sorted(nodes.items()):
                if part in (n.get("partitions") or []):
                    wanted.setdefault(name, (site, event))
                    if part in excluded_parts:
                        excluded.add(name)
        for name, rec in sorted(self.nodes.items()):
            self._keep_or_restore(name, rec, nodes.get(name), wanted.get(name), decide)
        fresh = [name for name, (site, event) in sorted(wanted.items())
                 if name not in self.nodes and self._shed(name, site, event, nodes[name], name in excluded, decide)]
        self._drain_again(fresh)
        return self._save(out)

    def _shed(self, name: str, site: str, event: str, n: Mapping[str, Any], excluded: bool, decide) -> bool:
        """Power ``name`` down if it is idle; True if it was."""
        why = None if not excluded else "in SuspendExcNodes or SuspendExcParts: never powered down"
        why = why or _not_idle(n)
        if why is not None:
            decide(name, site, event, "skip", why)
            return False
        self.cli.scontrol("update", f"NodeName={name}", "State=DRAIN", f"Reason={reason_for(event)}")
        again = self._node(name)
        busy = _not_idle(again, ours=True) if again is not None else "no longer listed by Slurm"
        if busy is not None:
            self.cli.scontrol("update", f"NodeName={name}", "State=UNDRAIN")
            decide(name, site, event, "skip", f"{busy} (seen after draining it; drain undone)")
            return False
        self.cli.scontrol("update", f"NodeName={name}", "State=POWER_DOWN")
        self.nodes[name] = {"site": site, "event": event, "since": utc_now().isoformat()}
        decide(name, site, event, "power_down", "idle: State=POWER_DOWN (Slurm runs SuspendProgram); kept drained "
                                                "while the event lasts")
        return True

    def _drain_again(self, names: list[str]) -> None:
        """Slurm clears the drain flag as it starts powering a node down: drain the ``names`` again then (up to
        ``_REDRAIN_WAIT_S``; any left are drained at the next step)."""
        left = set(names)
        deadline = time.monotonic() + _REDRAIN_WAIT_S
        while left and time.monotonic() < deadline:
            time.sleep(0.2)
            for n in self.cli.nodes():
                flags = set(n.get("state_flags") or [])
                if n.get("name") in left and flags & {"POWERING_DOWN", "POWERED_DOWN"}:
                    left.discard(n["name"])
                    if "DRAIN" not in flags:
                        rec = self.nodes[n["name"]]
                        self.cli.scontrol("update", f"NodeName={n['name']}", "State=DRAIN",
                                          f"Reason={reason_for(rec['event'])}")

    def _keep_or_restore(self, name: str, rec: dict[str, Any], n: Mapping[str, Any] | None,
                         want: tuple[str, str] | None, decide) -> None:
        site, event = rec.get("site"), rec.get("event")
        if n is None:
            del self.nodes[name]
            decide(name, site, event, "released", "no longer listed by Slurm")
            return
        flags = set(n.get("state_flags") or [])
        reason = str(n.get("reason") or "")
        if "DRAIN" in flags and not reason.startswith(REASON):
            del self.nodes[name]
            decide(name, site, event, "released", f"drained by someone else meanwhile (reason '{reason}'): left "
                                                  "untouched")
            return
        if want is not None:  # still shed: keep it down and drained (the newest event's id on it)
            rec.update(site=want[0], event=want[1])
            if flags & {"POWERING_DOWN", "POWERED_DOWN", "POWER_DOWN"} and "DRAIN" not in flags:
                self.cli.scontrol("update", f"NodeName={name}", "State=DRAIN", f"Reason={reason_for(want[1])}")
                decide(name, want[0], want[1], "drain", "powered down: drained again so that Slurm does not "
                                                        "power it up for queued jobs while the event lasts")
            return
        if "POWERING_DOWN" in flags:
            decide(name, site, event, "wait", "the event is over; still powering down (SuspendTimeout): powered up "
                                              "at a later step")
            return
        if flags & {"POWERED_DOWN", "POWER_DOWN"} and not flags & {"POWER_UP", "POWERING_UP"}:
            self.cli.scontrol("update", f"NodeName={name}", "State=POWER_UP")
            decide(name, site, event, "power_up", "the event is over: State=POWER_UP (Slurm runs ResumeProgram)")
        if "DRAIN" in flags:
            self.cli.scontrol("update", f"NodeName={name}", "State=UNDRAIN")
        elif not flags & POWER_FLAGS:
            del self.nodes[name]
            decide(name, site, event, "released", f"up again ({n.get('state')})")

    def _node(self, name: str) -> dict[str, Any] | None:
        return next((n for n in self.cli.nodes() if n.get("name") == name), None)

    def _save(self, out: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if out:
            self.decisions = (self.decisions + out)[-KEEP:]
        write_json_atomic(self.path, {"version": 1, "nodes": self.nodes, "decisions": self.decisions})
        return out


def _not_idle(n: Mapping[str, Any], *, ours: bool = False) -> str | None:
    """Why node ``n`` (sinfo --json) must not be powered down (None: it is idle and free to). ``ours``: a
    drain with GridShift's reason does not count."""
    state = str(n.get("state") or "").lower()
    flags = set(n.get("state_flags") or [])
    reason = str(n.get("reason") or "")
    if "DRAIN" in flags and not (ours and reason.startswith(REASON)):
        return f"drained (reason '{reason}'): left untouched"
    if flags & POWER_FLAGS:
        return f"already in Slurm's power saving ({'+'.join(sorted(flags & POWER_FLAGS))})"
    if state in ("down", "error", "future", "unknown") or flags & HANDS_OFF:
        return f"{state}{'+' + '+'.join(sorted(flags & HANDS_OFF)) if flags & HANDS_OFF else ''}: left untouched"
    if state != "idle" or int(n.get("alloc_cpus") or 0) > 0:
        return f"running jobs ({state}, {int(n.get('alloc_cpus') or 0)} CPUs allocated): never powered down"
    return None


def _split_hostlist(text: str) -> list[str]:
    """A hostlist split at the commas outside brackets (``a[1-3],b`` → ``a[1-3]``, ``b``)."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += (ch == "[") - (ch == "]")
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return [p for p in (*parts, cur) if p.strip()]


__all__ = ["REASON", "NodePower", "reason_for"]
