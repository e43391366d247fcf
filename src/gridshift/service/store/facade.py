"""The :class:`Store` facade: one class with every aggregate's methods (tokens, jobs, dispatches, signals,
grid events, services, plans, settings, the model gateway's usage and observed demand), each in its own module of this package."""

from __future__ import annotations

from gridshift.service.store.dispatches import DispatchStore
from gridshift.service.store.gateway import GatewayStore
from gridshift.service.store.grid_events import GridEventStore
from gridshift.service.store.plans import PlanStore
from gridshift.service.store.services import ServiceStore
from gridshift.service.store.settings import SettingStore
from gridshift.service.store.signals import SignalStore
from gridshift.service.store.tokens import TokenStore


class Store(TokenStore, DispatchStore, PlanStore, SignalStore, GridEventStore, ServiceStore, SettingStore,
            GatewayStore):
    """Persistent state of the service. Safe to share between threads; one transaction per method."""

    def __enter__(self) -> Store:
        return self
