"""Do no harm by track record: follow the forecast only while following it has paid, for moves like today's.

The rule of :mod:`gridshift.plan.habit` judges each move by how well the forecast predicted the *gain* of that
move on earlier days. This one judges the *decision rule* itself. When a job with a habitual start (a recurring
job's nominal time) is first planned, the planner's choice of start ``a`` (from that plan's forecast) is noted
beside the habit ``n`` — a shadow decision, noted whether or not it is followed. Once both runs have happened,
the gain that following would have brought is known from the actual signal:

    ``g = (c(n) − c(a)) / c(n)``  (relative to the habit's cost; 0 when the plan chose the habit)

The job follows its plan — and is held to that start, not re-planned hour by hour — only if the gains of the
shadow decisions of the last ``days`` days (every habit job's, pooled) clear

    ``mean(g) − z · sd(g) / √k  >  margin``  with ``k ≥ min_decisions`` such decisions known,

and, with ``move_slots`` set, the same test passes on the shadow decisions of the last ``days`` days that moved
the job about as far and the same way as today's plan does (``|(a − n) − (a_k − n_k)| ≤ move_slots``, at least
``min_move_decisions`` of them); otherwise it starts at its habit. A forecast with no error (``perfect``)
always follows. Over any stretch where following the forecast loses, the rule falls back to the habit within
``days`` days; where it pays, the job gets the forecast's one-shot choice. Holding the first choice matters:
re-planning every hour from forecasts whose short leads lean on the current value chases noise (on the nightly
±8 h job of Great Britain, first quarter of 2023, ``blend``: −1.1 % re-planned hourly against +0.3 % held;
benchmarks/bench_nightly_habit.py).

Why the move's own record: the pooled record is earned by the moves the forecaster usually makes (on the
nightly ±8 h job, one to three hours later, into the night's trough), and it licensed moves it had never
tested — to the window's first hour (the evening peak) or its last (the morning ramp), eight hours from the
habit, where the forecast's error of the difference between two hours is largest. On the nightly ±8 h job of
benchmarks/bench_nightly_zones.py the losing zone-quarters lost on such days: Great Britain 2022 Q4 on one
move to 17:00 UTC (−33 % that day), 2023 Q1 on one to 09:00 (−28 %). The margin keeps the rule at the habit
where following gains too little to be told from noise (the zones where the best start saves 1–3 %).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MIN_DECISIONS = 7  # shadow decisions that came true before the rule may follow the forecast
MIN_MOVE_DECISIONS = 3  # of them, moves like today's (within move_slots), before that move may be followed


@dataclass
class DecisionRecord:
    """Shadow decisions of habit jobs, their outcomes, and each decided job's target start slot."""

    day_slots: int
    days: int
    margin: float
    z: float
    min_decisions: int = MIN_DECISIONS
    move_slots: int | None = None  # half-width of "a move like today's" in slots (None: the pooled record only)
    min_move_decisions: int = MIN_MOVE_DECISIONS
    target: dict = field(default_factory=dict)  # job -> slot it is held to (its plan's choice or its habit)
    followed: dict = field(default_factory=dict)  # job -> whether it follows its plan
    pending: list = field(default_factory=list)  # (slot decided, site, habit slot, plan slot, run slots)
    outcomes: list = field(default_factory=list)  # (slot decided, relative gain that following brought)
    moves: list = field(default_factory=list)  # beside each outcome: its plan's move from the habit, in slots

    def settle(self, now: int, uc_actual: np.ndarray, lookback: int) -> None:
        """Move the shadow decisions whose runs have both happened (``uc_actual[S, lookback + now + 1]``, the
        actual unit cost up to slot ``now``) to the outcomes; drop outcomes older than ``days`` days."""
        keep = []
        if len(self.moves) != len(self.outcomes):  # outcomes noted without their moves: those are unknown
            self.moves = [None] * len(self.outcomes)
        for t, site, n, a, r in self.pending:
            if max(n, a) + r > now + 1:
                keep.append((t, site, n, a, r))
                continue
            cn = float(uc_actual[site, lookback + n: lookback + n + r].mean())
            ca = float(uc_actual[site, lookback + a: lookback + a + r].mean())
            self.outcomes.append((t, (cn - ca) / cn if cn > 0 else 0.0))
            self.moves.append(int(a) - int(n))
        self.pending = keep
        old = now - self.days * self.day_slots
        kept = [i for i, o in enumerate(self.outcomes) if o[0] >= old]
        self.outcomes = [self.outcomes[i] for i in kept]
        self.moves = [self.moves[i] for i in kept]

    def evidence(self, move: int | None = None) -> tuple[int, float, float]:
        """(decisions known, mean relative gain of following, its standard error): of every shadow decision, or
        (``move`` given) of those whose plan moved the job within ``move_slots`` of ``move`` (not 0)."""
        g = [o[1] for o in self.outcomes]
        if move is not None:
            w = 0 if self.move_slots is None else self.move_slots
            ms = self.moves if len(self.moves) == len(self.outcomes) else [None] * len(self.outcomes)
            g = [x for x, m in zip(g, ms) if m is not None and m != 0 and abs(m - move) <= w]
        g = np.array(g, dtype=float)
        if g.size < 2:
            return int(g.size), float(g.mean()) if g.size else float("nan"), float("nan")
        return int(g.size), float(g.mean()), float(g.std(ddof=1) / np.sqrt(g.size))

    def follows(self, move: int | None = None) -> bool:
        """Whether following has paid: over every shadow decision, and (with ``move_slots`` set and ``move``, the
        plan's move from the habit in slots, given) over the moves like it."""
        k, mean, se = self.evidence()
        if not (k >= self.min_decisions and mean - self.z * se > self.margin):
            return False
        if self.move_slots is None or move is None:
            return True
        k, mean, se = self.evidence(move)
        return k >= self.min_move_decisions and mean - self.z * se > self.margin

    def decide(self, job: int, now: int, site: int, habit: int, plan: int | None, run_slots: int,
               exact: bool) -> int:
        """Note the shadow decision for ``job`` (first planned at slot ``now``; its plan starts it at slot
        ``plan``, None: not in the plan's horizon) and return the slot it is held to."""
        if plan is None:
            plan = habit
        self.pending.append((int(now), int(site), int(habit), int(plan), int(run_slots)))
        follow = exact or self.follows(None if plan == habit else int(plan) - int(habit))
        self.followed[job] = follow
        self.target[job] = int(plan) if follow else int(habit)
        return self.target[job]

    def stats(self) -> dict[str, float]:
        k, mean, _ = self.evidence()
        return {"habit_record_decisions": k, "habit_record_mean_gain_frac": mean,
                "habit_followed": int(sum(self.followed.values()))}
