"""What every plan is made against, in the simulator and in the live service alike.

* :mod:`gridshift.world.arrays` — ``World``, ``Fleet``, ``Signals``, ``ServiceArrays``: integer-indexed arrays.
* :mod:`gridshift.world.events` — grid events as per-slot arrays.
* :mod:`gridshift.world.accounting` — the one power formula and energy, carbon and cost accounting.
* :mod:`gridshift.world.assembled` — a scenario with its world and signals.
* :mod:`gridshift.world.build` — the builder: a scenario against the data registry and the catalog (the one
  module of this package that reads files).
"""
