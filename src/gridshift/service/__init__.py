"""The live service: persistent state (``models``, ``db``, ``store``) shared by the API, reconciler and executors."""
