"""Prescriptions in prescription_service's own database."""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING

from prescription_service.domain import Prescription
from service_runtime.service import Service
from service_runtime.store import Repository


def prescriptions(service: Service) -> Repository[Prescription]:
    # The fingerprint too: a hash of the lines and place is a way to confirm a guess of them.
    # The document, its prescriber and the pharmacists' notes and questions are health data as well.
    sealed = (
        "lines",
        "delivery_location",
        "fingerprint",
        "document",
        "prescriber",
        "verification",
        "question",
    )
    return service.repository("prescriptions", Prescription, sealed=sealed)


LISTED_MIGRATION = "prescriptions.listed"


async def ensure_indexes(repo: Repository[Prescription]) -> None:
    await repo.collection.create_index([("order_id", ASCENDING)], unique=True)
    await repo.collection.create_index([("patient_id", ASCENDING), ("uploaded_at", DESCENDING)])
    # The lists: a patient's and everyone's, newest first, withdrawn ones left out.
    await repo.collection.create_index(
        [("patient_id", ASCENDING), ("listed", ASCENDING), ("uploaded_at", DESCENDING)]
    )
    await repo.collection.create_index([("listed", ASCENDING), ("uploaded_at", DESCENDING)])
    # Prescriptions stored before `listed` was kept: it follows `withdrawn_at`. Once per store (the
    # search for them reads every prescription), marked done in `migrations`.
    migrations = repo.collection.database["migrations"]
    if await migrations.find_one({"_id": LISTED_MIGRATION}) is None:
        await repo.collection.update_many(
            {"listed": {"$exists": False}, "withdrawn_at": None}, {"$set": {"listed": True}}
        )
        await repo.collection.update_many({"listed": {"$exists": False}}, {"$set": {"listed": False}})
        await migrations.update_one({"_id": LISTED_MIGRATION}, {"$set": {"done": True}}, upsert=True)
    # The pharmacists' queue: one status, oldest first.
    await repo.collection.create_index([("status", ASCENDING), ("uploaded_at", ASCENDING)])


async def list_prescriptions(
    repo: Repository[Prescription], *, owner_id: str | None, limit: int, offset: int
) -> list[Prescription]:
    query: dict[str, object] = {"listed": True}
    if owner_id is not None:
        query["patient_id"] = owner_id
    return await repo.find(
        query, sort=[("uploaded_at", DESCENDING), ("_id", ASCENDING)], skip=offset, limit=limit
    )


async def verification_queue(
    repo: Repository[Prescription], *, limit: int, offset: int
) -> list[Prescription]:
    """Prescriptions waiting for a pharmacist, oldest first (a held one waits for its patient instead)."""
    return await repo.find(
        {"status": "PENDING_VERIFICATION"},
        sort=[("uploaded_at", ASCENDING), ("_id", ASCENDING)],
        skip=offset,
        limit=limit,
    )


# How far back the queue looks for a patient's earlier prescriptions of the same medications.
EARLIER_LOOKED_AT = 20


async def earlier_of_the_same(
    repo: Repository[Prescription], prescription: Prescription
) -> list[Prescription]:
    """The patient's earlier prescriptions naming any of this one's medications, newest first.

    Lines are sealed, so the patient's latest prescriptions before this one are read (a page of
    the index) and compared here.
    """
    wanted = {line.medication_id for line in prescription.lines}
    latest = await repo.find(
        {"patient_id": prescription.patient_id, "uploaded_at": {"$lt": prescription.uploaded_at}},
        sort=[("uploaded_at", DESCENDING), ("_id", ASCENDING)],
        limit=EARLIER_LOOKED_AT,
    )
    return [p for p in latest if wanted & {line.medication_id for line in p.lines}]
