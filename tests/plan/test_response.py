"""Demand-response levers and the step-by-step response: hand-computed cases."""

import numpy as np
import pytest

from gridshift.plan.response import job_levers, merge, respond

LIN_X, LIN_Y = np.array([0.4, 1.0]), np.array([0.4, 1.0])  # throughput proportional to power


def _jobs(tier, gang=(8,), cap=(1.0,), interruptible=(True,), checkpoint=(60.0,), rate=(8.0,)):
    n = len(tier)
    return job_levers(gang=np.array(gang), cap_frac=np.array(cap), curve_x=[LIN_X], curve_y=[LIN_Y],
                      type_idx=np.zeros(n, int), board_w=np.full(n, 500.0), idle_w=np.full(n, 50.0),
                      pue=np.full(n, 1.2), tier=np.array(tier), interruptible=np.array(interruptible),
                      checkpoint_s=np.array(checkpoint), work_rate=np.array(rate))


def test_tier_limits_set_the_deepest_cap():
    # tier 1: 10 % loss on a linear curve = cap at 0.9: 8 × 500 W × 0.1 × 1.2 = 480 W
    lv = _jobs([1])
    assert lv.save_mw.sum() == pytest.approx(480e-6)
    assert lv.loss_frac.sum() == pytest.approx(0.10)
    # tier 2: 25 %
    assert _jobs([2]).save_mw.sum() == pytest.approx(8 * 500 * 0.25 * 1.2 / 1e6)
    # tier 3: cap to 0.5 (50 % loss) then pause: 0.5 → idle = 8 × (250 − 50) × 1.2 W
    lv3 = _jobs([3], checkpoint=[90.0])
    assert lv3.save_mw.sum() == pytest.approx((8 * 500 * 0.5 * 1.2 + 8 * 200 * 1.2) / 1e6)
    assert lv3.loss_frac.sum() == pytest.approx(1.0)
    assert lv3.ready_s.max() == 90.0
    # tier 3 but not interruptible: no pause
    assert _jobs([3], interruptible=[False]).loss_frac.sum() == pytest.approx(0.5)


def test_tier_zero_is_never_slowed():
    lv = _jobs([0, 0], gang=(8, 4), cap=(1.0, 1.0), interruptible=(True, True), checkpoint=(60, 60), rate=(8, 4))
    assert lv.unit.size == 0
    r = respond(lv, baseline_mw=1.0, target_mw=np.full(5, 0.8), step_s=60, ramp_mw_per_min=None)
    assert np.all(r.shed_mw == 0) and np.all(r.unit_loss_frac == 0)
    assert np.allclose(r.shortfall_mw, 0.2)


def test_cheapest_tier_first():
    lv = _jobs([1, 3], gang=(8, 8), cap=(1.0, 1.0), interruptible=(True, True), checkpoint=(60, 60), rate=(8, 8))
    need = 200e-6  # less than either unit's cap lever
    r = respond(lv, baseline_mw=1.0, target_mw=np.full(3, 1.0 - need), step_s=60, ramp_mw_per_min=None,
                elapsed_s=60)
    assert np.allclose(r.shed_mw, need)
    assert r.unit_loss_frac[0] == 0.0 and r.unit_loss_frac[1] > 0


def test_ramp_starts_early_and_holds_the_rate():
    # one big tier-3 unit, 5 MW to shed from step 10 on, 1 MW/min: each step holds one level, so shedding
    # starts at step 6 and the level of step 10 is the target
    lv = job_levers(gang=np.array([10000]), cap_frac=np.array([1.0]), curve_x=[LIN_X], curve_y=[LIN_Y],
                    type_idx=np.array([0]), board_w=np.array([1000.0]), idle_w=np.array([100.0]),
                    pue=np.array([1.0]), tier=np.array([3]), interruptible=np.array([True]),
                    checkpoint_s=np.array([0.0]), work_rate=np.array([1.0]))
    target = np.r_[np.full(10, np.inf), np.full(5, 5.0)]
    r = respond(lv, baseline_mw=10.0, target_mw=target, step_s=60, ramp_mw_per_min=1.0, elapsed_s=3600)
    assert np.allclose(r.shed_mw[:6], 0.0)
    assert np.allclose(r.shed_mw[6:11], [1, 2, 3, 4, 5])
    assert np.allclose(r.achieved_mw[10:], 5.0) and np.all(r.shortfall_mw == 0)
    assert np.all(np.abs(np.diff(np.r_[0.0, r.shed_mw])) <= 1.0 + 1e-9)
    # after the event: back up at the ramp rate from where the previous slot ended
    r2 = respond(lv, baseline_mw=10.0, target_mw=np.full(4, np.inf), step_s=60, ramp_mw_per_min=1.0,
                 start_level_mw=5.0, elapsed_s=7200)
    assert np.allclose(r2.shed_mw, [4, 3, 2, 1])
    # a slot that would start more work at once is held to the ramp too
    r3 = respond(lv, baseline_mw=10.0, target_mw=np.full(3, np.inf), step_s=60, ramp_mw_per_min=1.0,
                 start_level_mw=7.5, elapsed_s=7200)
    assert np.allclose(r3.achieved_mw, [8.5, 9.5, 10.0])


def test_pause_waits_for_the_checkpoint():
    lv = _jobs([3], checkpoint=[120.0])
    cap_only = 8 * 500 * 0.5 * 1.2 / 1e6
    r = respond(lv, baseline_mw=1.0, target_mw=np.full(4, 0.0), step_s=60, ramp_mw_per_min=None)
    assert r.shed_mw[0] == 0.0  # no lever acts instantly
    assert r.shed_mw[1] == pytest.approx(cap_only)  # the checkpoint is still being written
    assert r.shed_mw[2] == pytest.approx(lv.max_save_mw)


def test_service_capping_keeps_the_slo():
    # a tier-3 service with 5 % spare capacity may lose at most 5 % throughput, and never pauses
    lv = job_levers(gang=np.array([4.0]), cap_frac=np.array([1.0]), curve_x=[LIN_X], curve_y=[LIN_Y],
                    type_idx=np.array([0]), board_w=np.array([500.0]), idle_w=np.array([50.0]), pue=np.array([1.0]),
                    tier=np.array([3]), interruptible=np.array([False]), checkpoint_s=np.array([0.0]),
                    work_rate=np.array([4.0]), max_loss_frac=np.array([0.05]))
    assert lv.loss_frac.sum() == pytest.approx(0.05)
    assert lv.save_mw.sum() == pytest.approx(4 * 500 * 0.05 / 1e6)
    both = merge([_jobs([2]), lv])
    assert both.unit.size == 2 and both.n_units == 1


def test_commitment_curve_respects_deadlines():
    from gridshift.plan.response import commitment_curve

    # unit 0: tier 1 (10 % loss), 1 h of slack -> usable for 10 h; unit 1: tier 3 (50 % cap + pause), no deadline
    lv = _jobs([1, 3], gang=(8, 8), cap=(1.0, 1.0), interruptible=(True, True), checkpoint=(60, 60), rate=(8, 8))
    cc = commitment_curve(lv, unit_tier=np.array([1, 3]), unit_rate=np.array([8.0, 8.0]),
                          unit_slack_h=np.array([1.0, np.inf]), duration_h=np.array([1.0, 10.0, 11.0]))
    u1 = (8 * 500 * 0.5 * 1.2 + 8 * 200 * 1.2) / 1e6
    assert cc.shed_mw[0] == pytest.approx(480e-6 + u1)
    assert cc.shed_mw[1] == pytest.approx(480e-6 + u1)  # 10 h × 10 % = the 1 h of slack
    assert cc.shed_mw[2] == pytest.approx(u1)  # beyond that the tier-1 job would be late
    assert cc.lost_acc_h_per_h[0] == pytest.approx(0.8 + 8.0)
    assert cc.ready_s[0] == 60.0 and np.allclose(cc.shed_mw_by_tier[2, [0, 1, 2]], 0.0)
