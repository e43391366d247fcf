"""Heterogeneity-aware allocation: policies as LPs over time fractions, and the round-based mechanism that
turns fractions into whole placements (after Gavel, Narayanan et al., OSDI 2020).

* :mod:`~gridshift.plan.allocation.problem` — the allocation problem every policy solves (rows = job
  variants, columns = pools, shared base constraints) and its solution;
* :mod:`~gridshift.plan.allocation.terms` — the normalisations and rates the policies are written in;
* :mod:`~gridshift.plan.allocation.job_lp` — the LP over per-job columns every policy is, and HiGHS;
* :mod:`~gridshift.plan.allocation.solve` — its exact optimum, by
  :mod:`~gridshift.plan.allocation.aggregate` (aggregation with a dual certificate) when large;
* :mod:`~gridshift.plan.allocation.agnostic` — the heterogeneity-agnostic view, and the feasibility repair;
* :mod:`~gridshift.plan.allocation.policies` — max-min fairness, finish-time fairness, minimum makespan,
  maximum total throughput, minimum cost with SLOs; each heterogeneity-aware and -agnostic;
* :mod:`~gridshift.plan.allocation.rounds` — rounds, priorities and deficits; FIFO.

The round simulator that drives them over time is :mod:`gridshift.sim.rounds`.
"""
