"""Wiring of prescription_service: settings, the service, its handlers."""

from __future__ import annotations

from prescription_service import handlers, store
from service_runtime.service import Service
from service_runtime.settings import RuntimeSettings


class Settings(RuntimeSettings):
    mongodb_database: str = "pharmacy_prescriptions"


def build(settings: Settings | None = None) -> Service:
    service = Service("prescription_service", settings or Settings())
    prescriptions = store.prescriptions(service)
    handlers.register(service, prescriptions)
    service.on_start(lambda: store.ensure_indexes(prescriptions))
    return service
