"""Wiring of prescription_service: settings, the service, its handlers."""

from __future__ import annotations

from pydantic import Field

from prescription_service import handlers, scanning, store
from prescription_service.documents import Documents
from service_runtime.service import Service
from service_runtime.settings import RuntimeSettings


class Settings(RuntimeSettings):
    mongodb_database: str = "pharmacy_prescriptions"
    # Scans read at once by each replica: each takes a core for seconds a page.
    scan_workers: int = Field(default=1, ge=1)


def build(settings: Settings | None = None) -> Service:
    settings = settings or Settings()
    service = Service("prescription_service", settings)
    prescriptions = store.prescriptions(service)
    documents = Documents(service.db, service.cipher)
    handlers.register(service, prescriptions, documents)
    scanning.register(service, documents, concurrency=settings.scan_workers)
    service.on_start(lambda: store.ensure_indexes(prescriptions))
    return service
