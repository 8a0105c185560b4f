"""Wiring of order_service: settings, the service, its handlers."""

from __future__ import annotations

from order_service import handlers, store
from service_runtime.service import Service
from service_runtime.settings import RuntimeSettings


class Settings(RuntimeSettings):
    mongodb_database: str = "pharmacy_orders"


def build(settings: Settings | None = None) -> Service:
    service = Service("order_service", settings or Settings())
    orders = store.orders(service)
    handlers.register(service, orders)
    service.on_start(lambda: store.ensure_indexes(orders))
    return service
