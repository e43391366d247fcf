"""Gavel's round mechanics in the round simulator (reset interval, accounting carried between resets,
per-type queues), Gavel's base FIFO as its code runs it, and Gavel's job-trace format."""

from __future__ import annotations

import numpy as np
import pytest

from gridshift.errors import DataError
from gridshift.plan.allocation.rounds import RoundInputs, gavel_fifo_assign, place_round_gavel
from gridshift.sim.rounds import Cluster, JobSet, RoundSimulator, SimConfig
from gridshift.studies.gavel import GANG_SIZES, jobs_from_trace

ROUND = 360.0


def _stream():
    """One accelerator; a long job (40 rounds of work) at t = 0, then a short job (one round) arriving
    every round for 12 rounds: the set of jobs changes every round."""
    n_short = 12
    arrival = np.r_[0.0, ROUND * np.arange(1, n_short + 1) - 1.0]
    steps = np.r_[40 * ROUND, np.full(n_short, ROUND)]
    jobs = JobSet(arrival_s=arrival, job_type=np.zeros(n_short + 1, int), steps=steps, gang=np.ones(n_short + 1, int))
    cluster = Cluster(pool_type=["V100"], count=[1], busy_power_w=[300.0], idle_power_w=[30.0])
    return jobs, cluster, np.ones((1, 1, 1))


def _run(**kw):
    jobs, cluster, thr = _stream()
    return RoundSimulator(jobs, cluster, thr, [1], SimConfig(policy="max-min-fairness", aware=False, **kw)).run()


def test_zeroing_received_time_at_every_resolve_runs_las_to_completion():
    """The agnostic-LAS gap: re-solving on every arrival restarts every job's received time at 0, so all
    priorities tie at ``x * 1e9`` and the incumbent (stickiness) keeps the accelerator until it finishes:
    LAS degenerates to non-preemptive FIFO and the short jobs wait behind the long one. Keeping the
    received time across arrivals (a reset interval, as Gavel's 1,920 s) restores time sharing, with
    either mechanism."""
    every = _run()
    gavel = _run(mechanics="gavel")
    kept = _run(reset_interval_s=1920.0)
    short = slice(1, None)
    jobs = _stream()[0]
    last_arrival = jobs.arrival_s[-1]
    # GridShift's default: while a job arrives every round, the long job keeps the accelerator; no short
    # job finishes before the arrivals stop
    assert every.completion_s[short].min() > last_arrival
    # Gavel's mechanics, and GridShift's with the accounting kept: short jobs share the accelerator at once
    for res in (gavel, kept):
        assert res.completion_s[short].min() < 0.75 * last_arrival
        assert np.mean(res.jct_s[short]) < 0.6 * np.mean(every.jct_s[short])
        assert np.nanmax(res.completion_s[short]) < res.completion_s[0]
    # re-solved at most every 1,920 s (plus the first solve)
    assert gavel.solves <= 1 + gavel.end_s // 1920.0 + 1
    assert every.solves > gavel.solves


def test_gavel_placement_fills_pools_in_order_from_sorted_queues():
    # pools 0 (slow) and 1 (fast), one accelerator each; order: fast pool first
    alloc = np.array([[0.0, 0.5], [0.0, 0.5], [0.5, 0.0]])
    inp = RoundInputs(alloc=alloc, gang=np.ones((3, 2)), throughput=np.ones((3, 2)),
                      received_frac=np.array([[0, 0.6], [0, 0.3], [0.2, 0]]), deficit_s=np.zeros((3, 2)),
                      incumbent=np.array([1, -1, -1]), free=np.array([1, 1]))
    # pool 1: job 1 (priority 0.5/0.3) beats job 0 (0.5/0.6), no stickiness; pool 0: job 2 (its allocation)
    assert place_round_gavel(inp, np.array([1, 0])).tolist() == [-1, 1, 0]
    # a job with no time on a pool still takes its leftover accelerators (priority 0, last in the queue)
    inp.alloc = np.array([[0.0, 0.5], [0.0, 0.5], [0.0, 0.0]])
    assert place_round_gavel(inp, np.array([1, 0])).tolist() == [0, 1, -1]
    # ties on priority go to the larger deficit
    inp.alloc, inp.received_frac = np.array([[0.0, 0.5], [0.0, 0.5], [0.0, 0.0]]), np.zeros((3, 2))
    inp.deficit_s = np.array([[0.0, 10.0], [0.0, 20.0], [0.0, 0.0]])
    assert place_round_gavel(inp, np.array([1]))[1] == 1


def test_gavel_fifo_binds_jobs_to_the_last_type_with_a_free_accelerator():
    """Gavel's base FIFO code: the type is the scan's last (v100), not the random one; when the chosen type
    is exactly full a *random* type leaves the list, so later jobs go on to the P100s (if the V100s left)
    or queue on the full V100s (if another type left)."""
    gang = np.ones(5, np.int64)
    thr = np.ones((5, 3))  # pools in Gavel's name order: k80, p100, v100
    outcomes = set()
    for seed in range(40):
        b = gavel_fifo_assign(np.arange(5), np.full(5, -1), np.zeros(0, int), gang, thr, np.array([4, 4, 2]),
                              np.random.default_rng(seed))
        outcomes.add(tuple(b.tolist()))
    assert outcomes == {(2, 2, 1, 1, 1), (2, 2, 2, 2, 2)}
    # a gang that fits nowhere stops the scan; a finished job's type goes to the head of the queue
    b = gavel_fifo_assign(np.array([1, 2]), np.array([2, -1, -1]), np.array([0]), np.array([1, 8, 1]),
                          np.ones((3, 3)), np.array([4, 4, 1]), np.random.default_rng(0))
    assert b.tolist() == [-1, -1, -1]  # job 1 (8 GPUs) does not fit V100's 1 free: nothing else is bound
    b = gavel_fifo_assign(np.array([1, 2]), np.array([2, -1, -1]), np.array([0]), np.array([1, 1, 1]),
                          np.ones((3, 3)), np.array([4, 4, 1]), np.random.default_rng(0))
    assert b.tolist() == [-1, 2, 1] or b.tolist() == [-1, 2, 2]  # job 1 takes job 0's V100


def test_gavel_fifo_time_shares_the_type_its_jobs_are_bound_to():
    # 6 one-GPU jobs of 10 rounds at t = 0 on one K80, one P100, one V100 (equal speed). Job 0 fills the
    # V100; if the random pop then removes another type, the rest queue on the V100 (its count goes
    # negative) while the other types stay idle, and the six share the V100 round by round
    jobs = JobSet(arrival_s=np.zeros(6), job_type=np.zeros(6, int), steps=np.full(6, 10 * ROUND), gang=np.ones(6, int))
    cluster = Cluster(pool_type=["K80", "P100", "V100"], count=[1, 1, 1], busy_power_w=[300.0] * 3,
                      idle_power_w=[30.0] * 3)
    ends, shared = [], []
    for seed in range(6):
        res = RoundSimulator(jobs, cluster, np.ones((1, 1, 3)), [1],
                             SimConfig(policy="fifo-fastest-free", aware=False, mechanics="gavel", seed=seed)).run()
        assert np.all(np.isfinite(res.completion_s))
        ends.append(res.completion_s.max())
        shared.append(res.preemptions > 0)
    strict = RoundSimulator(jobs, cluster, np.ones((1, 1, 3)), [1], SimConfig(policy="fifo-random", aware=False)).run()
    assert strict.completion_s.max() == pytest.approx(20 * ROUND)  # three at a time
    assert max(ends) == pytest.approx(60 * ROUND)  # all six on the V100
    assert any(shared)


TRACE = ("ResNet-18 (batch size 128)\tpython3 main.py --batch_size 128\timage_classification/cifar10\t"
         "--num_steps\t1\t925982\t4\t1\t-1.000000\t0\n"
         "Transformer (batch size 128)\tpython3 train.py\ttranslation\t-step\t1\t44334\t1\t5\t-1.000000\t120\n")


def test_gavel_trace_is_read_as_its_jobs(tmp_path):
    p = tmp_path / "jobs.trace"
    p.write_text(TRACE)
    types = ["Transformer (batch size 128)", "ResNet-18 (batch size 128)"]
    thr = np.ones((2, len(GANG_SIZES), 3))
    jobs = jobs_from_trace(p, types, thr)
    assert jobs.job_type.tolist() == [1, 0] and jobs.gang.tolist() == [4, 1]
    assert jobs.steps.tolist() == [925982.0, 44334.0] and jobs.arrival_s.tolist() == [0.0, 120.0]
    assert jobs.weight.tolist() == [1.0, 5.0]


@pytest.mark.parametrize("line, field", [
    ("ResNet-18 (batch size 128)\tcmd\tdir\t--n\t1\t100\t0\t1\t-1\t0\n", "scale_factor"),
    ("ResNet-18 (batch size 128)\tcmd\tdir\t--n\t1\t100\t1\t1\t-1\n", None),
    ("ResNet-18 (batch size 128)\tcmd\tdir\t--n\t1\tmany\t1\t1\t-1\t0\n", None),
    ("Unknown (batch size 1)\tcmd\tdir\t--n\t1\t100\t1\t1\t-1\t0\n", "job_type"),
    ("ResNet-18 (batch size 128)\tcmd\tdir\t--n\t1\t100\t3\t1\t-1\t0\n", "scale_factor"),
])
def test_bad_gavel_trace_names_file_row_and_field(tmp_path, line, field):
    p = tmp_path / "bad.trace"
    p.write_text(line)
    with pytest.raises(DataError) as e:
        jobs_from_trace(p, ["ResNet-18 (batch size 128)"], np.ones((1, len(GANG_SIZES), 3)))
    assert "bad.trace" in str(e.value)
    if field:
        assert field in str(e.value)


def test_weight_one_over_gang_gives_gavels_multi_gpu_las():
    """Gavel's LAS maximises min_j gang_j * thr_j(x) / prop_j (fair in accelerator time); GridShift's is fair
    in wall-clock time share. One pool of 2: a 1-GPU and a 2-GPU job, equal throughput."""
    from gridshift.plan.allocation.policies import allocate
    from gridshift.plan.allocation.problem import AllocationProblem

    def las(weight):
        pr = AllocationProblem(throughput=np.ones((2, 1)), gang=[1, 2], job_of_row=[0, 1], count=[2], weight=weight)
        return allocate("max-min-fairness", pr).x[:, 0]

    assert np.allclose(las(None), [2 / 3, 2 / 3])  # GridShift: the same share of time each
    assert np.allclose(las(np.array([1.0, 0.5])), [1.0, 0.5])  # Gavel: max min(x0, 2 x1), x0 + 2 x1 <= 2


def test_cli_rejects_unknown_mechanics_in_one_line():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "gridshift.cli", "hetero", "reproduce-gavel", "--quick",
                        "--mechanics", "nope"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "mechanics" in lines[0]


def test_unknown_mechanics_is_refused():
    jobs, cluster, thr = _stream()
    with pytest.raises(ValueError, match="gavel"):
        RoundSimulator(jobs, cluster, thr, [1], SimConfig(mechanics="nope"))


def test_gavel_agnostic_split_loses_the_share_where_a_job_cannot_run():
    """Gavel's agnostic LP sets every throughput to 1, so a job that cannot run on a type still gets a
    share of it, which its scheduler never uses (priority 0 there). With Gavel's mechanics the agnostic
    split is over every pool and that share is lost; GridShift's spreads it over the pools the job can
    use."""
    from gridshift.plan.allocation.policies import allocate
    from gridshift.plan.allocation.problem import AllocationProblem

    thr = np.array([[0.0, 2.0, 3.0], [1.0, 2.0, 3.0]])  # job 0 cannot run on the first type
    kw = dict(throughput=thr, gang=[1, 1], job_of_row=[0, 1], count=[2, 2, 2])
    own = allocate("max-min-fairness", AllocationProblem(**kw), aware=False)
    gavels = allocate("max-min-fairness", AllocationProblem(**kw, extra={"agnostic_split": "all-pools"}),
                      aware=False)
    assert own.x[0, 0] == 0 and gavels.x[0, 0] == 0
    assert own.x[0].sum() == pytest.approx(1.0)  # all its time, on the two types it can use
    assert gavels.x[0].sum() == pytest.approx(2 / 3)  # a third of it was on the first type: lost
    assert gavels.x[1].sum() == pytest.approx(own.x[1].sum())
    jobs = JobSet(arrival_s=[0.0, 0.0], job_type=[0, 1], steps=[1e4, 1e4], gang=[1, 1])
    cluster = Cluster(pool_type=["K80", "P100", "V100"], count=[2, 2, 2], busy_power_w=[300.0] * 3,
                      idle_power_w=[30.0] * 3)
    for mechanics, aware, extra in (("gavel", False, {"agnostic_split": "all-pools"}), ("gavel", True, {}),
                                    ("gridshift", False, {})):
        sim = RoundSimulator(jobs, cluster, thr[:, None, :], [1],
                             SimConfig(policy="max-min-fairness", aware=aware, mechanics=mechanics))
        assert sim.initial_problem().extra == extra
