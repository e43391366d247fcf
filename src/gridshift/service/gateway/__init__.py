"""The model gateway (``gridshift gateway``): an OpenAI-compatible front door that sends each inference request
to the site and backend the grid favours within its SLO. ``config`` (the backends file and settings),
``backends`` (registry, health and load), ``routing`` (filters, scores, power-of-two choices), ``proxy``
(forwarding with failover and streaming), ``accounting`` (per-request usage, stored), ``quotas``, ``errors``
(OpenAI-style error objects) and ``app`` (the FastAPI app). See docs/service/gateway.md."""
