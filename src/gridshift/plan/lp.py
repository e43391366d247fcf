"""The planning LP on HiGHS: work classes × pools × periods × power-cap levels, with site power caps,
pool sizes, per-class accelerator bounds, release times, deadlines, inference demand within latency bounds
and a penalty for pausing work.

Units: work in reference accelerator-hours, power in MW, period durations in hours. The objective is in the
scenario's unit (t CO2, USD, or USD with a carbon price): ``unit_cost[s, t]`` per facility MWh.

Variables (only where allowed): ``x[c, p, t, l]`` busy accelerators of pool p on class c in period t at cap
level l; ``f[n, r, p, t]`` requests/s of service n, region r served by pool p; and slacks ``late[c]``,
``left[c]`` (work not done in the horizon, valued at ``terminal_cost``), ``unserved[n, r, t]``,
``over[s, t]`` (power above the cap, for infeasible inputs), ``pause[p, t]`` (busy accelerators dropped).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import highspy
import numpy as np
import scipy.sparse as sp

from gridshift.errors import PlanError
from gridshift.plan.after_horizon import LaterHours
from gridshift.plan.lp_warm import ClassIds, Keyed, basis_from, match_periods, own_periods, pkey, statuses
from gridshift.plan.start_times import StartTimes

INF = highspy.kHighsInf
# a warm start that takes more than WARM_GIVE_UP times the simplex iterations a cold solve would (the last cold
# solve's iterations per column, times this LP's columns; and WARM_SLACK_ITS more) stops warm starts for the
# next WARM_PAUSE solves (iteration counts, not times: the same run makes the same choices)
WARM_GIVE_UP = 1.2
WARM_PAUSE = 8
WARM_SLACK_ITS = 200  # small LPs: a few hundred iterations either way say nothing


@dataclass
class PlanProblem:
    dur_h: np.ndarray  # [T] period lengths, hours
    unit_cost: np.ndarray  # [S, T] objective per facility MWh
    # fleet
    pool_site: np.ndarray  # [P]
    pool_type: np.ndarray  # [P]
    pool_free: np.ndarray  # [P, T] accelerators available to the plan (count minus pinned work)
    pue: np.ndarray  # [S]
    headroom_mw: np.ndarray  # [S, T] cap − base load (idle + host of everything) − pinned work, facility MW
    levels: np.ndarray  # [L] power-cap fractions
    level_tp: np.ndarray  # [K, L] throughput kept at each level (0 where the level is below the curve)
    board_w: np.ndarray  # [K]
    idle_w: np.ndarray  # [K]
    # work classes
    work: np.ndarray  # [C] remaining work
    speed: np.ndarray  # [C, K]
    allowed: np.ndarray  # bool [C, P]
    max_acc: np.ndarray  # [C, T] accelerators the class may use (sum of gang_max of released jobs)
    release: np.ndarray  # [C, T] work released by the start of each period (cumulative)
    deadline_period: np.ndarray  # int [C]: work must be done in periods < this (T = not in horizon)
    min_work: np.ndarray  # [C] work that must be done in the horizon (for deadlines beyond it)
    terminal_cost: np.ndarray  # [C] cost per unit of work left undone at the horizon's end
    late_cost: float  # per unit of work and hour past its deadline (and per unit short of min_work)
    deadline_h: np.ndarray | None = None  # [C] hours from the plan start to the class deadline (inf = none)
    run_h: np.ndarray | None = None  # [C, K] time a member needs on each type, for lateness within a period
    last_period: np.ndarray | None = None  # [C] periods >= this get no work of the class (None = to the end)
    # services
    demand: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0)))  # [N, R, T] requests/s
    svc_allowed: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0), bool))  # [N, R, P]
    svc_acc_per_rps: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # [N, K] acc per rps (with headroom)
    svc_mw_per_rps: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # [N, K] facility-less MW per rps
    unserved_cost: float = 1e6
    # pausing
    busy_now: np.ndarray | None = None  # [P] interruptible busy accelerators in the slot before the plan
    pause_cost: np.ndarray | None = None  # [P, T] cost per accelerator paused
    over_cost: float = 1e9
    # non-interruptible waiting jobs as start-time columns (plan/start_times.py), outside the classes
    starts: StartTimes | None = None
    later: LaterHours | None = None  # single-job classes' work priced hour by hour after the horizon
    start_h: float | None = None  # the plan's start, hours since the scenario start (for warm starts by key)


@dataclass
class PlanSolution:
    x: np.ndarray  # [C, P, T, L]
    f: np.ndarray  # [N, R, P, T]
    late: np.ndarray  # [C]
    left: np.ndarray  # [C]
    unserved: np.ndarray  # [N, R, T]
    over_mw: np.ndarray  # [S, T]
    objective: float
    solve_s: float
    status: str
    n_cols: int
    n_rows: int
    energy_objective: float = 0.0  # objective of the energy drawn above idle (jobs and services)
    late_work_h: float = 0.0  # work × hours done after deadlines
    y: np.ndarray | None = None  # [M] start-time columns of PlanProblem.starts
    y_left: np.ndarray | None = None  # [J] their jobs not started in the horizon


class _Builder:
    """Collects columns and rows as COO triplets."""

    def __init__(self) -> None:
        self.cost: list[np.ndarray] = []
        self.upper: list[np.ndarray] = []
        self.n_cols = 0
        self.rows: list[np.ndarray] = []
        self.cols: list[np.ndarray] = []
        self.vals: list[np.ndarray] = []
        self.rlo: list[np.ndarray] = []
        self.rhi: list[np.ndarray] = []
        self.n_rows = 0

    def add_cols(self, cost: np.ndarray, upper: np.ndarray | float = INF) -> np.ndarray:
        cost = np.asarray(cost, float).ravel()
        idx = np.arange(self.n_cols, self.n_cols + cost.size)
        self.cost.append(cost)
        self.upper.append(np.broadcast_to(np.asarray(upper, float), cost.shape).ravel())
        self.n_cols += cost.size
        return idx

    def add_rows(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        lo = np.asarray(lo, float).ravel()
        idx = np.arange(self.n_rows, self.n_rows + lo.size)
        self.rlo.append(lo)
        self.rhi.append(np.broadcast_to(np.asarray(hi, float), lo.shape).ravel())
        self.n_rows += lo.size
        return idx

    def add_coef(self, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray) -> None:
        rows, cols = np.asarray(rows).ravel(), np.asarray(cols).ravel()
        vals = np.broadcast_to(np.asarray(vals, float), rows.shape).ravel()
        keep = vals != 0
        self.rows.append(rows[keep])
        self.cols.append(cols[keep])
        self.vals.append(vals[keep])

    def lp(self, cost_scale: float = 1.0) -> highspy.HighsLp:
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = self.n_cols, self.n_rows
        lp.col_cost_ = (np.concatenate(self.cost) if self.cost else np.zeros(0)) * cost_scale
        lp.col_lower_ = np.zeros(self.n_cols)
        lp.col_upper_ = np.concatenate(self.upper) if self.upper else np.zeros(0)
        lp.row_lower_ = np.concatenate(self.rlo) if self.rlo else np.zeros(0)
        lp.row_upper_ = np.concatenate(self.rhi) if self.rhi else np.zeros(0)
        r = np.concatenate(self.rows) if self.rows else np.zeros(0, int)
        c = np.concatenate(self.cols) if self.cols else np.zeros(0, int)
        v = np.concatenate(self.vals) if self.vals else np.zeros(0)
        a = sp.csc_matrix((v, (r, c)), shape=(self.n_rows, self.n_cols))
        a.sum_duplicates()
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = a.indptr
        lp.a_matrix_.index_ = a.indices
        lp.a_matrix_.value_ = a.data
        return lp


class PlanSolver:
    """Builds and solves :class:`PlanProblem` instances, warm-starting each solve from the last one's basis
    position by position when the model has the same shape; with ``warm`` (and the problem's ``start_h``),
    from the last basis matched by what each column and row stands for (plan/lp_warm.py) whatever the shape.
    Matching is off by default: measured on the gigawatt fleet's first epochs it took 2-10x fewer simplex
    iterations where the classes persisted and more where they changed, about even overall, and at 100,000
    active jobs (bench_plan_epoch.py) a matched start took 2.6x the iterations of a cold one."""

    def __init__(self, time_limit_s: float = 60.0, options: dict | None = None, warm: bool = False) -> None:
        self.time_limit_s = time_limit_s
        self.options = dict(options or {})
        self._basis = None
        self._shape: tuple[int, int] | None = None
        self.warm = warm
        self._keyed: Keyed | None = None
        self._class_ids = ClassIds()
        self._cold_its_per_col: float | None = None
        self._warm_off = 0

    def solve(self, pr: PlanProblem) -> PlanSolution:
        t0 = time.perf_counter()
        b = _Builder()
        C, K = pr.speed.shape
        P, T = pr.pool_free.shape
        S = pr.unit_cost.shape[0]
        L = pr.levels.size
        k_of = pr.pool_type
        s_of = pr.pool_site
        # ---- x columns: allowed (c, p), periods from first release
        first_t = np.argmax(pr.release > 1e-12, axis=1)
        released_any = (pr.release > 1e-12).any(axis=1)
        cc, pp = np.nonzero(pr.allowed & released_any[:, None] & (pr.work > 1e-12)[:, None])
        last_t = np.full(C, T) if pr.last_period is None else np.clip(pr.last_period, 0, T)
        n_t = np.maximum(last_t[cc] - first_t[cc], 0)
        pair = np.repeat(np.arange(cc.size), n_t)
        offs = np.arange(pair.size) - np.repeat(np.cumsum(n_t) - n_t, n_t)
        cpt = np.stack([cc[pair], pp[pair], first_t[cc][pair] + offs], axis=1) if cc.size else np.zeros((0, 3), int)
        cpt = cpt[pr.max_acc[cpt[:, 0], cpt[:, 2]] > 0]
        xc, xp, xt = cpt[:, 0], cpt[:, 1], cpt[:, 2]
        nx = xc.size
        xl = np.tile(np.arange(L), nx)
        xc, xp, xt = np.repeat(xc, L), np.repeat(xp, L), np.repeat(xt, L)
        xk, xs = k_of[xp], s_of[xp]
        tp = pr.level_tp[xk, xl]
        ok = tp > 0
        xc, xp, xt, xl, xk, xs, tp = xc[ok], xp[ok], xt[ok], xl[ok], xk[ok], xs[ok], tp[ok]
        inc_mw = np.maximum(pr.board_w[xk] * pr.levels[xl] - pr.idle_w[xk], 0.0) * pr.pue[xs] / 1e6
        work_coef = pr.speed[xc, xk] * tp * pr.dur_h[xt]
        # work done after its deadline costs late_cost per unit and hour late (end of period - deadline)
        end_h = np.cumsum(pr.dur_h)
        dl_h = np.concatenate([[0.0], end_h])[np.minimum(pr.deadline_period, T)]  # end of last period in time
        if pr.deadline_h is not None and pr.run_h is not None:
            # finishing time of work in period t: its start plus the member's run time on that type
            # (no earlier than the member's whole run time on that type: a gang cannot be sped up)
            run = pr.run_h[xc, xk] / np.maximum(tp, 1e-9)
            finish = np.maximum(end_h[xt] - pr.dur_h[xt] + np.minimum(run, pr.dur_h[xt]), run)
            hours_late = np.where(np.isfinite(pr.deadline_h[xc]), np.maximum(finish - pr.deadline_h[xc], 0.0), 0.0)
        else:
            hours_late = np.where(pr.deadline_period[xc] < T, np.maximum(end_h[xt] - dl_h[xc], 0.0), 0.0)
        # only lateness a choice causes is charged: a class's unavoidable lateness (its best column) is not,
        # so work that will be late anyway is still done as early and as fast as possible, never dropped
        min_late = np.full(C, np.inf)
        np.minimum.at(min_late, xc, hours_late)
        min_late = np.where(np.isfinite(min_late), min_late, 0.0)
        rel_late = hours_late - min_late[xc]
        x_energy = pr.unit_cost[xs, xt] * inc_mw * pr.dur_h[xt]
        # among equals, earlier: a preference worth 0.1 % of the typical energy cost over the horizon (well
        # above the solver's tolerances, well below any real difference)
        ref = x_energy
        if pr.starts is not None and not (x_energy > 0).any():  # no class work: a start's energy per period
            ref = pr.starts.col_energy / np.maximum(pr.starts.col_run_h / float(np.mean(pr.dur_h)), 1.0)
        tie = 1e-3 * float(np.median(ref[ref > 0])) if (ref > 0).any() else 1e-6
        xcol = b.add_cols(x_energy + pr.late_cost * work_coef * rel_late + tie * (xt + 1) / T)
        # ---- slacks
        late = b.add_cols(np.full(C, pr.late_cost))  # only for min_work shortfalls
        in_h = pr.deadline_period < T
        # leaving work of a class due inside the horizon must cost more than doing it however late
        worst_late = np.zeros(C)
        np.maximum.at(worst_late, xc, rel_late)
        late_anyway = min_late > 0
        left_cost = np.where(in_h, pr.late_cost * (np.maximum(worst_late, end_h[-1] - dl_h) + 24.0),
                             pr.terminal_cost + np.where(late_anyway, pr.late_cost * end_h[-1], 0.0))
        left = b.add_cols(left_cost)
        over = b.add_cols(np.full(S * T, pr.over_cost) * np.tile(pr.dur_h, S))
        # work balance: sum work + left = W
        r = b.add_rows(pr.work, pr.work)
        rows_work = r
        b.add_coef(r[xc], xcol, work_coef)
        b.add_coef(r, left, 1.0)
        if pr.later is not None:
            pr.later.add_to(b, r)
        # minimum progress inside the horizon for deadlines beyond it: sum work (+ late) >= min_work
        r = b.add_rows(np.where(in_h, 0.0, pr.min_work), INF)
        rows_min = r
        b.add_coef(r[xc], xcol, work_coef)
        b.add_coef(r, late, 1.0)
        # release: cumulative work through period t <= work released by the start of t. cum[c, t] columns
        # carry the running sum (only for classes whose release is not complete at the start)
        staged = np.flatnonzero((pr.release < pr.work[:, None] - 1e-9).any(axis=1))
        cum = rows_rel = None
        if staged.size:
            pos = np.full(C, -1)
            pos[staged] = np.arange(staged.size)
            cum = b.add_cols(np.zeros(staged.size * T), np.maximum(pr.release[staged], 0.0).ravel())
            r = b.add_rows(np.zeros(staged.size * T), np.zeros(staged.size * T))
            rows_rel = r
            # row (c, t): cum[c, t] - cum[c, t-1] - work[c, t] = 0
            b.add_coef(r, cum, 1.0)
            prev = np.arange(staged.size * T) % T > 0
            b.add_coef(r[prev], cum[np.flatnonzero(prev) - 1], -1.0)
            sel = pos[xc] >= 0
            b.add_coef(r[pos[xc[sel]] * T + xt[sel]], xcol[sel], -work_coef[sel])
        # per-class accelerator bound per period
        r = b.add_rows(np.full(C * T, -INF), pr.max_acc.ravel())
        rows_acc = r
        b.add_coef(r[xc * T + xt], xcol, 1.0)
        # pool capacity
        cap_rows = b.add_rows(np.full(P * T, -INF), pr.pool_free.ravel())
        b.add_coef(cap_rows[xp * T + xt], xcol, 1.0)
        # site power
        pow_rows = b.add_rows(np.full(S * T, -INF), pr.headroom_mw.ravel())
        b.add_coef(pow_rows[xs * T + xt], xcol, inc_mw)
        b.add_coef(pow_rows, over, -1.0)
        ys = None
        if pr.starts is not None and pr.starts.n:
            ys = pr.starts.add_to(b, cap_rows, pow_rows, np.concatenate([[0.0], end_h]), s_of, tie)
        # services
        N = pr.demand.shape[0]
        R = pr.demand.shape[1] if N else 0
        fidx = dem_rows = None
        if N:
            nn, rr, pq = np.nonzero(pr.svc_allowed)
            fn, fr, fp = np.repeat(nn, T), np.repeat(rr, T), np.repeat(pq, T)
            ft = np.tile(np.arange(T), nn.size)
            fk, fs = k_of[fp], s_of[fp]
            usable = pr.svc_acc_per_rps[fn, fk] > 0
            fn, fr, fp, ft, fk, fs = fn[usable], fr[usable], fp[usable], ft[usable], fk[usable], fs[usable]
            f_mw = pr.svc_mw_per_rps[fn, fk] * pr.pue[fs]
            f_energy = pr.unit_cost[fs, ft] * f_mw * pr.dur_h[ft]
            fcol = b.add_cols(f_energy)
            uns = b.add_cols(np.full(N * R * T, pr.unserved_cost) * np.tile(pr.dur_h, N * R))
            dem_rows = b.add_rows(pr.demand.ravel(), pr.demand.ravel())
            b.add_coef(dem_rows[(fn * R + fr) * T + ft], fcol, 1.0)
            b.add_coef(dem_rows, uns, 1.0)
            b.add_coef(cap_rows[fp * T + ft], fcol, pr.svc_acc_per_rps[fn, fk])
            b.add_coef(pow_rows[fs * T + ft], fcol, f_mw)
            fidx = (fn, fr, fp, ft, fcol, uns)
        # pausing: pause[p, t] >= busy[p, t-1] - busy[p, t]
        pause = rr_of = None
        if pr.busy_now is not None and pr.pause_cost is not None:
            pause = b.add_cols(pr.pause_cost.ravel())
            r = b.add_rows(np.concatenate([-pr.busy_now, np.zeros(P * (T - 1))]) if T > 1 else -pr.busy_now,
                           INF)
            # row (p, t): pause[p,t] + busy[p,t] - busy[p,t-1] >= 0 ; t = 0 uses busy_now on the rhs
            order = np.concatenate([np.arange(P) * T + t for t in range(T)])  # row for (p, t) is at p*T+t
            rr_of = np.empty(P * T, int)
            rr_of[order] = r
            b.add_coef(rr_of, pause, 1.0)
            b.add_coef(rr_of[xp * T + xt], xcol, 1.0)
            nxt = xt + 1 < T
            b.add_coef(rr_of[xp[nxt] * T + xt[nxt] + 1], xcol[nxt], -1.0)
        # ---- solve
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        h.setOptionValue("time_limit", float(self.time_limit_s))
        for k, v in self.options.items():
            h.setOptionValue(k, v)
        # costs in t CO2 per column are ~1e-5: scale them so the typical energy cost is ~1, or the solver's
        # tolerances swallow the preference for earlier work and small real differences
        scale = 1.0 / tie * 1e-3 if tie > 0 else 1.0
        lp = b.lp(scale)
        h.passModel(lp)
        shape = (b.n_cols, b.n_rows)
        keyed = None
        warm_used = False
        if self.warm and pr.start_h is not None:
            sections = dict(xcol=xcol, xc=xc, xp=xp, xt=xt, xl=xl, late=late, left=left, over=over, cum=cum,
                            staged=staged, fidx=fidx, pause=pause, rows_work=rows_work, rows_min=rows_min,
                            rows_rel=rows_rel, rows_acc=rows_acc, cap_rows=cap_rows, pow_rows=pow_rows,
                            dem_rows=dem_rows, rr_of=rr_of)
            keyed, basis = self._keys(pr, b, lp, sections)
            if basis is not None and self._warm_off <= 0:
                h.setBasis(basis)
                warm_used = True
            self._warm_off -= 1
        elif self._basis is not None and self._shape == shape:
            h.setBasis(self._basis)
        h.run()
        status = h.getModelStatus()
        feasible = h.getInfo().primal_solution_status == highspy.SolutionStatus.kSolutionStatusFeasible
        if status != highspy.HighsModelStatus.kOptimal and keyed is not None:  # the warm start failed: cold
            h.clearSolver()
            h.run()
            status = h.getModelStatus()
            feasible = h.getInfo().primal_solution_status == highspy.SolutionStatus.kSolutionStatusFeasible
        if status != highspy.HighsModelStatus.kOptimal and not (
                status == highspy.HighsModelStatus.kTimeLimit and feasible):
            raise PlanError(f"planning LP not solved: {h.modelStatusToString(status)}")
        self._basis, self._shape = h.getBasis(), shape
        its = int(h.getInfo().simplex_iteration_count)
        if not warm_used:
            self._cold_its_per_col = its / max(b.n_cols, 1)
        elif self._cold_its_per_col is not None and \
                its > WARM_GIVE_UP * self._cold_its_per_col * b.n_cols + WARM_SLACK_ITS:
            self._warm_off = WARM_PAUSE  # the matched basis was a worse start than none: solve cold for a while
        if keyed is not None:
            keyed.col_status, keyed.row_status = statuses(self._basis)
        self._keyed = keyed
        sol = h.getSolution()
        col = np.asarray(sol.col_value)
        x = np.zeros((C, P, T, L))
        np.add.at(x, (xc, xp, xt, xl), col[xcol])
        f = np.zeros((N, R, P, T))
        unserved = np.zeros((N, R, T))
        energy_obj = float(col[xcol] @ x_energy)
        if fidx is not None:
            fn, fr, fp, ft, fcol, uns = fidx
            np.add.at(f, (fn, fr, fp, ft), col[fcol])
            unserved = col[uns].reshape(N, R, T)
            energy_obj += float(col[fcol] @ f_energy)
        late_h = float(col[xcol] @ (work_coef * hours_late))  # includes unavoidable lateness
        y = y_left = None
        if ys is not None:
            y, y_left = np.clip(col[ys[0]], 0.0, 1.0), np.clip(col[ys[1]], 0.0, 1.0)
            energy_obj += float(y @ pr.starts.col_energy)
            late_h += float(y @ pr.starts.col_late) / max(pr.late_cost, 1e-300)
        return PlanSolution(x=np.maximum(x, 0), f=np.maximum(f, 0), late=col[late], left=col[left],
                            unserved=unserved, over_mw=col[over].reshape(S, T),
                            objective=float(h.getInfo().objective_function_value) / scale,
                            solve_s=time.perf_counter() - t0, status=status, n_cols=b.n_cols, n_rows=b.n_rows,
                            energy_objective=energy_obj,
                            late_work_h=late_h,
                            y=y, y_left=y_left)

    def _keys(self, pr: PlanProblem, b: _Builder, lp: highspy.HighsLp, z: dict) -> tuple[Keyed, highspy.HighsBasis | None]:
        """Keys of this LP's columns and rows (plan/lp_warm.py) and the basis the last LP's statuses give it."""
        T = pr.dur_h.size
        start = pr.start_h + np.concatenate([[0.0], np.cumsum(pr.dur_h)[:-1]])
        dl_abs = pr.start_h + (pr.deadline_h if pr.deadline_h is not None else np.full(pr.work.size, np.inf))
        cls = self._class_ids(pr.speed, pr.allowed, dl_abs)
        S, P = pr.unit_cost.shape[0], pr.pool_site.size
        out = []
        for per in (match_periods(self._keyed, start), own_periods(start)):
            ck = np.full(b.n_cols, -1, np.int64)
            rk = np.full(b.n_rows, -1, np.int64)
            ck[z["xcol"]] = pkey(1, per[z["xt"]], cls[z["xc"]], z["xp"], z["xl"])
            ck[z["late"]] = pkey(2, np.zeros_like(cls), cls)
            ck[z["left"]] = pkey(3, np.zeros_like(cls), cls)
            st_s, st_t = np.repeat(np.arange(S), T), np.tile(np.arange(T), S)
            ck[z["over"]] = pkey(4, per[st_t], st_s)
            rk[z["pow_rows"]] = pkey(16, per[st_t], st_s)
            pt_p, pt_t = np.repeat(np.arange(P), T), np.tile(np.arange(T), P)
            rk[z["cap_rows"]] = pkey(15, per[pt_t], pt_p)
            if z["pause"] is not None:
                ck[z["pause"]] = pkey(8, per[pt_t], pt_p)
                rk[z["rr_of"]] = pkey(18, per[pt_t], pt_p)
            rk[z["rows_work"]] = pkey(11, np.zeros_like(cls), cls)
            rk[z["rows_min"]] = pkey(12, np.zeros_like(cls), cls)
            ct_c, ct_t = np.repeat(cls, T), np.tile(np.arange(T), cls.size)
            rk[z["rows_acc"]] = pkey(14, per[ct_t], ct_c)
            if z["cum"] is not None:
                sc, stt = np.repeat(cls[z["staged"]], T), np.tile(np.arange(T), z["staged"].size)
                ck[z["cum"]] = pkey(5, per[stt], sc)
                rk[z["rows_rel"]] = pkey(13, per[stt], sc)
            if z["fidx"] is not None:
                fn, fr, fp, ft, fcol, uns = z["fidx"]
                ck[fcol] = pkey(6, per[ft], fn, fr, fp)
                N, R = pr.demand.shape[:2]
                nrt = np.arange(N * R * T)
                n_, r_, t_ = nrt // (R * T), (nrt // T) % R, nrt % T
                ck[uns] = pkey(7, per[t_], n_, r_)
                rk[z["dem_rows"]] = pkey(17, per[t_], n_, r_)
            out.append((ck, rk))
        (ck_m, rk_m), (ck_o, rk_o) = out
        basis = None
        if self._keyed is not None:
            basis = basis_from(self._keyed, ck_m, rk_m, np.asarray(lp.row_lower_), np.asarray(lp.col_upper_))
        return Keyed(ck_o, rk_o, start, float(start[-1] + pr.dur_h[-1]) if T else pr.start_h), basis
