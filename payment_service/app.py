"""Wiring of payment_service: settings, the service, the processor, its handlers."""

from __future__ import annotations

from payment_service import handlers, store
from payment_service.processor import CardProcessor
from service_runtime.service import Service
from service_runtime.settings import RuntimeSettings


class Settings(RuntimeSettings):
    mongodb_database: str = "pharmacy_payments"


def build(settings: Settings | None = None) -> Service:
    service = Service("payment_service", settings or Settings())
    stores = store.stores(service)
    handlers.register(service, stores, CardProcessor(service.db))
    service.on_start(lambda: store.ensure_indexes(stores))
    return service
