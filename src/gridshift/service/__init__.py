"""The live service: the API (``app``, ``routes``), persistent state (``tables``, ``db``, ``store``), the reconciler
and the executors."""
