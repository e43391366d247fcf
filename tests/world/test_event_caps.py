"""Grid events as the planners see them: the event's limit in the slots it covers, and after it the rebound
hold (the draw at or below the baseline) in the slots the hold covers for at least half of the slot."""

import numpy as np
import pandas as pd
import pytest

from gridshift.model.events import DemandResponse, GridEvent
from gridshift.world.events import build_events

T0 = pd.Timestamp("2023-08-15T00:00:00Z")


def _caps(slot_s: int, rebound_s: float, *, baseline: bool = True):
    kw = {"cut_frac": 0.25, "baseline_mw": 0.16} if baseline else {"limit_mw": 0.12}
    ev = GridEvent(id="e", kind="cut" if baseline else "limit", sites=["a"], start=T0 + pd.Timedelta(hours=2),
                   end=T0 + pd.Timedelta(hours=3), notice_s=3600, **kw)
    arr = build_events([ev], start=T0, site_names=("a",), site_zones=("z",), site_ramp_mw_per_min=(None,),
                       margin_frac=0.0, response=DemandResponse(rebound_s=rebound_s))
    return arr.planning_caps(np.array([0.2]), slot_s, int(6 * 3600 / slot_s))


@pytest.mark.parametrize("slot_s", [300, 900, 3600])
def test_rebound_hold_is_a_planning_limit_at_the_baseline(slot_s):
    cap, known = _caps(slot_s, 1800.0)
    per_h = 3600 // slot_s
    ev = slice(2 * per_h, 3 * per_h)
    assert np.allclose(cap[0, ev], 0.12)
    n_rb = int(np.floor(1800 / slot_s + 0.5))  # slots the 30-min hold covers for at least half
    assert np.allclose(cap[0, 3 * per_h: 3 * per_h + n_rb], 0.16)
    assert np.isinf(cap[0, 3 * per_h + n_rb:]).all() and np.isinf(cap[0, : 2 * per_h]).all()
    assert (known[0, ev] == per_h).all()  # issued at 01:00, known from that slot


def test_no_hold_without_a_rebound_or_a_baseline():
    for cap, _ in (_caps(300, 0.0), _caps(300, 1800.0, baseline=False)):
        assert np.isinf(cap[0, 36:]).all()
