"""Pharmacies, medications and reservations in inventory_service's own database."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pymongo import ASCENDING

from inventory_service.domain import Medication, Pharmacy, Reservation
from service_runtime.service import Service
from service_runtime.store import Repository


@dataclass(frozen=True)
class Stores:
    pharmacies: Repository[Pharmacy]
    medications: Repository[Medication]
    reservations: Repository[Reservation]


def stores(service: Service) -> Stores:
    return Stores(
        # An order's lines, held at a pharmacy or reserved for a patient, are that patient's medication.
        pharmacies=service.repository("pharmacies", Pharmacy, sealed=("holds.*",)),
        medications=service.repository("medications", Medication),
        # Why stock came back may be in the patient's words (a cancel's reason).
        reservations=service.repository(
            "reservations", Reservation, sealed=("lines", "shortages", "return_reason")
        ),
    )


# A pharmacy's dispensing queue: the equal fields, then the one it is sorted by (FerretDB's patch reads a
# sorted page from such an index; MongoDB does anyway).
DISPENSING_QUEUE_INDEX = [("pharmacy_id", ASCENDING), ("state", ASCENDING), ("paid_at", ASCENDING)]
DISPENSING_ORDER = [("paid_at", ASCENDING), ("_id", ASCENDING)]


async def ensure_indexes(s: Stores) -> None:
    await s.medications.collection.create_index([("catalogue_key", ASCENDING)], unique=True)
    # The catalogue's pages: what is on sale, by name, strength and form.
    await s.medications.collection.create_index([("discontinued", ASCENDING), ("catalogue_key", ASCENDING)])
    # Not unique: a discontinued entry keeps its codes, and a new one may carry them.
    await s.medications.collection.create_index([("code_keys", ASCENDING)])
    # A pharmacy's dispensing queue: its paid orders, a page read from the index, oldest payment first.
    await s.reservations.collection.create_index(DISPENSING_QUEUE_INDEX)


def dispensing_queue_filter(pharmacy_id: str) -> dict[str, object]:
    """Equality on the index's leading fields only, so the store reads the page from the index."""
    return {"pharmacy_id": pharmacy_id, "state": "PAID"}


async def dispensing_queue(s: Stores, pharmacy_id: str, *, limit: int, offset: int) -> list[Reservation]:
    """The pharmacy's PAID reservations, oldest payment first (ties by order id), one page."""
    return await s.reservations.find(
        dispensing_queue_filter(pharmacy_id), sort=DISPENSING_ORDER, skip=offset, limit=limit
    )


async def all_pharmacies(s: Stores) -> list[Pharmacy]:
    return await s.pharmacies.find({})


async def pharmacy_holding(s: Stores, order_id: str) -> Pharmacy | None:
    """The pharmacy that holds stock for this order, if a reservation got that far before a crash."""
    found = await s.pharmacies.find({f"holds.{order_id}": {"$exists": True}}, limit=1)
    return found[0] if found else None


async def pharmacies_by_id(s: Stores, ids: Sequence[str]) -> list[Pharmacy]:
    return await s.pharmacies.find({"_id": {"$in": list(ids)}})


async def medications_by_id(s: Stores, ids: Sequence[str]) -> dict[str, Medication]:
    return {m.id: m for m in await s.medications.find({"_id": {"$in": list(ids)}})}


async def medications_carrying(s: Stores, code_keys: Sequence[str]) -> list[Medication]:
    """Every entry, discontinued or not, that carries any of these codes (`domain.code_key`)."""
    if not code_keys:
        return []
    return await s.medications.find({"code_keys": {"$in": list(code_keys)}})


async def list_medications(
    s: Stores, *, limit: int, offset: int, code_key: str | None = None, name_prefix: str | None = None
) -> list[Medication]:
    query: dict[str, object] = {"discontinued": False}
    if code_key is not None:
        query["code_keys"] = code_key
    if name_prefix is not None:
        # A range on the indexed key, which starts with the name: no scan of the catalogue.
        start = name_prefix.strip().casefold()
        query["catalogue_key"] = {"$gte": start, "$lt": start + "\U0010ffff"}
    return await s.medications.find(
        query,
        sort=[("catalogue_key", ASCENDING), ("_id", ASCENDING)],
        skip=offset,
        limit=limit,
    )
