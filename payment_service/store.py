"""Payment methods and payments in payment_service's own database."""

from __future__ import annotations

from dataclasses import dataclass

from pymongo import ASCENDING, DESCENDING

from payment_service.domain import Payment, PaymentMethod
from service_runtime.service import Service
from service_runtime.store import Repository


@dataclass(frozen=True)
class Stores:
    methods: Repository[PaymentMethod]
    payments: Repository[Payment]


def stores(service: Service) -> Stores:
    return Stores(
        methods=service.repository("payment_methods", PaymentMethod),
        payments=service.repository("payments", Payment),
    )


async def ensure_indexes(s: Stores) -> None:
    await s.methods.collection.create_index([("owner_id", ASCENDING)])
    await s.payments.collection.create_index([("order_id", ASCENDING)], unique=True)
    await s.payments.collection.create_index([("patient_id", ASCENDING), ("created_at", DESCENDING)])


async def list_payments(s: Stores, *, owner_id: str | None, limit: int, offset: int) -> list[Payment]:
    # Tombstones are no payments: FORGONE, or as stored before voids existed (see domain.PaymentState).
    tombstones = [{"status": "FORGONE"}, {"status": "VOIDED", "voided_at": None}]
    query: dict[str, object] = {"$nor": tombstones, "hidden_at": None}
    if owner_id is not None:
        query["patient_id"] = owner_id
    return await s.payments.find(
        query, sort=[("created_at", DESCENDING), ("_id", ASCENDING)], skip=offset, limit=limit
    )
