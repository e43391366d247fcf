"""Power-cap actuators: the simulated one end to end, NVML's error path on a machine without a GPU."""

from __future__ import annotations

import pytest

from gridshift.service.executors import ExecutorError
from gridshift.service.executors.powercap import (
    DeviceLimits,
    NvmlActuator,
    SimulatedActuator,
    cap_watts,
    make_actuator,
)


def test_cap_watts_is_the_fraction_of_max_within_the_device_range():
    dev = DeviceLimits(0, "H100", 200.0, 700.0, 700.0, 700.0)
    assert cap_watts(0.5, dev) == 350.0
    assert cap_watts(0.1, dev) == 200.0  # below the minimum: the minimum
    assert cap_watts(1.0, dev) == 700.0


def test_simulated_actuator_sets_reads_back_and_restores_what_it_found():
    act = SimulatedActuator([("H100", 200.0, 700.0, 650.0), ("H100", 200.0, 700.0), ("L4", 40.0, 72.0)])
    with act:
        assert act.set_cap_frac([0, 2], 0.5) == {0: 350.0, 2: 40.0}
        assert act.read_w(1) == 700.0  # untouched
        assert act.set_job_cap("j1", 0.8, [1]) == {1: 560.0}
        assert act.job_caps() == {"j1": (0.8, [1])}
        assert act.set_cap_frac([0], 0.9) == {0: 630.0}  # a second change keeps the first original
        with pytest.raises(ExecutorError, match=r"outside device 2's range \[40, 72\] W"):
            act.set_limit_w(2, 100.0)
        with pytest.raises(ExecutorError, match="no device with index 7"):
            act.set_cap_frac([7], 0.5)
        with pytest.raises(ExecutorError, match=r"power cap must be in \(0, 1\]"):
            act.set_cap_frac(None, 0.0)
    assert [act.read_w(i) for i in range(3)] == [650.0, 700.0, 72.0]  # restored on leaving the block
    assert act.job_caps() == {}


def test_simulated_actuator_without_privileges_fails_clearly_and_changes_nothing():
    act = make_actuator("simulated", devices=[("H100", 200.0, 700.0)], privileged=False)
    with pytest.raises(ExecutorError, match="needs root") as e:
        act.set_cap_frac(None, 0.5)
    assert not e.value.retryable and act.read_w(0) == 700.0


def test_nvml_without_a_gpu_or_driver_is_one_clear_non_retryable_error():
    pytest.importorskip("pynvml")
    try:
        act = NvmlActuator()
    except ExecutorError as e:
        assert not e.retryable and str(e).startswith("nvml: cannot initialise NVML")
        assert "no NVIDIA driver or GPU" in str(e)
        return
    try:  # a machine with a GPU: reading works; setting needs root
        devs = act.devices()
        assert devs and all(d.min_w <= d.current_w <= d.max_w for d in devs)
    finally:
        act.close()


def test_unknown_actuator_name():
    with pytest.raises(ExecutorError, match="unknown power-cap actuator 'x'"):
        make_actuator("x")
