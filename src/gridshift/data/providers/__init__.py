"""Live grid-signal providers behind one interface (:class:`Provider`): Electricity Maps, WattTime, the GB
Carbon Intensity API, ENTSO-E, EIA, and the LMPs of PJM and CAISO. See :mod:`gridshift.data.providers.base` and docs/service/providers.md."""

from __future__ import annotations

from gridshift.data.providers.base import Batch, Provider, ProviderConfig, ProviderError, clean
from gridshift.data.providers.registry import PROVIDERS, load_configs, make_provider, parse_configs

__all__ = ["PROVIDERS", "Batch", "Provider", "ProviderConfig", "ProviderError", "clean", "load_configs",
           "make_provider", "parse_configs"]
