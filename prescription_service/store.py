"""Prescriptions in prescription_service's own database."""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING

from prescription_service.domain import Prescription
from service_runtime.service import Service
from service_runtime.store import Repository


def prescriptions(service: Service) -> Repository[Prescription]:
    # The fingerprint too: a hash of the lines and place is a way to confirm a guess of them.
    sealed = ("lines", "delivery_location", "fingerprint")
    return service.repository("prescriptions", Prescription, sealed=sealed)


async def ensure_indexes(repo: Repository[Prescription]) -> None:
    await repo.collection.create_index([("order_id", ASCENDING)], unique=True)
    await repo.collection.create_index([("patient_id", ASCENDING), ("uploaded_at", DESCENDING)])


async def list_prescriptions(
    repo: Repository[Prescription], *, owner_id: str | None, limit: int, offset: int
) -> list[Prescription]:
    query: dict[str, object] = {"withdrawn_at": None}
    if owner_id is not None:
        query["patient_id"] = owner_id
    return await repo.find(
        query, sort=[("uploaded_at", DESCENDING), ("_id", ASCENDING)], skip=offset, limit=limit
    )
