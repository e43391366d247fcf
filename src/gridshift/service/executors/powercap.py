"""Power-cap actuators: set and read accelerator power limits.

A plan or a grid event gives a job a power cap as a fraction (0, 1] of its accelerators' maximum power;
an actuator turns it into watts per device, ``clamp(frac × max_w, min_w, max_w)`` within the device's own
constraints, sets it, reads it back, and restores every limit it changed to the value it found (``restore``,
``close``, or leaving a ``with`` block). Two implementations:

- :class:`NvmlActuator`: NVIDIA GPUs through NVML (``nvidia-ml-py``, the extra ``powercap``):
  ``nvmlDeviceGetPowerManagementLimitConstraints``, ``nvmlDeviceSetPowerManagementLimit`` (needs root),
  ``nvmlDeviceGetPowerManagementLimit``. Without the driver or a GPU, or without the privilege, each call
  is one clear, non-retryable :class:`ExecutorError`.
- :class:`SimulatedActuator`: devices in memory, for tests and for machines without accelerators.

The local executor calls its actuator on start, on ``set_power_cap`` and on a resume with a new cap, for
the devices in the job's ``CUDA_VISIBLE_DEVICES`` (else every device); the Slurm executor for the GPU
indices Slurm gave the job (``gres_detail``), when the service runs on the job's node — on a cluster a
prolog applies the cap from the job's comment instead (docs/service/executors.md).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gridshift.errors import MissingExtraError, require
from gridshift.service.executors.base import ExecutorError, check_power_cap_frac


@dataclass(frozen=True)
class DeviceLimits:
    """One device's power limits in watts: the range it accepts, its default and its current limit."""

    index: int
    name: str
    min_w: float
    max_w: float
    default_w: float
    current_w: float


def cap_watts(frac: float, dev: DeviceLimits) -> float:
    """The limit in watts for cap ``frac`` on ``dev``: ``frac × max_w`` kept within [min_w, max_w]."""
    return float(min(max(frac * dev.max_w, dev.min_w), dev.max_w))


class PowerCapActuator(ABC):
    """Sets and reads power limits; remembers each device's limit before its first change and puts it back
    on :meth:`restore`."""

    name = "actuator"

    def __init__(self) -> None:
        self._original: dict[int, float] = {}
        self._jobs: dict[str, tuple[float, list[int]]] = {}
        self._lock = threading.RLock()

    @abstractmethod
    def devices(self) -> list[DeviceLimits]:
        """Every device with its limits."""

    @abstractmethod
    def _set_w(self, index: int, watts: float) -> None: ...

    @abstractmethod
    def read_w(self, index: int) -> float:
        """The device's current power limit in watts."""

    def _device(self, index: int) -> DeviceLimits:
        for d in self.devices():
            if d.index == index:
                return d
        raise ExecutorError(f"{self.name}: no device with index {index} "
                            f"(devices: {', '.join(str(d.index) for d in self.devices()) or 'none'})", retryable=False)

    def set_limit_w(self, index: int, watts: float) -> float:
        """Set device ``index`` to ``watts`` (must be within its constraints); returns the limit read back."""
        dev = self._device(index)
        if not dev.min_w - 1e-6 <= watts <= dev.max_w + 1e-6:
            raise ExecutorError(f"{self.name}: {watts:g} W is outside device {index}'s range "
                                f"[{dev.min_w:g}, {dev.max_w:g}] W", retryable=False)
        with self._lock:
            self._original.setdefault(index, dev.current_w)
            self._set_w(index, watts)
            got = self.read_w(index)
        if abs(got - watts) > 1.0:
            raise ExecutorError(f"{self.name}: device {index} reads back {got:g} W after setting {watts:g} W")
        return got

    def set_cap_frac(self, indices: Iterable[int] | None, frac: float) -> dict[int, float]:
        """Cap the devices ``indices`` (None: all) at ``frac`` of their maximum; {index: watts read back}."""
        frac = check_power_cap_frac(frac)
        devs = {d.index: d for d in self.devices()}
        chosen = sorted(devs) if indices is None else list(indices)
        out = {}
        for i in chosen:
            if i not in devs:
                self._device(i)  # raises: no such device
            out[i] = self.set_limit_w(i, cap_watts(frac, devs[i]))
        return out

    def set_job_cap(self, job_id: str, frac: float, indices: Sequence[int] | None, accelerator: str | None = None
                    ) -> dict[int, float]:
        """Cap the devices of job ``job_id`` (``accelerator`` is informational); remembered per job."""
        out = self.set_cap_frac(indices, frac)
        with self._lock:
            self._jobs[job_id] = (float(frac), sorted(out))
        return out

    def job_caps(self) -> dict[str, tuple[float, list[int]]]:
        """{job id: (cap fraction, device indices)} of the caps set through :meth:`set_job_cap`."""
        with self._lock:
            return dict(self._jobs)

    def restore(self) -> dict[int, float]:
        """Put every changed device back to the limit it had before; {index: watts read back}."""
        out = {}
        with self._lock:
            for index, watts in sorted(self._original.items()):
                self._set_w(index, watts)
                out[index] = self.read_w(index)
            self._original.clear()
            self._jobs.clear()
        return out

    def close(self) -> None:
        self.restore()

    def __enter__(self) -> PowerCapActuator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SimulatedActuator(PowerCapActuator):
    """Devices in memory: ``devices`` as (name, min_w, max_w) or (name, min_w, max_w, default_w); with
    ``privileged=False`` every set fails as NVML does without root."""

    name = "simulated"

    def __init__(self, devices: Sequence[tuple] = (("H100", 200.0, 700.0),) * 2, *, privileged: bool = True) -> None:
        super().__init__()
        self._devs = []
        for i, d in enumerate(devices):
            name, lo, hi = d[0], float(d[1]), float(d[2])
            default = float(d[3]) if len(d) > 3 else hi
            if not 0 < lo <= default <= hi:
                raise ExecutorError(f"simulated device {i}: need 0 < min_w <= default_w <= max_w", retryable=False)
            self._devs.append([name, lo, hi, default, default])
        self.privileged = privileged
        self.set_calls = 0

    def devices(self) -> list[DeviceLimits]:
        return [DeviceLimits(i, d[0], d[1], d[2], d[3], d[4]) for i, d in enumerate(self._devs)]

    def _set_w(self, index: int, watts: float) -> None:
        if not self.privileged:
            raise ExecutorError(f"{self.name}: setting the power limit of device {index} needs root "
                                "(NVML: Insufficient Permissions)", retryable=False)
        self.set_calls += 1
        self._devs[index][4] = float(watts)

    def read_w(self, index: int) -> float:
        return float(self._devs[index][4])


class NvmlActuator(PowerCapActuator):
    """NVIDIA GPUs through NVML (``pip install 'gridshift[powercap]'``)."""

    name = "nvml"

    def __init__(self) -> None:
        super().__init__()
        try:
            self._nv = require("pynvml", "powercap", "the NVML power-cap actuator")
        except MissingExtraError as e:
            raise ExecutorError(e.message, retryable=False) from None
        try:
            self._nv.nvmlInit()
        except self._nv.NVMLError as e:
            raise ExecutorError(f"nvml: cannot initialise NVML ({e}): no NVIDIA driver or GPU on this machine",
                                retryable=False) from None
        self._handles: dict[int, object] = {}

    def _call(self, what: str, fn, *args):
        try:
            return fn(*args)
        except self._nv.NVMLError as e:
            perm = isinstance(e, getattr(self._nv, "NVMLError_NoPermission", ()))
            hint = " (needs root, or the administrator's nvidia-smi -acp UNRESTRICTED)" if perm else ""
            raise ExecutorError(f"nvml: {what}: {e}{hint}", retryable=False) from None

    def _handle(self, index: int):
        if index not in self._handles:
            self._handles[index] = self._call(f"device {index}", self._nv.nvmlDeviceGetHandleByIndex, index)
        return self._handles[index]

    def devices(self) -> list[DeviceLimits]:
        nv = self._nv
        out = []
        for i in range(self._call("device count", nv.nvmlDeviceGetCount)):
            h = self._handle(i)
            lo, hi = self._call(f"device {i} limit constraints", nv.nvmlDeviceGetPowerManagementLimitConstraints, h)
            name = self._call(f"device {i} name", nv.nvmlDeviceGetName, h)
            out.append(DeviceLimits(i, name.decode() if isinstance(name, bytes) else str(name), lo / 1000.0, hi / 1000.0,
                                    self._call(f"device {i} default limit",
                                               nv.nvmlDeviceGetPowerManagementDefaultLimit, h) / 1000.0,
                                    self.read_w(i)))
        return out

    def _set_w(self, index: int, watts: float) -> None:
        self._call(f"set device {index} to {watts:g} W", self._nv.nvmlDeviceSetPowerManagementLimit,
                   self._handle(index), int(round(watts * 1000)))

    def read_w(self, index: int) -> float:
        return self._call(f"device {index} limit", self._nv.nvmlDeviceGetPowerManagementLimit,
                          self._handle(index)) / 1000.0

    def close(self) -> None:
        try:
            self.restore()
        finally:
            try:
                self._nv.nvmlShutdown()
            except self._nv.NVMLError:
                pass


def make_actuator(name: str, **options) -> PowerCapActuator:
    """An actuator by name: ``nvml`` or ``simulated``."""
    if name == "nvml":
        return NvmlActuator(**options)
    if name == "simulated":
        return SimulatedActuator(**options)
    raise ExecutorError(f"unknown power-cap actuator '{name}' (known: nvml, simulated)", retryable=False)


__all__ = ["DeviceLimits", "NvmlActuator", "PowerCapActuator", "SimulatedActuator", "cap_watts", "make_actuator"]
