"""Providers by name, and the providers' configuration file.

Configuration (YAML; ``gridshift serve --providers FILE``)::

    providers:
      - name: electricitymaps          # one of PROVIDERS
        zones: {DE-LU: DE}              # GridShift zone -> the provider's zone (others passed as is)
        signals: [carbon_lifecycle_g_per_kwh, renewable_frac]
        interval_s: 900                 # pull clock
        stale_after_s: 7200             # older last good data count as stale
        api_key_env: ELECTRICITYMAPS_API_KEY   # or api_key_file: /run/secrets/em-key
        base_url: https://api.electricitymap.org/v3   # optional

A key is never written in this file (``api_key`` is refused here): it comes from the environment or a key
file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gridshift.data.providers.base import Provider, ProviderConfig
from gridshift.data.providers.caiso import Caiso
from gridshift.data.providers.eia import Eia
from gridshift.data.providers.electricitymaps import ElectricityMaps
from gridshift.data.providers.entsoe import Entsoe
from gridshift.data.providers.gb_carbon import GbCarbonIntensity
from gridshift.data.providers.pjm import Pjm
from gridshift.data.providers.watttime import WattTime
from gridshift.data.yaml_doc import read_yaml
from gridshift.errors import DataError

PROVIDERS: dict[str, type[Provider]] = {p.name: p for p in (ElectricityMaps, WattTime, GbCarbonIntensity, Entsoe,
                                                            Eia, Pjm, Caiso)}
FIELDS = {f for f in ProviderConfig.__dataclass_fields__ if f != "api_key"}


def make_provider(config: ProviderConfig) -> Provider:
    """The adapter for ``config.name``."""
    cls = PROVIDERS.get(config.name)
    if cls is None:
        raise DataError(f"unknown provider '{config.name}' (known: {', '.join(PROVIDERS)})", field="name")
    return cls(config)


def parse_configs(obj: Any, source: str) -> list[ProviderConfig]:
    """Provider configurations from a parsed file (``{"providers": [...]}``); errors name the entry and field."""
    items = obj.get("providers") if isinstance(obj, dict) else None
    if not isinstance(items, list):
        raise DataError("must hold a list 'providers'", file=source)
    out = []
    for i, item in enumerate(items):
        where = f"providers[{i}]"
        if not isinstance(item, dict):
            raise DataError(f"{where} must be a mapping", file=source)
        bad = sorted(set(item) - FIELDS)
        if bad:
            hint = " (keys come from api_key_env or api_key_file, never the file)" if "api_key" in bad else ""
            raise DataError(f"{where}: unknown field(s) {', '.join(bad)}{hint}", file=source, field=bad[0])
        if item.get("name") not in PROVIDERS:
            raise DataError(f"{where}: unknown provider '{item.get('name')}' (known: {', '.join(PROVIDERS)})",
                            file=source, field="name")
        try:
            cfg = ProviderConfig(**{**item, "zones": {str(k): str(v) for k, v in (item.get("zones") or {}).items()},
                                    "signals": tuple(item.get("signals") or ())})
        except (TypeError, AttributeError) as e:
            raise DataError(f"{where}: {e}", file=source) from None
        for f in ("interval_s", "stale_after_s", "timeout_s"):
            if not isinstance(getattr(cfg, f), int | float) or getattr(cfg, f) <= 0:
                raise DataError(f"{where}: must be a number > 0", file=source, field=f)
        make_provider(cfg).chosen(cfg.signals or None, forecast=False)  # unknown signals fail here
        out.append(cfg)
    return out


def load_configs(path: str | Path) -> list[ProviderConfig]:
    """Read a providers file (YAML or JSON)."""
    return parse_configs(read_yaml(path, "providers file"), str(path))
