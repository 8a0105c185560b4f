"""Wiring of inventory_service: settings, the service, its handlers."""

from __future__ import annotations

from inventory_service import handlers, store
from inventory_service.handlers import InventorySettings
from service_runtime.service import Service


def build(settings: InventorySettings | None = None) -> Service:
    settings = settings or InventorySettings()
    service = Service("inventory_service", settings)
    stores = store.stores(service)
    handlers.register(service, stores, settings)
    service.on_start(lambda: store.ensure_indexes(stores))
    return service
