"""Heterogeneity-aware allocation: throughput matrices, policies as LPs over time fractions, and the
round-based mechanism that turns fractions into whole placements (after Gavel, Narayanan et al., OSDI 2020).

* :mod:`gridshift.hetero.problem` — the allocation problem every policy solves (rows = job variants,
  columns = pools, shared base constraints).
* :mod:`gridshift.hetero.policies` — max-min fairness, finish-time fairness, minimum makespan, maximum
  total throughput, minimum cost with SLOs; each heterogeneity-aware and -agnostic.
* :mod:`gridshift.hetero.rounds` — rounds, priorities and deficits; FIFO.
* :mod:`gridshift.hetero.sim` — the round simulator used by the Gavel reproduction and the fleet example.
"""
